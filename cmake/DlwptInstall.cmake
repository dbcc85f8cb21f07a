# Installs the libraries with their headers under include/dlwpt/, the CMake package that
# find_package(dlwpt CONFIG COMPONENTS ...) reads, the apps, and a Debian package (cpack).
include(CMakePackageConfigHelpers)

set(DLWPT_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/dlwpt")

install(TARGETS dlwpt_models dlwpt_ct dlwpt_training
        EXPORT dlwptTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT development
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT runtime
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
foreach(folder ${DLWPT_PUBLIC_FOLDERS})
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/${folder}/"
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/dlwpt/${folder}" COMPONENT development
          FILES_MATCHING PATTERN "*.h"
          PATTERN "reference_case.h" EXCLUDE)
endforeach()

install(EXPORT dlwptTargets NAMESPACE dlwpt:: DESTINATION "${DLWPT_CMAKE_DIR}"
        COMPONENT development)
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/dlwptConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/dlwptConfig.cmake"
                              INSTALL_DESTINATION "${DLWPT_CMAKE_DIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/dlwptConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/dlwptConfig.cmake" "${PROJECT_BINARY_DIR}/dlwptConfigVersion.cmake"
        DESTINATION "${DLWPT_CMAKE_DIR}" COMPONENT development)

if(DLWPT_BUILD_APPS)
  install(TARGETS zebraify ct-segment dlwpt-parity dlwpt-accuracy RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
          COMPONENT apps)
  # "train" alone would be too generic a command in a system's bin folder.
  install(PROGRAMS "$<TARGET_FILE:train>" DESTINATION "${CMAKE_INSTALL_BINDIR}"
          RENAME dlwpt-train COMPONENT apps)
endif()

# dlwpt-serve and ct-segment are also components of their own: deploy/docker/Dockerfile
# installs only them.
if(TARGET dlwpt-serve)
  install(TARGETS dlwpt-serve RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT serve)
endif()
if(DLWPT_BUILD_APPS)
  install(TARGETS ct-segment RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT ct-segment)
endif()

set(CPACK_PACKAGE_NAME "dlwpt")
set(CPACK_PACKAGE_VENDOR "dlwpt-cpp")
set(CPACK_PACKAGE_CONTACT "dlwpt-cpp maintainers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# The libraries are static: the package's users compile against libtorch and ITK themselves,
# and the apps need their runtime libraries.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libtorch-dev (>= 1.13), libopenblas0-pthread, libinsighttoolkit5-dev, libjpeg62-turbo, libpng16-16, libx11-6, zlib1g, libprometheus-cpp-core1.0")
include(CPack)
