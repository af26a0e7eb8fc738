#pragma once
// Internal: asks a source for its items, one call at a time, one item per credit.
//
// A source paced by the limit right after it gets one credit per free place: `places` at the start,
// one more each time an item gives its place back, on the thread that gives it back. That thread
// asks the source itself unless another thread is asking already: then it leaves its credit, which
// the asking thread picks up before it lets go (so no freed place is lost, and `next()` never runs
// on two threads at once). An unpaced source gets unbounded credit at the start and is drained by
// the task that started it.
#include <atomic>
#include <cstddef>
#include <functional>
#include <utility>

namespace pixflow::detail {

class SourcePump {
 public:
  /// `pull()` asks the source for one item and sends it on; false once the source has no more.
  /// No item is asked for once `cancelled` is set.
  SourcePump(const std::atomic<bool>& cancelled, std::function<bool()> pull)
      : cancelled_(cancelled), pull_(std::move(pull)) {}
  SourcePump(const SourcePump&) = delete;
  SourcePump& operator=(const SourcePump&) = delete;

  /// `n` places are free: asks for up to `n` more items, now on this thread, or soon on the thread
  /// that is asking already. Thread-safe.
  void free_places(std::size_t n) {
    credits_.fetch_add(n, std::memory_order_seq_cst);
    // Whoever holds `asking_` rechecks the credits after letting go; whoever fails to take it left
    // its credit before trying. Either way a credit is seen (the seq_cst order of the two atomics).
    while (!asking_.exchange(true, std::memory_order_seq_cst)) {
      bool more = true;
      while (credits_.load(std::memory_order_seq_cst) > 0) {
        if (ended_ || cancelled_.load(std::memory_order_acquire)) {
          more = false;
          break;
        }
        credits_.fetch_sub(1, std::memory_order_seq_cst);
        if (!pull_()) ended_ = true;
      }
      asking_.store(false, std::memory_order_seq_cst);
      if (!more || credits_.load(std::memory_order_seq_cst) == 0) return;
    }
  }
  /// Starts over for the next run (the graph is idle).
  void reset() noexcept {
    credits_ = 0;
    ended_ = false;
  }

 private:
  const std::atomic<bool>& cancelled_;
  std::function<bool()> pull_;
  std::atomic<std::size_t> credits_{0};  // places freed and not yet asked for
  std::atomic<bool> asking_{false};      // a thread is in pull_() (or about to be)
  bool ended_ = false;                   // the source said no more; only read and written while asking
};

}  // namespace pixflow::detail
