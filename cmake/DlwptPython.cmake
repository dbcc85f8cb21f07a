# Finds the Python interpreter that can import torch (the reference tools need it). Debian's
# python3-torch lives in /usr/bin/python3, which is not always the first python3 on PATH.
set(DLWPT_PYTHON "" CACHE FILEPATH "Python 3 interpreter with torch, numpy and scipy")

function(dlwpt_python_has_torch interpreter result)
  execute_process(COMMAND "${interpreter}" -c "import torch, numpy"
                  RESULT_VARIABLE status OUTPUT_QUIET ERROR_QUIET)
  if(status EQUAL 0)
    set(${result} TRUE PARENT_SCOPE)
  else()
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()

if(NOT DLWPT_PYTHON)
  find_program(DLWPT_PATH_PYTHON NAMES python3)
  foreach(candidate ${DLWPT_PATH_PYTHON} /usr/bin/python3)
    if(candidate AND EXISTS "${candidate}")
      dlwpt_python_has_torch("${candidate}" has_torch)
      if(has_torch)
        set(DLWPT_PYTHON "${candidate}" CACHE FILEPATH "Python 3 interpreter with torch" FORCE)
        break()
      endif()
    endif()
  endforeach()
endif()

if(DLWPT_PYTHON)
  message(STATUS "Python with torch for the reference tools: ${DLWPT_PYTHON}")
else()
  message(WARNING "No Python 3 with torch found (install python3-torch): the parity tests "
                  "cannot generate their references")
endif()
