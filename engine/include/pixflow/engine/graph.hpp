#pragma once
/// @file
/// Graph: a typed task graph of streams of items — any DAG of sources, inputs, compute, expand, io,
/// route, merge and sink nodes, with limits on items in flight — run on an Executor, once or many times.
///
/// Build it from `source` (pulled) or `input` (pushed from outside threads) and add nodes to the
/// Streams (see stream.hpp for the node kinds). Items are keyed (ItemKey), failures are values
/// reported to `on_failure` with the node's name, and each run ends with a RunReport of per-node
/// figures. `GraphOptions::trace_path` writes a Chrome-trace JSON of every body and I/O operation of a
/// run (load it in chrome://tracing or ui.perfetto.dev); `dot()` gives the graph's shape as Graphviz DOT.
///
/// @code
/// pixflow::Graph graph({.threads = 0, .max_in_flight = 16});
/// int next = 0;
/// std::atomic<int> counted{0};
/// graph.on_failure([](const pixflow::ItemFailure& f) { std::cerr << f.stage << ": " << f.reason << '\n'; });
/// auto numbers = graph.source("numbers", [&]() -> std::optional<int> { return next < 100 ? std::optional(next++) : std::nullopt; })
///                    .limit();
/// numbers.compute("square", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<long> { return long{v} * v; })
///     .sink("print", pixflow::Concurrency(1), [](long v) { std::cout << v << '\n'; return pixflow::ok(); });
/// numbers.sink("count", pixflow::Concurrency(1), [&](int) { ++counted; return pixflow::ok(); });  // a broadcast
/// pixflow::RunReport report = graph.run();
/// std::cout << graph.dot();
/// @endcode
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pixflow/engine/concurrency.hpp"
#include "pixflow/engine/detail/core.hpp"
#include "pixflow/engine/detail/nodes.hpp"
#include "pixflow/engine/executor.hpp"
#include "pixflow/engine/input.hpp"
#include "pixflow/engine/result.hpp"
#include "pixflow/engine/stats.hpp"
#include "pixflow/engine/stream.hpp"

namespace pixflow {

/// How a Graph runs.
struct GraphOptions {
  std::size_t threads = 0;          ///< worker threads of the graph's own executor; 0 = every core
  std::size_t max_in_flight = 64;   ///< items alive at once behind `Stream::limit()`; an input's default capacity
  double timeout_s = 0;             ///< cancel a run after this long; 0 = never
  bool stop_on_interrupt = false;   ///< cancel on SIGINT/SIGTERM (see install_interrupt_handler)
  std::stop_token stop{};           ///< cancel when a stop is requested (from any thread)
  /// Called every `progress_interval_s` during the run, from a watchdog thread, with the live figures
  /// of every node (NodeReport::active / queued are the current values).
  std::function<void(const std::vector<NodeReport>&)> on_progress{};
  double progress_interval_s = 0.5;
  /// Write a Chrome-trace JSON of each run here: a span per body and per I/O operation (node, item,
  /// thread, start, end, failure) and a counter track of items in flight per node. "" = no trace
  /// (then it costs one test of a pointer per body).
  std::string trace_path{};
};

class Graph {
 public:
  /// A graph with an executor of its own, of `options.threads` threads.
  explicit Graph(GraphOptions options = {});
  /// A graph run on `executor` (which must outlive it); `options.threads` is not used.
  explicit Graph(Executor& executor, GraphOptions options = {});
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// A source: `next()` returns the next item or std::nullopt when there are no more. It is called
  /// one call at a time; right before a limit, only when the limit has room (it must not block long).
  template <class Next>
  auto source(std::string name, Next next) -> Stream<typename std::invoke_result_t<Next&>::value_type>;

  /// An input fed from outside threads (see input.hpp); `capacity` 0 = max_in_flight.
  template <class T>
  Input<T> input(std::string name, std::size_t capacity = 0);

  /// Called for each failed item, one call at a time (never concurrently). A failed broadcast copy
  /// is reported on its own; the item's places are given back once all its copies have ended.
  void on_failure(std::function<void(const ItemFailure&)> handler);
  /// Called once when a run is cancelled (timeout, interrupt, cancel()): stop outside services here
  /// so they complete their pending operations (each Completion must still be called, e.g. with a
  /// Failure "cancelled"), or the run cannot end.
  void on_cancel(std::function<void()> hook);

  /// Runs the graph until its sources are exhausted, its inputs closed and every item has ended, or
  /// until it is cancelled. Can be called again when it returns (a source is asked again; inputs are
  /// open again); not from two threads at once (std::logic_error).
  RunReport run();
  /// Stops the current run (or the next, if none is running): no new bodies start; running bodies
  /// finish. Thread-safe; the first reason wins.
  void cancel(const std::string& reason = "cancelled");
  [[nodiscard]] bool cancelled() const noexcept;
  [[nodiscard]] const GraphOptions& options() const noexcept { return options_; }
  /// The figures of every node now (thread-safe; also during a run).
  [[nodiscard]] std::vector<NodeReport> snapshot() const;
  /// The number of worker threads the graph runs on.
  [[nodiscard]] std::size_t threads() const noexcept;
  /// The graph's shape in Graphviz DOT: every node (name, kind, concurrency) and edge (a route's
  /// output name on its edges).
  [[nodiscard]] std::string dot() const;

 private:
  Graph(Executor* executor, GraphOptions options);
  GraphOptions options_;
  std::unique_ptr<Executor> own_executor_;
  std::unique_ptr<detail::GraphCore> core_;
  std::atomic<bool> running_{false};
};

// ---------------------------------------------------------------------------------------------------
// Implementation

template <class Next>
auto Graph::source(std::string name, Next next) -> Stream<typename std::invoke_result_t<Next&>::value_type> {
  using T = typename std::invoke_result_t<Next&>::value_type;
  auto& core = *core_;
  auto& out = core.make<detail::Outlet<T>>();
  const std::size_t id = core.add_node(std::move(name), "source", Concurrency(1), "", true);
  auto& node = core.make<detail::SourceNode<T>>(core, id, std::function<std::optional<T>()>(std::move(next)), out);
  core.run_states.push_back(&node);
  return Stream<T>(&core, &out, id, {}, &node);
}

template <class T>
Input<T> Graph::input(std::string name, std::size_t capacity) {
  auto& core = *core_;
  if (capacity == 0) capacity = core.max_in_flight;
  auto& out = core.make<detail::Outlet<T>>();
  const std::size_t id = core.add_node(std::move(name), "input", Concurrency(capacity), "capacity " + std::to_string(capacity), true);
  auto state = std::make_shared<detail::InputState<T>>(core, id, capacity, out);
  core.owned.push_back(state);
  core.run_states.push_back(state.get());
  core.on_destroy.push_back([state] { state->detach(); });
  return Input<T>(state, Stream<T>(&core, &out, id));
}

}  // namespace pixflow
