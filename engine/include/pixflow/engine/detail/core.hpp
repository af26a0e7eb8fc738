#pragma once
// Internal: the state a Graph shares with the Streams built on it — the tbb::flow::graph, its arena,
// the node storage, the failure path and the max_in_flight limiter.
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pixflow/engine/concurrency.hpp"
#include "pixflow/engine/detail/node_stats.hpp"
#include "pixflow/engine/detail/source_pump.hpp"
#include "pixflow/engine/result.hpp"

namespace pixflow::detail {

/// An item on an edge of the graph. The value is shared so that TBB's internal copies of messages
/// (buffers, queues) stay cheap; exactly one body consumes it and moves the value out.
template <class T>
struct Packet {
  ItemKey key;
  std::shared_ptr<T> value;
};

/// The part of a graph after one `limit()`: at most `threshold` items are alive in it. An item gives
/// its place back when it leaves the scope: done, failed, or expanded into children.
struct Scope {
  tbb::flow::receiver<tbb::flow::continue_msg>* decrementer = nullptr;  // of the limiter, or
  SourcePump* pump = nullptr;  // the source this scope asks for items, when one feeds it directly
  std::size_t threshold = 0;
  std::atomic<std::size_t> live{0}, peak_live{0};

  /// An item starts its first body in the scope (counted for the report).
  void enter() noexcept { raise_peak(peak_live, live.fetch_add(1, std::memory_order_relaxed) + 1); }
  /// An item leaves the scope: its place goes to the next waiting item.
  void release() {
    live.fetch_sub(1, std::memory_order_relaxed);
    if (pump != nullptr)
      pump->free_places(1);
    else
      decrementer->try_put(tbb::flow::continue_msg());
  }
};

/// A failed item on its way to the failure sink, with the scope whose place it holds (or nullptr).
struct FailurePacket {
  ItemKey key;
  std::string stage;
  std::string reason;
  Scope* scope = nullptr;
};

inline std::size_t tbb_concurrency(Concurrency c) {
  return c.is_unlimited() ? std::size_t{tbb::flow::unlimited} : c.limit();
}

/// Runs a user body, turning an escaping exception into a failure of this item: an exception that
/// left a TBB body would cancel the whole graph.
template <class R, class F>
R invoke_guarded(F&& f) noexcept {
  try {
    return std::forward<F>(f)();
  } catch (const std::exception& e) {
    return Failure{std::string("internal error: ") + e.what()};
  } catch (...) {
    return Failure{"internal error: unknown exception"};
  }
}

class GraphCore {
 public:
  using failure_sink_t = tbb::flow::function_node<FailurePacket, tbb::flow::continue_msg>;

  std::size_t threads;                      // resolved: >= 1
  std::size_t max_in_flight;
  std::optional<tbb::global_control> parallelism;  // only when threads > the default
  tbb::task_arena arena;
  BodyClock body_clock;  // times every body; its rate is calibrated from here to each report
  std::unique_ptr<tbb::flow::graph> graph;  // constructed inside `arena`, so its tasks run there
  std::deque<std::shared_ptr<void>> nodes;  // owns every node; destroyed before `graph`
  std::deque<NodeStats> stats;
  std::deque<Edge> edges;
  std::vector<std::function<void()>> activations;  // input_node::activate for each source
  // For each fused chain: builds it, dropping its outputs, if no stage ended it (run() calls these).
  std::vector<std::function<void()>> chain_closers;
  std::unique_ptr<failure_sink_t> failure_sink;
  std::deque<Scope> scopes;
  std::deque<SourcePump> pumps;
  Scope* main_scope = nullptr;  // the one made by limit() with max_in_flight, reported as peak_live

  std::mutex hooks_mutex;
  std::function<void(const ItemFailure&)> on_failure;
  std::vector<std::function<void()>> on_cancel;
  std::atomic<bool> cancelled{false};
  std::string cancel_reason;  // written once under hooks_mutex before `cancelled` is set

  GraphCore(std::size_t threads_wanted, std::size_t max_in_flight_wanted);
  ~GraphCore();
  GraphCore(const GraphCore&) = delete;
  GraphCore& operator=(const GraphCore&) = delete;

  template <class Node, class... Args>
  Node& make_node(Args&&... args) {
    auto node = std::make_shared<Node>(*graph, std::forward<Args>(args)...);
    Node& ref = *node;
    nodes.push_back(std::move(node));
    return ref;
  }
  NodeStats& add_stats(std::string name, std::string kind, Concurrency c) {
    return stats.emplace_back(std::move(name), std::move(kind), c, body_clock, threads);
  }
  Edge& add_edge() { return edges.emplace_back(); }

  SourcePump& add_pump(std::function<bool()> pull) { return pumps.emplace_back(cancelled, std::move(pull)); }
  Scope& add_scope(std::size_t threshold) {
    Scope& scope = scopes.emplace_back();
    scope.threshold = threshold;
    return scope;
  }
  void cancel(const std::string& reason);
  /// Sends a failed item to the failure sink (from any body).
  void fail(FailurePacket&& failed) { failure_sink->try_put(std::move(failed)); }
  /// Builds the chains that no stage ended (a stream left without a next stage).
  void close_chains() {
    for (auto& close : std::exchange(chain_closers, {})) close();
  }
};

}  // namespace pixflow::detail
