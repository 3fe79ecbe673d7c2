# Builds llama.cpp's own tools (llama-quantize, llama-imatrix, llama-perplexity, llama-server, ggml-rpc-server) from
# the engine's source and build tree into PREFIX/bin: the references that tests and benchmarks
# compare switchyard against. Run by the reference_tools target:
#   cmake -DSOURCE=DIR -DBUILD_DIR=DIR -DPREFIX=DIR -DTOOLS=a,b -DLOCK=FILE -P BuildReferenceTools.cmake
# The compiler's output goes to BUILD_DIR-tools.log; the terminal gets one line with the time taken.
cmake_minimum_required(VERSION 3.22)
foreach(var SOURCE BUILD_DIR PREFIX TOOLS LOCK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "BuildReferenceTools.cmake: -D${var}= is required")
  endif()
endforeach()
string(REPLACE "," ";" tools "${TOOLS}")
set(log "${BUILD_DIR}-tools.log")
cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)

# Another configure or build of the same engine may be running (a second build folder, CI).
file(LOCK "${LOCK}" GUARD PROCESS TIMEOUT 3600)
set(missing "")
foreach(tool IN LISTS tools)
  if(NOT EXISTS "${PREFIX}/bin/${tool}")
    list(APPEND missing ${tool})
  endif()
endforeach()
if(NOT missing)
  return()
endif()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_FILE "${log}.step" ERROR_FILE "${log}.step")
  file(READ "${log}.step" out)
  file(APPEND "${log}" "${out}")
  file(REMOVE "${log}.step")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "engine: ${what} failed (${rc}); see ${log}")
  endif()
endfunction()

string(TIMESTAMP t0 "%s")
file(WRITE "${log}" "")
# The server's web UI would be downloaded (prebuilt) or built with npm: the build stays offline
# without it, and llama-server then serves its API alone. Some tools install unconditionally,
# which is why the engine is installed before the tree is reconfigured with them.
run("configuring the reference tools" ${CMAKE_COMMAND} -S "${SOURCE}" -B "${BUILD_DIR}" -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_TOOLS_INSTALL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF)
run("building the reference tools" ${CMAKE_COMMAND} --build "${BUILD_DIR}" --parallel ${jobs} --target ${missing})
foreach(tool IN LISTS missing)
  file(COPY "${BUILD_DIR}/bin/${tool}" DESTINATION "${PREFIX}/bin")
endforeach()
string(TIMESTAMP t1 "%s")
math(EXPR dt "${t1} - ${t0}")
string(REPLACE ";" ", " names "${missing}")
message(STATUS "engine: built the reference tools ${names} in ${dt} s")
