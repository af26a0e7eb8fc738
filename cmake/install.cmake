# pixflow as an installable CMake package. `cmake --install build --prefix P` puts:
#   P/include/pixflow/{engine,tasks,queue}/...  the public headers (engine/, tasks/, queue/ include)
#   P/lib/libpixflow_engine.a, libpixflow_tasks.a, libpixflow_queue.a (queue: with PIXFLOW_WITH_REDIS)
#   P/bin/pixflow, P/bin/primes, P/bin/dirstat  the demo apps
#   P/lib/cmake/pixflow/pixflowConfig.cmake, pixflowConfigVersion.cmake, pixflowTargets.cmake,
#                       pixflowQueueTargets.cmake (with PIXFLOW_WITH_REDIS)
# so that another project's `find_package(pixflow CONFIG REQUIRED)` gives pixflow::engine and
# pixflow::tasks, and `find_package(pixflow CONFIG REQUIRED COMPONENTS queue)` pixflow::queue too (the
# optional component: only it needs hiredis), with their dependencies found by find_dependency
# (cmake/pixflowConfig.cmake.in). Included by the top-level CMakeLists.txt after the targets exist.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PIXFLOW_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/pixflow)

install(TARGETS pixflow_engine pixflow_tasks EXPORT pixflowTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/engine/include/ ${PROJECT_SOURCE_DIR}/tasks/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET pixflow_queue)
  install(TARGETS pixflow_queue EXPORT pixflowQueueTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/queue/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT pixflowQueueTargets NAMESPACE pixflow:: DESTINATION ${PIXFLOW_INSTALL_CMAKEDIR})
endif()
foreach(_pixflow_app IN ITEMS pixflow_cli pixflow_primes pixflow_dirstat)
  if(TARGET ${_pixflow_app})
    install(TARGETS ${_pixflow_app} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
install(EXPORT pixflowTargets NAMESPACE pixflow:: DESTINATION ${PIXFLOW_INSTALL_CMAKEDIR})

# The libraries are static, so a consumer links their PRIVATE dependencies too: the config must find
# every package that the exported link interface names. The four below are always there; the scan adds
# what else the targets link (Threads, pkg-config modules such as hiredis) and warns about anything it
# cannot find again, so a new dependency cannot silently break find_package(pixflow).
# pixflow_dependencies(OUT target...): the find_dependency lines for what `target...` link.
function(pixflow_dependencies out)
  set(_pixflow_deps ${${out}})
  foreach(_pixflow_target IN LISTS ARGN)
    get_target_property(_pixflow_libs ${_pixflow_target} LINK_LIBRARIES)
    foreach(_pixflow_lib IN LISTS _pixflow_libs)
      if(_pixflow_lib MATCHES "^\\$<BUILD_INTERFACE:")
        continue()  # build-only (warnings, sanitizers): not exported
      endif()
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" _pixflow_lib "${_pixflow_lib}")
      if(_pixflow_lib MATCHES "^(pixflow::|pixflow_|TBB::|CURL::|opencv_|nlohmann_json::|JPEG::|PNG::)")  # JPEG, PNG: pixflowConfig.cmake.in
        continue()
      elseif(_pixflow_lib STREQUAL "Threads::Threads")
        list(APPEND _pixflow_deps "find_dependency(Threads)")
      elseif(_pixflow_lib MATCHES "^PkgConfig::(.+)$")
        set(_pixflow_prefix ${CMAKE_MATCH_1})
        set(_pixflow_module "${${_pixflow_prefix}_MODULE_NAME}")  # cached by pkg_check_modules
        if(NOT _pixflow_module)
          set(_pixflow_module ${_pixflow_prefix})
        endif()
        list(APPEND _pixflow_deps "find_dependency(PkgConfig)"
          "if(NOT TARGET PkgConfig::${_pixflow_prefix})\n  pkg_check_modules(${_pixflow_prefix} REQUIRED QUIET IMPORTED_TARGET ${_pixflow_module})\nendif()")
      elseif(_pixflow_lib MATCHES "::" OR _pixflow_lib MATCHES "^\\$<")
        message(WARNING "cmake/install.cmake: ${_pixflow_target} links ${_pixflow_lib}, which pixflowConfig.cmake "
                        "does not know how to find; add it to cmake/install.cmake or find_package(pixflow) will fail")
      endif()  # else a plain library name or path: the linker finds it, nothing to do
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES _pixflow_deps)
  set(${out} "${_pixflow_deps}" PARENT_SCOPE)
endfunction()

set(_pixflow_deps
  "find_dependency(TBB COMPONENTS tbb)"
  "find_dependency(CURL)"
  "find_dependency(OpenCV COMPONENTS core imgproc imgcodecs)"
  "find_dependency(nlohmann_json 3.10)")
pixflow_dependencies(_pixflow_deps pixflow_engine pixflow_tasks)
list(JOIN _pixflow_deps "\n" PIXFLOW_CONFIG_DEPENDENCIES)
# The queue component's own: what pixflow_queue links beyond the core (hiredis, through pkg-config).
set(PIXFLOW_CONFIG_QUEUE_DEPENDENCIES "")
if(TARGET pixflow_queue)
  set(_pixflow_queue_deps "")
  pixflow_dependencies(_pixflow_queue_deps pixflow_queue)
  list(JOIN _pixflow_queue_deps "\n" PIXFLOW_CONFIG_QUEUE_DEPENDENCIES)
  set(PIXFLOW_HAS_QUEUE TRUE)
else()
  set(PIXFLOW_HAS_QUEUE FALSE)
endif()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pixflowConfig.cmake.in
  ${PROJECT_BINARY_DIR}/pixflowConfig.cmake
  INSTALL_DESTINATION ${PIXFLOW_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pixflowConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pixflowConfig.cmake ${PROJECT_BINARY_DIR}/pixflowConfigVersion.cmake
  DESTINATION ${PIXFLOW_INSTALL_CMAKEDIR})
