# Resolves llama.cpp, switchyard's inference and quantization engine, and provides the targets
# `llama` and `ggml::ggml-base` plus SWITCHYARD_ENGINE_VERSION / SWITCHYARD_LLAMA_SOURCE_DIR.
#
# Order: a source directory the user names (an explicit request wins); an installed llama.cpp
# (find_package); the exact pinned release shipped inside the npm package node-llama-cpp; the
# upstream release by git URL. Whatever we build is installed into a cache outside the repo,
# keyed by release and build flags, so later builds and CI runs only link it.

set(SWITCHYARD_LLAMA_RELEASE "v0.5.0")
# Content hash (git tree) of the release: node-llama-cpp squashes history, so commit ids differ,
# but the tree of the same release is identical wherever it comes from.
set(SWITCHYARD_LLAMA_TREE "fd570ef54b10ec5fecb739e7e04c8ce44a6f415a")
set(SWITCHYARD_LLAMA_NPM_PACKAGE "node-llama-cpp@3.22.1")
set(SWITCHYARD_LLAMA_GIT_URL "https://github.com/ggml-org/llama.cpp.git")

set(SWITCHYARD_LLAMA_SOURCE "$ENV{SWITCHYARD_LLAMA_SOURCE}" CACHE PATH
    "llama.cpp source directory to build instead of the pinned release (also read from the environment)")
option(SWITCHYARD_USE_INSTALLED_LLAMA "Use an installed llama.cpp found by find_package(llama)" ON)
option(SWITCHYARD_CUDA "Build the engine with CUDA (passes GGML_CUDA=ON)" OFF)
option(SWITCHYARD_NATIVE "Build the engine for this CPU (GGML_NATIVE)" ON)
set(SWITCHYARD_REFERENCE_TOOLS "llama-quantize;llama-imatrix;llama-perplexity;llama-server" CACHE STRING
    "llama.cpp tools built from the engine's own source, for interoperability tests and benchmarks (empty: none)")

if(DEFINED ENV{SWITCHYARD_CACHE_DIR})
  set(_sy_cache_default "$ENV{SWITCHYARD_CACHE_DIR}")
elseif(DEFINED ENV{XDG_CACHE_HOME})
  set(_sy_cache_default "$ENV{XDG_CACHE_HOME}/switchyard")
else()
  set(_sy_cache_default "$ENV{HOME}/.cache/switchyard")
endif()
set(SWITCHYARD_CACHE_DIR "${_sy_cache_default}" CACHE PATH "Where the built engine is cached")

function(_sy_run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGV}")
    message(FATAL_ERROR "engine: command failed (${rc}): ${cmd}")
  endif()
endfunction()

