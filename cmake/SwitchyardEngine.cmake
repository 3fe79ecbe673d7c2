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
# llama.cpp's RPC backend: plan workers (`plan --workers`) and models spread over other machines'
# memory (`eval --rpc`, a portfolio model's `rpc:`). One source file in ggml; on by default.
option(SWITCHYARD_RPC "Build the engine with llama.cpp's RPC backend (passes GGML_RPC=ON)" ON)
# The pinned ggml's AMX kernels crash (SIGILL at tileloadd) on Xeons that have AMX: the tile
# permission request and configuration happen on one thread only. Off unless asked for.
option(SWITCHYARD_AMX "Let the engine use Intel AMX where the CPU has it (known to crash with the pinned release)" OFF)
set(SWITCHYARD_REFERENCE_TOOLS "llama-quantize;llama-imatrix;llama-perplexity;llama-server;ggml-rpc-server" CACHE STRING
    "llama.cpp tools built from the engine's own source by the reference_tools target, for tests and benchmarks (empty: none)")

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

# Runs one step of the engine build with its output appended to `log` (thousands of compiler
# lines belong in a file, not on the terminal); on failure, shows the log's last lines and stops.
function(_sy_run_logged log what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_FILE "${log}.step" ERROR_FILE "${log}.step")
  file(READ "${log}.step" out)
  file(APPEND "${log}" "${out}")
  file(REMOVE "${log}.step")
  if(NOT rc EQUAL 0)
    string(REGEX MATCHALL "[^\n]*\n" lines "${out}")
    list(LENGTH lines n)
    if(n GREATER 25)
      math(EXPR first "${n} - 25")
      list(SUBLIST lines ${first} 25 lines)
    endif()
    string(JOIN "" tail ${lines})
    message(FATAL_ERROR "engine: ${what} failed (${rc}); the last lines of ${log}:\n${tail}")
  endif()
endfunction()

# The CPU flags that decide what a native build may use, as the engine's cache key needs them.
function(_sy_native_cpu out)
  set(cpu "")
  if(SWITCHYARD_NATIVE AND EXISTS /proc/cpuinfo)
    # A native build is only valid on CPUs with the same instruction sets.
    file(STRINGS /proc/cpuinfo cpu LIMIT_COUNT 1 REGEX "^flags")
  endif()
  set(${out} "${cpu}" PARENT_SCOPE)
endfunction()

