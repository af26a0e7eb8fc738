#pragma once
// Internal: the live, thread-safe counters behind a NodeReport.
#include <algorithm>
#include <atomic>
#include <cstdint>
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

class NodeStats {
 public:
  /// `clock` times the bodies; it must outlive the NodeStats (the GraphCore owns both).
  NodeStats(std::string name, std::string kind, Concurrency concurrency, const BodyClock& clock)
      : name_(std::move(name)), kind_(std::move(kind)), concurrency_(concurrency), clock_(&clock) {}

  /// An item was put into this node's input (it may wait in a queue).
  void arrive() noexcept {
    raise_peak(peak_queue_, queued_.fetch_add(1, std::memory_order_relaxed) + 1);
  }
  /// A body (or an I/O operation) starts; returns its start time.
  BodyClock::ticks start() noexcept {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    raise_peak(peak_active_, active_.fetch_add(1, std::memory_order_relaxed) + 1);
    return clock_->now();
  }
  /// The body that started at `started` ends, successfully or not.
  void finish(BodyClock::ticks started, bool failed) noexcept {
    busy_ticks_.fetch_add(BodyClock::between(started, clock_->now()), std::memory_order_relaxed);
    items_.fetch_add(1, std::memory_order_relaxed);
    if (failed) failed_.fetch_add(1, std::memory_order_relaxed);
    active_.fetch_sub(1, std::memory_order_relaxed);
  }
  /// `n` items were passed on downstream.
  void emitted(std::uint64_t n = 1) noexcept { emitted_.fetch_add(n, std::memory_order_relaxed); }

  /// The figures now; `seconds_per_tick` from the BodyClock (read once for all nodes of a report).
  [[nodiscard]] NodeReport report(double seconds_per_tick) const {
    NodeReport r;
    r.name = name_;
    r.kind = kind_;
    r.concurrency = concurrency_;
    r.items = items_.load();
    r.failed = failed_.load();
    r.emitted = emitted_.load();
    r.busy_s = static_cast<double>(busy_ticks_.load()) * seconds_per_tick;
    r.peak_active = peak_active_.load();
    r.peak_queue = peak_queue_.load();
    r.active = active_.load();
    r.queued = queued_.load();
    return r;
  }

 private:
  std::string name_;
  std::string kind_;
  Concurrency concurrency_;
  const BodyClock* clock_;
  std::atomic<std::uint64_t> items_{0}, failed_{0}, emitted_{0}, busy_ticks_{0};
  std::atomic<std::size_t> active_{0}, peak_active_{0}, queued_{0}, peak_queue_{0};
};

/// The link from a producing node to whichever node consumes its output, so the producer can count
/// arrivals in the consumer's queue. The consumer is attached after the producer is built.
struct Edge {
  std::atomic<NodeStats*> consumer{nullptr};
  void arrive() const noexcept {
    if (NodeStats* c = consumer.load(std::memory_order_acquire)) c->arrive();
  }
};

}  // namespace pixflow::detail