function(_sy_tree_of dir out)
  execute_process(COMMAND git -C "${dir}" rev-parse "HEAD^{tree}"
                  OUTPUT_VARIABLE tree OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
  if(NOT rc EQUAL 0)
    set(tree "")
  endif()
  set(${out} "${tree}" PARENT_SCOPE)
endfunction()

# Fetches the pinned release into the cache and returns its path; verifies its tree hash.
function(_sy_fetch_pinned_source out)
  set(src "${SWITCHYARD_CACHE_DIR}/src/llama.cpp-${SWITCHYARD_LLAMA_RELEASE}")
  _sy_tree_of("${src}" tree)
  if(tree STREQUAL SWITCHYARD_LLAMA_TREE)
    set(${out} "${src}" PARENT_SCOPE)
    return()
  endif()
  file(REMOVE_RECURSE "${src}")
  set(work "${SWITCHYARD_CACHE_DIR}/src/npm-work")
  file(REMOVE_RECURSE "${work}")
  file(MAKE_DIRECTORY "${work}")
  find_program(NPM npm)
  find_program(GIT git REQUIRED)
  set(fetched OFF)
  if(NPM)
    message(STATUS "engine: fetching ${SWITCHYARD_LLAMA_NPM_PACKAGE} from the npm registry (holds llama.cpp ${SWITCHYARD_LLAMA_RELEASE})")
    execute_process(COMMAND ${NPM} pack --silent ${SWITCHYARD_LLAMA_NPM_PACKAGE}
                    WORKING_DIRECTORY "${work}" OUTPUT_VARIABLE tgz OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      _sy_run(tar -xzf "${work}/${tgz}" -C "${work}" package/llama/gitRelease.bundle)
      _sy_run(${GIT} -c advice.detachedHead=false clone --quiet "${work}/package/llama/gitRelease.bundle" "${src}")
      set(fetched ON)
    else()
      message(WARNING "engine: npm pack failed; trying the upstream repository")
    endif()
  endif()
  if(NOT fetched)
    message(STATUS "engine: cloning llama.cpp ${SWITCHYARD_LLAMA_RELEASE} from ${SWITCHYARD_LLAMA_GIT_URL}")
    _sy_run(${GIT} clone --quiet --depth 1 --branch ${SWITCHYARD_LLAMA_RELEASE} ${SWITCHYARD_LLAMA_GIT_URL} "${src}")
  endif()
  file(REMOVE_RECURSE "${work}")
  _sy_tree_of("${src}" tree)
  if(NOT tree STREQUAL SWITCHYARD_LLAMA_TREE)
    file(REMOVE_RECURSE "${src}")
    message(FATAL_ERROR "engine: fetched llama.cpp has tree ${tree}, expected ${SWITCHYARD_LLAMA_TREE}: refusing to build it")
  endif()
  set(${out} "${src}" PARENT_SCOPE)
endfunction()

# Builds llama + ggml (static, CPU backend, CUDA if asked) from `src` into the cache; returns the prefix.
function(_sy_build_engine src key_extra out)
  set(flags
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=${SWITCHYARD_NATIVE} -DGGML_CUDA=${SWITCHYARD_CUDA}
    # Passed through so that instrumented builds (the fuzzer's) get an instrumented engine too.
    "-DCMAKE_C_FLAGS=${CMAKE_C_FLAGS}" "-DCMAKE_CXX_FLAGS=${CMAKE_CXX_FLAGS}")
  set(cpu "")
  if(SWITCHYARD_NATIVE AND EXISTS /proc/cpuinfo)
    # A native build is only valid on CPUs with the same instruction sets.
    file(STRINGS /proc/cpuinfo cpu LIMIT_COUNT 1 REGEX "^flags")
  endif()
  string(SHA256 key "${flags}|${CMAKE_CXX_COMPILER_ID}-${CMAKE_CXX_COMPILER_VERSION}|${cpu}|${key_extra}")
  string(SUBSTRING "${key}" 0 12 key)
  set(prefix "${SWITCHYARD_CACHE_DIR}/engine/llama-${SWITCHYARD_LLAMA_RELEASE}-${key}")
  set(bdir "${SWITCHYARD_CACHE_DIR}/engine/build-${key}")
  set(stamp "${prefix}/switchyard-engine.stamp")
  include(ProcessorCount)
  ProcessorCount(jobs)
  if(jobs EQUAL 0)
    set(jobs 2)
  endif()
  # A user's source tree may change between builds: rebuild it (incrementally) every configure.
  if(NOT EXISTS "${stamp}" OR key_extra MATCHES "^user:")
    message(STATUS "engine: building llama.cpp from ${src} into ${prefix} (${jobs} jobs; once, then cached)")
    _sy_run(${CMAKE_COMMAND} -S "${src}" -B "${bdir}" -G "${CMAKE_GENERATOR}"
            -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
            -DCMAKE_INSTALL_PREFIX=${prefix} ${flags})
    _sy_run(${CMAKE_COMMAND} --build "${bdir}" --parallel ${jobs} --target llama ggml)
    _sy_run(${CMAKE_COMMAND} --install "${bdir}")
    file(WRITE "${stamp}" "${src}\n")
  endif()
  # Reference tools share the engine's build tree, so they reuse its compiled objects; the tree
  # is reconfigured with tools on only after the engine is installed (some tools install
  # unconditionally, which would break an install of the library alone).
  set(missing "")
  foreach(tool IN LISTS SWITCHYARD_REFERENCE_TOOLS)
    if(NOT EXISTS "${prefix}/bin/${tool}" OR key_extra MATCHES "^user:")
      list(APPEND missing ${tool})
    endif()
  endforeach()
  if(missing)
    message(STATUS "engine: building reference tools ${missing} from the same source")
    # The server's web UI would be downloaded (prebuilt) or built with npm: the build stays offline
    # without it, and llama-server then serves its API alone.
    _sy_run(${CMAKE_COMMAND} -S "${src}" -B "${bdir}" -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_TOOLS_INSTALL=OFF
            -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF)
    _sy_run(${CMAKE_COMMAND} --build "${bdir}" --parallel ${jobs} --target ${missing})
    foreach(tool IN LISTS missing)
      file(COPY "${bdir}/bin/${tool}" DESTINATION "${prefix}/bin")
    endforeach()
  endif()
  set(${out} "${prefix}" PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY "${SWITCHYARD_CACHE_DIR}")
file(LOCK "${SWITCHYARD_CACHE_DIR}/engine.lock" GUARD FILE TIMEOUT 3600)

# find_package and find_library cache what they found. Paths into our own engine cache are from
# an earlier configure; forget them, or changed build flags would never reach the engine (and an
# engine found there would pass for an installed one).
get_cmake_property(_sy_cached CACHE_VARIABLES)
foreach(_sy_var IN LISTS _sy_cached)
  if("${${_sy_var}}" MATCHES "^${SWITCHYARD_CACHE_DIR}/engine/")
    unset(${_sy_var} CACHE)
  endif()
endforeach()

set(SWITCHYARD_LLAMA_SOURCE_DIR "")
if(SWITCHYARD_LLAMA_SOURCE)
  get_filename_component(_sy_src "${SWITCHYARD_LLAMA_SOURCE}" ABSOLUTE)
  if(NOT EXISTS "${_sy_src}/include/llama.h")
    message(FATAL_ERROR "SWITCHYARD_LLAMA_SOURCE=${_sy_src} is not a llama.cpp source tree (no include/llama.h)")
  endif()
  string(SHA256 _sy_src_key "${_sy_src}")
  _sy_build_engine("${_sy_src}" "user:${_sy_src_key}" _sy_prefix)
  find_package(llama CONFIG REQUIRED PATHS "${_sy_prefix}" NO_DEFAULT_PATH)
  set(SWITCHYARD_LLAMA_SOURCE_DIR "${_sy_src}")
  set(_sy_origin "source ${_sy_src}")
else()
  if(SWITCHYARD_USE_INSTALLED_LLAMA)
    find_package(llama CONFIG QUIET)
  endif()
  if(llama_FOUND)
    set(_sy_origin "installed at ${llama_DIR}")
  else()
    _sy_fetch_pinned_source(_sy_src)
    _sy_build_engine("${_sy_src}" "pinned:${SWITCHYARD_LLAMA_TREE}" _sy_prefix)
    find_package(llama CONFIG REQUIRED PATHS "${_sy_prefix}" NO_DEFAULT_PATH)
    set(SWITCHYARD_LLAMA_SOURCE_DIR "${_sy_src}")
    set(_sy_origin "pinned ${SWITCHYARD_LLAMA_RELEASE}, cached at ${_sy_prefix}")
  endif()
endif()
file(LOCK "${SWITCHYARD_CACHE_DIR}/engine.lock" RELEASE)

# Where the reference tools are (empty when llama.cpp came installed, without its source);
# cached so that bench/ scripts can read it from build/CMakeCache.txt.
set(_sy_tools "")
if(DEFINED _sy_prefix)
  set(_sy_tools "${_sy_prefix}/bin")
endif()
set(SWITCHYARD_REFERENCE_TOOLS_DIR "${_sy_tools}" CACHE INTERNAL "llama.cpp reference tools built from the engine's source")

if(NOT LLAMA_VERSION VERSION_EQUAL 0.5.0)
  message(WARNING "engine: llama.cpp ${LLAMA_VERSION} is not the pinned release ${SWITCHYARD_LLAMA_RELEASE}; switchyard is tested against the pinned one")
endif()
set(SWITCHYARD_ENGINE_VERSION "llama.cpp ${LLAMA_VERSION} (${LLAMA_BUILD_COMMIT})")
message(STATUS "engine: ${SWITCHYARD_ENGINE_VERSION}, ${_sy_origin}")
