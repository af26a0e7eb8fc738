#pragma once
/// @file
/// Ctrl-C (SIGINT) and SIGTERM as a cancellation request that a Graph can observe.
///
/// The first signal only sets a flag: a Graph built with `stop_on_interrupt` cancels itself cleanly
/// (in-flight writes finish, nothing partial is left). A second signal ends the process at once.
///
/// @code
/// pixflow::install_interrupt_handler();
/// pixflow::Graph graph({.stop_on_interrupt = true});
/// // ... build, then:
/// auto report = graph.run();   // report.cancelled && report.cancel_reason == "interrupted" after Ctrl-C
/// @endcode
namespace pixflow {

/// Installs the SIGINT/SIGTERM handler (idempotent).
void install_interrupt_handler();
/// True once SIGINT or SIGTERM has arrived since the handler was installed or the flag cleared.
bool interrupt_requested() noexcept;
/// Raises the flag as a signal would (for tests and for embedding applications with their own handler).
void request_interrupt() noexcept;
/// Clears the flag.
void clear_interrupt() noexcept;

}  // namespace pixflow
