#pragma once
// Internal: the live, thread-safe counters behind a NodeReport.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

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
  using clock = std::chrono::steady_clock;

  NodeStats(std::string name, std::string kind, Concurrency concurrency)
      : name_(std::move(name)), kind_(std::move(kind)), concurrency_(concurrency) {}

  /// An item was put into this node's input (it may wait in a queue).
  void arrive() noexcept {
    raise_peak(peak_queue_, queued_.fetch_add(1, std::memory_order_relaxed) + 1);
  }
  /// A body (or an I/O operation) starts; returns its start time.
  clock::time_point start() noexcept {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    raise_peak(peak_active_, active_.fetch_add(1, std::memory_order_relaxed) + 1);
    return clock::now();
  }
  /// The body that started at `started` ends, successfully or not.
  void finish(clock::time_point started, bool failed) noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - started).count();
    busy_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
    items_.fetch_add(1, std::memory_order_relaxed);
    if (failed) failed_.fetch_add(1, std::memory_order_relaxed);
    active_.fetch_sub(1, std::memory_order_relaxed);
  }
  /// `n` items were passed on downstream.
  void emitted(std::uint64_t n = 1) noexcept { emitted_.fetch_add(n, std::memory_order_relaxed); }

  [[nodiscard]] NodeReport report() const {
    NodeReport r;
    r.name = name_;
    r.kind = kind_;
    r.concurrency = concurrency_;
    r.items = items_.load();
    r.failed = failed_.load();
    r.emitted = emitted_.load();
    r.busy_s = static_cast<double>(busy_ns_.load()) / 1e9;
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
  std::atomic<std::uint64_t> items_{0}, failed_{0}, emitted_{0}, busy_ns_{0};
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
