// SIGINT/SIGTERM → a flag the Graph's watchdog polls. The handler only touches a lock-free atomic.
#include "pixflow/engine/cancel.hpp"

#include <atomic>
#include <csignal>
#include <mutex>

namespace pixflow {
namespace {
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_signal(int signal_number) {
  if (g_interrupted.exchange(true)) {
    // Second signal: the user insists. Fall back to the default action.
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}
}  // namespace

void install_interrupt_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
  });
}

bool interrupt_requested() noexcept { return g_interrupted.load(); }
void request_interrupt() noexcept { g_interrupted.store(true); }
void clear_interrupt() noexcept { g_interrupted.store(false); }

}  // namespace pixflow
