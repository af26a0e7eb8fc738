#pragma once
// Internal: the live, thread-safe counters behind a NodeReport.
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "pixflow/engine/detail/body_clock.hpp"
#include "pixflow/engine/stats.hpp"

namespace pixflow::detail {

/// Raises `peak` to `value` if it is higher (lock-free).
inline void raise_peak(std::atomic<std::size_t>& peak, std::size_t value) noexcept {
  std::size_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

/// The figures of one node, updated by its bodies on any thread and read by reports at any time.
///
/// The sums (items, failed, emitted, busy time) are kept per worker thread, each on its own cache
/// line, and added up by report(): with trivial bodies, every thread incrementing one shared line
/// cost more than the bodies. A worker writes its own shard with a plain load and store (it is the
/// only writer while it holds its arena slot); threads outside the arena, and an I/O operation that
/// completes on another thread than it started on, add to shard 0 atomically. The counts that have
/// peaks (active, queued) are one shared word, so that a body's start moves both with one operation.
class NodeStats {
 public:
  /// `clock` times the bodies; it must outlive the NodeStats (the GraphCore owns both). `threads`
  /// is the arena's number of threads (each gets its own shard; other threads share shard 0).
  NodeStats(std::string name, std::string kind, Concurrency concurrency, const BodyClock& clock, std::size_t threads)
      : name_(std::move(name)),
        kind_(std::move(kind)),
        concurrency_(concurrency),
        clock_(&clock),
        shard_count_(threads + 1),
        shards_(std::make_unique<Shard[]>(threads + 1)) {}

 private:
  struct alignas(64) Shard {
    std::atomic<std::uint64_t> items{0}, failed{0}, emitted{0}, busy_ticks{0};
  };
  static constexpr std::uint64_t one_active = std::uint64_t{1} << 32;  // `counts_`: active << 32 | queued

 public:
  /// One body in progress: when it started and the shard of the thread that started it.
  struct Body {
    BodyClock::ticks started;
    Shard* shard;
  };

  /// An item was put into this node's input (it may wait in a queue).
  void arrive() noexcept { raise_peak(peak_queue_, queued_of(counts_.fetch_add(1, std::memory_order_relaxed) + 1)); }
  /// A body (or an I/O operation) starts, for an item that arrive() counted.
  Body start() noexcept { return begin(one_active - 1); }
  /// A body starts that no arrive() counted (a source asked for its next item).
  Body start_unqueued() noexcept { return begin(one_active); }
  /// The body ends, successfully or not, on the thread that started it.
  void finish(const Body& body, bool failed) noexcept {
    const BodyClock::ticks ended = clock_->now();
    Shard& shard = *body.shard;
    const bool own = &shard != &shards_[0];
    add(shard.busy_ticks, BodyClock::between(body.started, ended), own);
    add(shard.items, 1, own);
    if (failed) add(shard.failed, 1, own);
    counts_.fetch_sub(one_active, std::memory_order_relaxed);
  }
  /// The same, on any thread (an I/O operation completed by an outside service, a source asked by
  /// the thread that freed a place).
  void finish_elsewhere(const Body& body, bool failed) noexcept {
    Shard& shard = shards_[0];
    shard.busy_ticks.fetch_add(BodyClock::between(body.started, clock_->now()), std::memory_order_relaxed);
    shard.items.fetch_add(1, std::memory_order_relaxed);
    if (failed) shard.failed.fetch_add(1, std::memory_order_relaxed);
    counts_.fetch_sub(one_active, std::memory_order_relaxed);
  }
  /// The body ended without an item to count (a source that had no more).
  void finish_uncounted(const Body&) noexcept { counts_.fetch_sub(one_active, std::memory_order_relaxed); }
  /// An item went through a node without a body (a merge), or was pushed into an input; any thread.
  void passed() noexcept {
    Shard& shard = shards_[0];
    shard.items.fetch_add(1, std::memory_order_relaxed);
    shard.emitted.fetch_add(1, std::memory_order_relaxed);
  }
  /// `n` items were passed on by `body`, on the thread that started it.
  void emitted(const Body& body, std::uint64_t n = 1) noexcept { add(body.shard->emitted, n, body.shard != &shards_[0]); }
  /// The same, on any thread.
  void emitted_elsewhere(std::uint64_t n = 1) noexcept { shards_[0].emitted.fetch_add(n, std::memory_order_relaxed); }
  /// Items waiting in front of the node or in its bodies now (the trace's counter track).
  [[nodiscard]] std::int64_t in_flight() const noexcept {
    const std::uint64_t c = counts_.load(std::memory_order_relaxed);
    return static_cast<std::int64_t>(queued_of(c) + active_of(c));
  }
  /// Starts the figures of the next run (the graph is idle: items a cancelled run dropped from the
  /// queues are forgotten).
  void reset() noexcept {
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shards_[i].items = 0;
      shards_[i].failed = 0;
      shards_[i].emitted = 0;
      shards_[i].busy_ticks = 0;
    }
    counts_ = 0;
    peak_active_ = 0;
    peak_queue_ = 0;
  }

  /// The figures now; `seconds_per_tick` from the BodyClock (read once for all nodes of a report).
  [[nodiscard]] NodeReport report(double seconds_per_tick) const {
    NodeReport r;
    r.name = name_;
    r.kind = kind_;
    r.concurrency = concurrency_;
    std::uint64_t busy_ticks = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      r.items += shards_[i].items.load();
      r.failed += shards_[i].failed.load();
      r.emitted += shards_[i].emitted.load();
      busy_ticks += shards_[i].busy_ticks.load();
    }
    r.busy_s = static_cast<double>(busy_ticks) * seconds_per_tick;
    r.peak_active = peak_active_.load();
    r.peak_queue = peak_queue_.load();
    const std::uint64_t c = counts_.load();
    r.active = active_of(c);
    r.queued = queued_of(c);
    return r;
  }

 private:
  static std::size_t queued_of(std::uint64_t c) noexcept { return static_cast<std::size_t>(c & 0xffff'ffffu); }
  static std::size_t active_of(std::uint64_t c) noexcept { return static_cast<std::size_t>(c >> 32); }
  static void add(std::atomic<std::uint64_t>& a, std::uint64_t n, bool own) noexcept {
    if (own)
      a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    else
      a.fetch_add(n, std::memory_order_relaxed);
  }
  Body begin(std::uint64_t delta) noexcept {
    raise_peak(peak_active_, active_of(counts_.fetch_add(delta, std::memory_order_relaxed) + delta));
    return Body{clock_->now(), &this_thread_shard()};
  }
  /// The shard of the calling thread: its slot in the arena (bodies run as tasks of this graph, so in
  /// its executor's arena), or shard 0 outside any arena.
  Shard& this_thread_shard() const noexcept {
    const int slot = tbb::this_task_arena::current_thread_index();
    const auto i = static_cast<std::size_t>(slot) + 1;
    return shards_[slot >= 0 && i < shard_count_ ? i : 0];
  }

  std::string name_;
  std::string kind_;
  Concurrency concurrency_;
  const BodyClock* clock_;
  std::size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  alignas(64) std::atomic<std::uint64_t> counts_{0};
  std::atomic<std::size_t> peak_active_{0}, peak_queue_{0};
};

}  // namespace pixflow::detail
