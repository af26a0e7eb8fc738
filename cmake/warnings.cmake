# pixflow_warnings: an INTERFACE target carrying the project's warning flags.
# Link it PRIVATE into each first-party target; it never leaks to consumers.
add_library(pixflow_warnings INTERFACE)
add_library(pixflow::warnings ALIAS pixflow_warnings)
target_compile_options(pixflow_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
                                 -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused
                                 -Woverloaded-virtual -Wnull-dereference -Wdouble-promotion
                                 -Wimplicit-fallthrough>)
