#pragma once
// Internal: the recorder behind GraphOptions::trace_path.
//
// Every body and every I/O operation is one span (node, item key, thread, start, end, failure), and
// each start and end samples the node's items in flight (queued + running) for a counter track.
// Each thread appends to its own buffers (no lock); run() writes them as Chrome-trace JSON at the end.
// With no trace the nodes test one pointer, nothing more.
#include <oneapi/tbb/enumerable_thread_specific.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "pixflow/engine/result.hpp"

namespace pixflow::detail {

class Trace {
 public:
  using clock = std::chrono::steady_clock;

  /// A thread id for spans that are not on a thread: an I/O operation's lane (one per operation in
  /// flight in a node, so spans on one lane never overlap).
  static constexpr std::uint32_t lane_base = 1'000'000;

  Trace() = default;

  /// Nanoseconds since the run started.
  [[nodiscard]] std::int64_t now() const noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - origin_).count();
  }
  /// A body of node `node` ran from `start` to now on this thread.
  void body(std::size_t node, const ItemKey& key, std::int64_t start, const std::string* failure, std::int64_t in_flight_start,
            std::int64_t in_flight_end) {
    Buffer& b = buffers_.local();
    const std::int64_t end = now();
    b.spans.push_back({node, b.tid, start, end, key, failure != nullptr ? *failure : std::string()});
    b.counts.push_back({node, start, in_flight_start});
    b.counts.push_back({node, end, in_flight_end});
  }
  /// An I/O operation of node `node` ran from `start` to now on lane `lane` (see lane_base).
  void operation(std::size_t node, std::uint32_t lane, const ItemKey& key, std::int64_t start, const std::string* failure,
                 std::int64_t in_flight_start, std::int64_t in_flight_end) {
    Buffer& b = buffers_.local();
    const std::int64_t end = now();
    b.spans.push_back({node, lane_base + lane, start, end, key, failure != nullptr ? *failure : std::string()});
    b.counts.push_back({node, start, in_flight_start});
    b.counts.push_back({node, end, in_flight_end});
  }

  /// Writes the run's events as {"traceEvents": [...]} to `path`, node names from `names`; returns
  /// false if the file cannot be written.
  bool write(const std::string& path, const std::vector<std::string>& names, const std::vector<std::string>& kinds) const;
  /// Forgets the events and starts the clock again (the graph is idle).
  void restart() {
    buffers_.clear();
    origin_ = clock::now();
  }

 private:
  struct Span {
    std::size_t node;
    std::uint32_t tid;
    std::int64_t start, end;
    ItemKey key;
    std::string failure;
  };
  struct Count {
    std::size_t node;
    std::int64_t ts;
    std::int64_t value;
  };
  struct Buffer {
    std::uint32_t tid = next_tid().fetch_add(1, std::memory_order_relaxed);
    std::vector<Span> spans;
    std::vector<Count> counts;
  };
  static std::atomic<std::uint32_t>& next_tid() {
    static std::atomic<std::uint32_t> n{1};
    return n;
  }
  clock::time_point origin_ = clock::now();
  mutable tbb::enumerable_thread_specific<Buffer> buffers_;
};

}  // namespace pixflow::detail
