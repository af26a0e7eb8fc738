# The install-and-consume test (cmake -P): installs this build into a fresh prefix, checks the layout,
# then configures and builds apps/embed as an outside project against it (find_package(pixflow) through
# CMAKE_PREFIX_PATH only) and runs it on the sample photos (check_embed.py).
# With the Redis queue built (WITH_REDIS), it also builds tests/apps/queue_consumer against the optional
# `queue` component (find_package(pixflow COMPONENTS queue)) and runs it.
# Variables (-D): BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER LAUNCHER BUILD_TYPE SANITIZE_FLAGS VERSION
#                 PYTHON WITH_REDIS
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGN}\n${out}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})

message(STATUS "cmake --install ${BUILD_DIR} --prefix ${prefix}")
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(file IN ITEMS
    lib/cmake/pixflow/pixflowConfig.cmake lib/cmake/pixflow/pixflowConfigVersion.cmake
    lib/cmake/pixflow/pixflowTargets.cmake lib/libpixflow_engine.a lib/libpixflow_tasks.a
    include/pixflow/pixflow.hpp include/pixflow/engine/graph.hpp include/pixflow/engine/detail/core.hpp
    include/pixflow/tasks/pipeline.hpp
    bin/pixflow bin/primes)
  if(NOT EXISTS ${prefix}/${file})
    message(FATAL_ERROR "not installed: ${prefix}/${file}")
  endif()
endforeach()
foreach(app IN ITEMS pixflow primes)
  run(${prefix}/bin/${app} --version)
  if(NOT run_output MATCHES "${VERSION}")
    message(FATAL_ERROR "${app} --version: '${run_output}' does not name ${VERSION}")
  endif()
endforeach()

# The outside project: the same compiler, build type and (in the asan/tsan presets) sanitizer flags as
# this build, so the embed binary can link the instrumented libraries and is instrumented itself.
set(configure_options -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(LAUNCHER)
  list(APPEND configure_options -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
if(SANITIZE_FLAGS)
  list(APPEND configure_options "-DCMAKE_CXX_FLAGS=${SANITIZE_FLAGS}")
endif()
message(STATUS "configure apps/embed against ${prefix}")
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/apps/embed -B ${WORK_DIR}/build ${configure_options})
file(STRINGS ${WORK_DIR}/build/CMakeCache.txt found REGEX "^pixflow_DIR:")
if(NOT found STREQUAL "pixflow_DIR:PATH=${prefix}/lib/cmake/pixflow")
  message(FATAL_ERROR "apps/embed found pixflow elsewhere: ${found}")
endif()
message(STATUS "build apps/embed")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)

message(STATUS "run embed on the sample photos")
execute_process(
  COMMAND ${PYTHON} ${SOURCE_DIR}/tests/apps/check_embed.py ${WORK_DIR}/build/embed
          ${SOURCE_DIR}/tests/fixtures/photos ${WORK_DIR}/out
  RESULT_VARIABLE code)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "the embed program built against the installed package failed its check")
endif()

if(WITH_REDIS)
  foreach(file IN ITEMS lib/libpixflow_queue.a lib/cmake/pixflow/pixflowQueueTargets.cmake
                        include/pixflow/queue/worker.hpp include/pixflow/queue/work_queue.hpp)
    if(NOT EXISTS ${prefix}/${file})
      message(FATAL_ERROR "not installed: ${prefix}/${file}")
    endif()
  endforeach()
  message(STATUS "configure, build and run tests/apps/queue_consumer (COMPONENTS queue) against ${prefix}")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/apps/queue_consumer -B ${WORK_DIR}/queue-build ${configure_options})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/queue-build)
  run(${WORK_DIR}/queue-build/queue_consumer)
  if(NOT run_output MATCHES "queue component ok: redis://127.0.0.1:6390/2")
    message(FATAL_ERROR "queue_consumer printed '${run_output}'")
  endif()
else()
  if(EXISTS ${prefix}/lib/libpixflow_queue.a)
    message(FATAL_ERROR "built without the queue, yet ${prefix}/lib/libpixflow_queue.a is installed")
  endif()
endif()