# Compiler flags that keep AMX out of a native x86 build: -march=native turns it on wherever the
# build machine has it, and an explicit -mno-* wins over what -march implies.
function(_sy_no_amx_flags out)
  set(no_amx "")
  if(NOT SWITCHYARD_AMX AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$"
     AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    include(CheckCCompilerFlag)
    foreach(isa amx-tile amx-int8 amx-bf16 amx-fp16 amx-complex)
      string(MAKE_C_IDENTIFIER "SWITCHYARD_HAS_MNO_${isa}" var)
      check_c_compiler_flag("-mno-${isa}" ${var})
      if(${var})
        string(APPEND no_amx " -mno-${isa}")
      endif()
    endforeach()
  endif()
  set(${out} "${no_amx}" PARENT_SCOPE)
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
  string(TIMESTAMP t0 "%s")
  set(work "${SWITCHYARD_CACHE_DIR}/src/npm-work")
  file(REMOVE_RECURSE "${work}")
  file(MAKE_DIRECTORY "${work}")
  find_program(NPM npm)
  find_program(GIT git REQUIRED)
  set(fetched OFF)
  if(NPM)
    execute_process(COMMAND ${NPM} pack --silent ${SWITCHYARD_LLAMA_NPM_PACKAGE}
                    WORKING_DIRECTORY "${work}" OUTPUT_VARIABLE tgz OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      _sy_run(tar -xzf "${work}/${tgz}" -C "${work}" package/llama/gitRelease.bundle)
      _sy_run(${GIT} -c advice.detachedHead=false clone --quiet "${work}/package/llama/gitRelease.bundle" "${src}")
      set(fetched ON)
      set(origin "the npm package ${SWITCHYARD_LLAMA_NPM_PACKAGE}")
    else()
      message(WARNING "engine: npm pack failed; trying the upstream repository")
    endif()
  endif()
  if(NOT fetched)
    message(STATUS "engine: cloning llama.cpp ${SWITCHYARD_LLAMA_RELEASE} from ${SWITCHYARD_LLAMA_GIT_URL}")
    set(origin "${SWITCHYARD_LLAMA_GIT_URL}")
    _sy_run(${GIT} clone --quiet --depth 1 --branch ${SWITCHYARD_LLAMA_RELEASE} ${SWITCHYARD_LLAMA_GIT_URL} "${src}")
  endif()
  file(REMOVE_RECURSE "${work}")
  _sy_tree_of("${src}" tree)
  if(NOT tree STREQUAL SWITCHYARD_LLAMA_TREE)
    file(REMOVE_RECURSE "${src}")
    message(FATAL_ERROR "engine: fetched llama.cpp has tree ${tree}, expected ${SWITCHYARD_LLAMA_TREE}: refusing to build it")
  endif()
  string(TIMESTAMP t1 "%s")
  math(EXPR dt "${t1} - ${t0}")
  message(STATUS "engine: fetched llama.cpp ${SWITCHYARD_LLAMA_RELEASE} from ${origin} in ${dt} s (tree hash verified)")
  set(${out} "${src}" PARENT_SCOPE)
endfunction()

# With AMX off, proves it: not one AMX instruction in the built CPU backend (the -mno-* flags
# are the only thing that keeps -march=native from emitting them on an AMX machine).
function(_sy_expect_no_amx prefix no_amx)
  find_program(SWITCHYARD_OBJDUMP objdump)
  file(GLOB cpu_libs "${prefix}/lib*/libggml-cpu.a")
  if(NOT no_amx OR NOT SWITCHYARD_OBJDUMP OR NOT cpu_libs)
    return()
  endif()
  execute_process(COMMAND ${SWITCHYARD_OBJDUMP} -d ${cpu_libs} OUTPUT_VARIABLE code ERROR_QUIET)
  string(REGEX MATCH "(tileloadd|tdpbusd|tdpbf16ps|ldtilecfg)[^\n]*" amx "${code}")
  if(amx)
    message(FATAL_ERROR "engine: the CPU backend contains AMX instructions (${amx}) although SWITCHYARD_AMX is OFF; "
                        "rebuild with SWITCHYARD_CMAKE_ARGS=-DSWITCHYARD_NATIVE=OFF")
  endif()
endfunction()

# Builds llama + ggml (static, CPU backend, CUDA if asked) from `src` into the cache; returns the
# prefix and the build tree (which the reference tools reuse).
function(_sy_build_engine src key_extra out_prefix out_bdir)
  _sy_no_amx_flags(no_amx)
  set(flags
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=${SWITCHYARD_NATIVE} -DGGML_CUDA=${SWITCHYARD_CUDA} -DGGML_RPC=${SWITCHYARD_RPC}
    # CMAKE_*_FLAGS are passed through so that instrumented builds (the fuzzer's) get an
    # instrumented engine too.
    "-DCMAKE_C_FLAGS=${CMAKE_C_FLAGS}${no_amx}" "-DCMAKE_CXX_FLAGS=${CMAKE_CXX_FLAGS}${no_amx}")
  _sy_native_cpu(cpu)
  string(SHA256 key "${flags}|${CMAKE_CXX_COMPILER_ID}-${CMAKE_CXX_COMPILER_VERSION}|${cpu}|${key_extra}")
  string(SUBSTRING "${key}" 0 12 key)
  set(prefix "${SWITCHYARD_CACHE_DIR}/engine/llama-${SWITCHYARD_LLAMA_RELEASE}-${key}")
  set(bdir "${SWITCHYARD_CACHE_DIR}/engine/build-${key}")
  set(stamp "${prefix}/switchyard-engine.stamp")
  set(log "${SWITCHYARD_CACHE_DIR}/engine/build-${key}.log")
  include(ProcessorCount)
  ProcessorCount(jobs)
  if(jobs EQUAL 0)
    set(jobs 2)
  endif()
  # A user's source tree may change between builds: rebuild it (incrementally) every configure.
  if(NOT EXISTS "${stamp}" OR key_extra MATCHES "^user:")
    if(SWITCHYARD_NATIVE)
      set(isa "native")
    elseif(CMAKE_C_FLAGS MATCHES "-march=")
      set(isa "for the -march given")
    else()
      set(isa "portable")
    endif()
    if(no_amx)
      string(APPEND isa ", AMX off")
    endif()
    message(STATUS "engine: building llama + ggml (${isa}, ${jobs} jobs; once, then cached in ${prefix}); log: ${log}")
    string(TIMESTAMP t0 "%s")
    file(WRITE "${log}" "")
    _sy_run_logged("${log}" "configuring llama.cpp" ${CMAKE_COMMAND} -S "${src}" -B "${bdir}" -G "${CMAKE_GENERATOR}"
            -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
            -DCMAKE_INSTALL_PREFIX=${prefix} ${flags})
    _sy_run_logged("${log}" "building llama.cpp" ${CMAKE_COMMAND} --build "${bdir}" --parallel ${jobs} --target llama ggml)
    _sy_run_logged("${log}" "installing llama.cpp" ${CMAKE_COMMAND} --install "${bdir}")
    _sy_expect_no_amx("${prefix}" "${no_amx}")
    file(WRITE "${stamp}" "${src}\n")
    string(TIMESTAMP t1 "%s")
    math(EXPR dt "${t1} - ${t0}")
    message(STATUS "engine: built in ${dt} s")
  endif()
  set(${out_prefix} "${prefix}" PARENT_SCOPE)
  set(${out_bdir} "${bdir}" PARENT_SCOPE)
endfunction()

# The members of llama-common that switchyard never links (its command-line parser, model
# downloader, console, presets, HF cache, debug dumps, imatrix loader, llguidance, subprocesses):
# about 36 of its 154 CPU-seconds, not compiled where the generator lets us name objects.
set(_sy_common_unused arg console debug download hf-cache imatrix-loader llguidance preset subproc)

# Builds the members of llama-common that switchyard links, into ARCHIVE. With Ninja, each object
# is a target of its own; other generators build the whole library.
function(_sy_build_common_members log bdir jobs archive)
  file(STRINGS "${bdir}/CMakeCache.txt" generator REGEX "^CMAKE_GENERATOR:INTERNAL=")
  find_program(SWITCHYARD_NINJA ninja)
  if(NOT generator STREQUAL "CMAKE_GENERATOR:INTERNAL=Ninja" OR NOT SWITCHYARD_NINJA)
    _sy_run_logged("${log}" "building llama.cpp's common library" ${CMAKE_COMMAND} --build "${bdir}" --parallel ${jobs} --target llama-common)
    file(COPY_FILE "${bdir}/common/libllama-common.a" "${archive}")
    return()
  endif()
  execute_process(COMMAND ${SWITCHYARD_NINJA} -C "${bdir}" -t targets all OUTPUT_VARIABLE targets RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "engine: could not list the targets of ${bdir} (${rc})")
  endif()
  string(REGEX MATCHALL "common/CMakeFiles/llama-common\\.dir/[^:\n]*\\.o:" objects "${targets}")
  set(wanted "")
  foreach(object IN LISTS objects)
    string(REGEX REPLACE ":$" "" object "${object}")
    get_filename_component(name "${object}" NAME)
    string(REGEX REPLACE "\\.cpp\\.o$" "" name "${name}")
    # Only top-level members can be unused (parsers/ and jinja/ are all linked).
    string(REGEX MATCH "^common/CMakeFiles/llama-common\\.dir/[^/]*$" top "${object}")
    if(NOT (top AND name IN_LIST _sy_common_unused))
      list(APPEND wanted "${object}")
    endif()
  endforeach()
  list(LENGTH wanted n)
  if(n EQUAL 0)
    message(FATAL_ERROR "engine: found no objects of llama-common in ${bdir}")
  endif()
  _sy_run_logged("${log}" "building llama.cpp's common library" ${CMAKE_COMMAND} --build "${bdir}" --parallel ${jobs} --target ${wanted})
  list(TRANSFORM wanted PREPEND "${bdir}/")
  file(REMOVE "${archive}")
  _sy_run_logged("${log}" "archiving llama.cpp's common library" ${CMAKE_AR} qcs "${archive}" ${wanted})
endfunction()

# Builds llama.cpp's common library (llama-common: chat templates through its Jinja engine and the
# tool-call and JSON-schema grammars, what llama-server renders chats with) in the engine's build
# tree and copies it into the prefix. Its own stamp, not the engine's key: it does not change how
# llama and ggml are built, so an engine already in the cache is reused, not rebuilt; where the
# reference tools were built, the library is there already (llama-server needs it). Nothing that
# needs the network is compiled in: no curl, no OpenSSL (LLAMA_OPENSSL=OFF), and the HTTP code of
# its model downloader is never built (switchyard links chat and jinja only).
function(_sy_build_common src bdir prefix key_extra)
  set(stamp "${prefix}/lib/switchyard-common.stamp")
  if(EXISTS "${stamp}" AND NOT key_extra MATCHES "^user:")
    return()
  endif()
  set(log "${bdir}-common.log")
  message(STATUS "engine: building llama.cpp's common library (chat templates; once, then cached); log: ${log}")
  string(TIMESTAMP t0 "%s")
  include(ProcessorCount)
  ProcessorCount(jobs)
  if(jobs EQUAL 0)
    set(jobs 2)
  endif()
  file(WRITE "${log}" "")
  _sy_run_logged("${log}" "configuring llama.cpp's common library" ${CMAKE_COMMAND} -S "${src}" -B "${bdir}" -DLLAMA_BUILD_COMMON=ON)
  _sy_run_logged("${log}" "building llama.cpp's common base" ${CMAKE_COMMAND} --build "${bdir}" --target llama-common-base)
  file(MAKE_DIRECTORY "${prefix}/lib")
  file(COPY "${bdir}/common/libllama-common-base.a" DESTINATION "${prefix}/lib")
  _sy_build_common_members("${log}" "${bdir}" ${jobs} "${prefix}/lib/libllama-common.a")
  file(WRITE "${stamp}" "${src}\n")
  string(TIMESTAMP t1 "%s")
  math(EXPR dt "${t1} - ${t0}")
  message(STATUS "engine: built the common library in ${dt} s")
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
  _sy_build_engine("${_sy_src}" "user:${_sy_src_key}" _sy_prefix _sy_bdir)
  _sy_build_common("${_sy_src}" "${_sy_bdir}" "${_sy_prefix}" "user:${_sy_src_key}")
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
    _sy_build_engine("${_sy_src}" "pinned:${SWITCHYARD_LLAMA_TREE}" _sy_prefix _sy_bdir)
    _sy_build_common("${_sy_src}" "${_sy_bdir}" "${_sy_prefix}" "pinned:${SWITCHYARD_LLAMA_TREE}")
    find_package(llama CONFIG REQUIRED PATHS "${_sy_prefix}" NO_DEFAULT_PATH)
    set(SWITCHYARD_LLAMA_SOURCE_DIR "${_sy_src}")
    set(_sy_origin "pinned ${SWITCHYARD_LLAMA_RELEASE}, cached at ${_sy_prefix}")
  endif()
endif()
file(LOCK "${SWITCHYARD_CACHE_DIR}/engine.lock" RELEASE)

# llama.cpp's common library, where the engine was built from source here: chat prompts are then
# rendered by its Jinja engine, as llama-server renders them. An installed llama.cpp ships no
# common library; chat then falls back to llama_chat_apply_template (serve logs it once per model).
set(SWITCHYARD_LLAMA_COMMON OFF)
if(SWITCHYARD_LLAMA_SOURCE_DIR AND EXISTS "${_sy_prefix}/lib/libllama-common.a")
  find_package(Threads REQUIRED)
  add_library(switchyard_llama_common_base STATIC IMPORTED)
  set_target_properties(switchyard_llama_common_base PROPERTIES IMPORTED_LOCATION "${_sy_prefix}/lib/libllama-common-base.a")
  add_library(switchyard_llama_common STATIC IMPORTED)
  set_target_properties(switchyard_llama_common PROPERTIES
    IMPORTED_LOCATION "${_sy_prefix}/lib/libllama-common.a"
    INTERFACE_LINK_LIBRARIES "switchyard_llama_common_base;llama;Threads::Threads")
  set(SWITCHYARD_LLAMA_COMMON ON)
endif()

# Where the reference tools are (empty when llama.cpp came installed, without its source);
# cached so that bench/ scripts can read it from build/CMakeCache.txt.
set(_sy_tools "")
if(DEFINED _sy_prefix)
  set(_sy_tools "${_sy_prefix}/bin")
endif()
set(SWITCHYARD_REFERENCE_TOOLS_DIR "${_sy_tools}" CACHE INTERNAL "llama.cpp reference tools built from the engine's source")
# The folder of the engine's libraries: scripts/setup.sh checks the engine once per distinct build
# of them (`switchyard check-engine`).
get_target_property(_sy_llama_lib llama LOCATION)
get_filename_component(_sy_llama_libdir "${_sy_llama_lib}" DIRECTORY)
set(SWITCHYARD_ENGINE_LIBDIR "${_sy_llama_libdir}" CACHE INTERNAL "where the engine's libraries are")

# The reference tools are built on demand (target reference_tools: scripts/test.sh and the
# benchmarks), not by the first `scripts/demo.sh`, which needs only the engine: they take longer
# to build than the engine itself. They share the engine's build tree and reuse its objects.
if(_sy_tools AND SWITCHYARD_REFERENCE_TOOLS)
  set(_sy_tool_files "")
  foreach(_sy_tool IN LISTS SWITCHYARD_REFERENCE_TOOLS)
    list(APPEND _sy_tool_files "${_sy_tools}/${_sy_tool}")
  endforeach()
  string(REPLACE ";" "," _sy_tool_list "${SWITCHYARD_REFERENCE_TOOLS}")
  add_custom_command(OUTPUT ${_sy_tool_files}
    COMMAND ${CMAKE_COMMAND} -DSOURCE=${SWITCHYARD_LLAMA_SOURCE_DIR} -DBUILD_DIR=${_sy_bdir} -DPREFIX=${_sy_prefix}
            -DTOOLS=${_sy_tool_list} -DLOCK=${SWITCHYARD_CACHE_DIR}/engine.lock -P ${CMAKE_CURRENT_LIST_DIR}/BuildReferenceTools.cmake
    COMMENT "engine: building the reference tools ${_sy_tool_list} (log: ${_sy_bdir}-tools.log)"
    VERBATIM)
  add_custom_target(reference_tools ALL DEPENDS ${_sy_tool_files})
else()
  add_custom_target(reference_tools)
endif()

if(NOT LLAMA_VERSION VERSION_EQUAL 0.5.0)
  message(WARNING "engine: llama.cpp ${LLAMA_VERSION} is not the pinned release ${SWITCHYARD_LLAMA_RELEASE}; switchyard is tested against the pinned one")
endif()
set(SWITCHYARD_ENGINE_VERSION "llama.cpp ${LLAMA_VERSION} (${LLAMA_BUILD_COMMIT})")
message(STATUS "engine: ${SWITCHYARD_ENGINE_VERSION}, ${_sy_origin}")
