# Compiler helpers: ccache when available, one precompiled libtorch header shared by all
# targets (building it takes ~30 s; it then saves ~10 s per translation unit), and the
# project's warnings, which stay the project's (never an INTERFACE requirement of consumers).

find_program(DLWPT_CCACHE ccache)
if(DLWPT_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # ccache only caches compilations that use a precompiled header when told to ignore the
  # header's timestamps and the __DATE__/__TIME__ macros it may capture; the base folder
  # makes paths relative, so that clones in other folders share the cache.
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}"
      ${DLWPT_CCACHE})
endif()

set(DLWPT_WARNINGS -Wall -Wextra -Wno-unused-parameter)

# Declares the target that owns the precompiled header; it compiles with the flags of every
# target that reuses it.
function(dlwpt_add_pch_provider name)
  set(DLWPT_PCH_TARGET ${name} CACHE INTERNAL "")
  add_library(${name} STATIC "${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp")
  target_link_libraries(${name} PUBLIC ${TORCH_LIBRARIES})
  target_compile_options(${name} PRIVATE ${DLWPT_WARNINGS})
  if(DLWPT_USE_PCH)
    target_precompile_headers(${name} PRIVATE <torch/torch.h> <torch/script.h>)
  endif()
endfunction()

# The project's own settings for a target it builds: warnings, the source tree on the include
# path (apps and tests include "apps/...", "tests/..."), the shared precompiled header, and in
# a sanitizer build the runtime options of every executable.
function(dlwpt_target_defaults target)
  target_compile_options(${target} PRIVATE ${DLWPT_WARNINGS})
  target_include_directories(${target} PRIVATE "${PROJECT_SOURCE_DIR}")
  if(DLWPT_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM ${DLWPT_PCH_TARGET})
  endif()
  get_target_property(type ${target} TYPE)
  if(TARGET dlwpt_sanitizer_defaults AND type STREQUAL "EXECUTABLE")
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:dlwpt_sanitizer_defaults>)
  endif()
endfunction()


# dlwpt_add_library(NAME SOURCES...): the installable library dlwpt_NAME, known to consumers as
# dlwpt::NAME; its headers are <dlwpt/FOLDER/...> both in the build tree and once installed.
function(dlwpt_add_library name)
  add_library(dlwpt_${name} ${ARGN})
  add_library(dlwpt::${name} ALIAS dlwpt_${name})
  set_target_properties(dlwpt_${name} PROPERTIES EXPORT_NAME ${name}
                        VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
  target_include_directories(dlwpt_${name} PUBLIC
                             "$<BUILD_INTERFACE:${DLWPT_BUILD_INCLUDE_DIR}>"
                             "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  dlwpt_target_defaults(dlwpt_${name})
endfunction()
