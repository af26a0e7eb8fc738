# pixflow_sanitizers: an INTERFACE target with -fsanitize flags chosen by PIXFLOW_SANITIZE
# ("address,undefined" or "thread"). Linked PRIVATE into every first-party target.
add_library(pixflow_sanitizers INTERFACE)
add_library(pixflow::sanitizers ALIAS pixflow_sanitizers)
if(PIXFLOW_SANITIZE)
  if(PIXFLOW_SANITIZE MATCHES "thread" AND PIXFLOW_SANITIZE MATCHES "address")
    message(FATAL_ERROR "PIXFLOW_SANITIZE: thread and address sanitizers cannot be combined")
  endif()
  set(_pixflow_san_flags -fsanitize=${PIXFLOW_SANITIZE} -fno-omit-frame-pointer -g)
  if(PIXFLOW_SANITIZE MATCHES "undefined")
    # vptr is off: oneTBB's graph_task::destruct_and_deallocate (flow graph headers) downcasts `this`
    # after running its destructor, which the vptr check reports on every flow-graph task.
    list(APPEND _pixflow_san_flags -fno-sanitize-recover=undefined -fno-sanitize=vptr)
  endif()
  target_compile_options(pixflow_sanitizers INTERFACE ${_pixflow_san_flags})
  target_link_options(pixflow_sanitizers INTERFACE -fsanitize=${PIXFLOW_SANITIZE})
endif()
