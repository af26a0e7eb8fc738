#pragma once
// Internal: the source in front of a limit(), asked for one item per free place.
//
// It used to be a serial flow-graph node fed one continue_msg per freed place: a task and an
// aggregator pass per item just to call `next()`. Now the thread that frees a place asks the source
// itself, unless another thread is already asking: then it leaves a credit that the asking thread
// picks up before it lets go (so no freed place is ever lost, and `next()` runs on one thread at a
// time). The items are put into the next node as before, each in a task of its own, except that
// when the place was freed at the end of a fused chain fed by this pump, the thread keeps the new
// item and runs the chain on it next, without a task (HandOff below), as parallel_pipeline does.
#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>
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

 private:
  const std::atomic<bool>& cancelled_;
  std::function<bool()> pull_;
  std::atomic<std::size_t> credits_{0};  // places freed and not yet asked for
  std::atomic<bool> asking_{false};      // a thread is in pull_() (or about to be)
  bool ended_ = false;                   // the source said no more; only read and written while asking
};

/// Hands an item from a pump to the thread that freed its place, when that thread is running the
/// fused chain right after the pump: the chain's node body takes the item once the chain returns,
/// instead of the pump putting it into the node (a task, a broadcast and a queue pass).
/// `owner` identifies the pump (its output node), so a chain only takes items of its own pump.
template <class Packet>
class HandOff {
 public:
  /// Runs `run(first)`, then `run` on each packet handed to this thread meanwhile (from the body of
  /// the chain's node; nests if a body waits and the thread runs another chain's node meanwhile).
  template <class Run>
  static void serve(const void* owner, const Packet& first, Run&& run) {
    Frame frame{owner, std::nullopt, current_};
    const Restore restore{frame.previous};
    current_ = &frame;
    run(first);
    while (frame.next) {
      Packet packet = std::move(*frame.next);
      frame.next.reset();
      run(packet);
    }
  }
  /// From the pump: takes `packet` if this thread serves `owner`'s chain and holds no item yet.
  static bool offer(const void* owner, Packet& packet) {
    Frame* frame = current_;
    if (frame == nullptr || frame->owner != owner || frame->next) return false;
    frame->next = std::move(packet);
    return true;
  }

 private:
  struct Frame {
    const void* owner;
    std::optional<Packet> next;
    Frame* previous;
  };
  struct Restore {
    Frame* previous;
    ~Restore() { current_ = previous; }
  };
  static inline thread_local Frame* current_ = nullptr;
};

}  // namespace pixflow::detail
