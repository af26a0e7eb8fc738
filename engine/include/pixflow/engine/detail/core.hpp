#pragma once
// Internal: what a Graph shares with the Streams, Inputs and nodes built on it — the tbb::flow::graph,
// the items on its edges, the places items hold in limits, the failure path, the node table.
//
// How items move: every node has a Port (its input) and an Outlet (the Ports of its successors). A
// node's body puts its result into its Outlet, which hands it to each successor: moved to the last,
// copied to the others (a broadcast). A Port of a node with a body is a tbb::flow::function_node
// (its concurrency, its queue, a task per item); a merge's or a limit's Port passes items on in the
// caller's thread.
#include <oneapi/tbb/flow_graph.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "pixflow/engine/concurrency.hpp"
#include "pixflow/engine/detail/body_clock.hpp"
#include "pixflow/engine/detail/node_stats.hpp"
#include "pixflow/engine/detail/trace.hpp"
#include "pixflow/engine/executor.hpp"
#include "pixflow/engine/result.hpp"

namespace pixflow::detail {

/// Something that lends places: a limit, or an input's capacity.
class PlaceLender {
 public:
  virtual ~PlaceLender() = default;
  virtual void give_back() noexcept = 0;
};

/// A place an item holds in a limit (or an input). Every copy of the item (its broadcast branches)
/// shares it; the place comes back when the last copy ends, done or failed. An item past two limits
/// holds a place in each: the inner one keeps the outer one.
class Hold {
 public:
  Hold(PlaceLender& lender, std::shared_ptr<Hold> outer) noexcept : lender_(&lender), outer_(std::move(outer)) {}
  ~Hold() { lender_->give_back(); }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;

 private:
  PlaceLender* lender_;
  std::shared_ptr<Hold> outer_;
};
using HoldPtr = std::shared_ptr<Hold>;

/// An item on its way: owned by one node at a time (a broadcast copies it, one Item per branch).
template <class T>
struct Item {
  ItemKey key;
  T value;
  HoldPtr hold;
};
template <class T>
using ItemPtr = std::unique_ptr<Item<T>>;

/// An item as a tbb::flow message. TBB copies a message from the caller to a queue to a task to the
/// body, and uses only the last copy: so a copy takes the item over from its source (as auto_ptr did)
/// and no reference count is paid per hop. A message TBB drops (a cancelled run) frees its item, and
/// so gives its places back.
template <class T>
class Msg {
 public:
  Msg() = default;
  explicit Msg(ItemPtr<T> item) noexcept : item_(item.release()) {}
  Msg(const Msg& other) noexcept : item_(std::exchange(other.item_, nullptr)) {}
  Msg& operator=(const Msg& other) noexcept {
    if (this != &other) {
      delete item_;
      item_ = std::exchange(other.item_, nullptr);
    }
    return *this;
  }
  ~Msg() { delete item_; }
  /// The item, taken out of the message.
  [[nodiscard]] ItemPtr<T> take() const noexcept { return ItemPtr<T>(std::exchange(item_, nullptr)); }

 private:
  mutable Item<T>* item_ = nullptr;
};

/// The input of a node.
template <class T>
class Port {
 public:
  virtual ~Port() = default;
  virtual void put(ItemPtr<T> item) = 0;
};

/// The output of a node: its successors' ports. More than one = a broadcast.
template <class T>
class Outlet {
 public:
  void connect(Port<T>& port) {
    if constexpr (!std::is_copy_constructible_v<T>) {
      if (!targets_.empty()) throw std::logic_error("pixflow: a stream of a type that cannot be copied has one successor at most");
    }
    targets_.push_back(&port);
  }
  /// Hands the item to every successor; with none, the item ends here.
  void put(ItemPtr<T> item) const {
    const std::size_t n = targets_.size();
    if (n == 0) return;
    if constexpr (std::is_copy_constructible_v<T>) {
      for (std::size_t i = 0; i + 1 < n; ++i) targets_[i]->put(std::make_unique<Item<T>>(Item<T>{item->key, item->value, item->hold}));
    }
    targets_[n - 1]->put(std::move(item));
  }
  [[nodiscard]] std::size_t size() const noexcept { return targets_.size(); }
  [[nodiscard]] Port<T>* only() const noexcept { return targets_.size() == 1 ? targets_[0] : nullptr; }

 private:
  std::vector<Port<T>*> targets_;
};

/// A node as the DOT dump and the report see it.
struct NodeInfo {
  std::string name;
  std::string kind;
  std::string label;          // for DOT: "limit 16", "unlimited", "≤4"
  NodeStats* stats = nullptr;  // nullptr for a limit (not in the report)
};
struct EdgeInfo {
  std::size_t from, to;
  std::string label;  // a route's output name
};

/// A failed item on its way to on_failure, holding its places until the handler returns.
struct FailureMsg {
  ItemKey key;
  std::size_t node = 0;
  std::string reason;
  HoldPtr hold;
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

/// Per-run state of a part of the graph (a limit, a source, an input): reset between runs, and told
/// when the run is cancelled.
class RunState {
 public:
  virtual ~RunState() = default;
  virtual void on_cancel() {}
  virtual void on_run_end() {}
};

class GraphCore {
 public:
  using failure_node_t = tbb::flow::function_node<FailureMsg, tbb::flow::continue_msg>;

  GraphCore(Executor& executor, std::size_t max_in_flight, bool trace);
  ~GraphCore();
  GraphCore(const GraphCore&) = delete;
  GraphCore& operator=(const GraphCore&) = delete;

  Executor& executor;
  std::size_t max_in_flight;
  BodyClock body_clock;  // times every body; its rate is calibrated from here to each report
  std::unique_ptr<Trace> trace;  // when GraphOptions::trace_path is set
  std::unique_ptr<tbb::flow::graph> graph;  // constructed inside the executor's arena, so its tasks run there
  std::deque<std::shared_ptr<void>> owned;  // nodes, outlets, limits; destroyed before `graph`
  std::deque<NodeStats> stats;
  std::vector<NodeInfo> nodes;
  std::vector<EdgeInfo> edges;
  std::vector<RunState*> run_states;
  std::vector<std::function<void()>> starters;  // start each source at the start of a run
  std::vector<std::function<void()>> on_destroy;  // detach each input from the graph going away
  std::unique_ptr<failure_node_t> failure_node;
  std::atomic<std::size_t>* main_peak_live = nullptr;  // of the limit() with max_in_flight, for the report
  std::atomic<std::uint64_t> next_seq{0};              // keys of items from sources and inputs
  /// Threads outside the graph's tasks (an I/O completion, a push, a close) that hold the graph's
  /// wait open: each counts itself in before graph->reserve_wait() and out after release_wait(), its
  /// last touch of the graph. After the wait, run() and the destructor wait for the count to reach 0:
  /// the wait already orders those threads before them, but inside libtbb, which ThreadSanitizer does
  /// not see; the count makes the order visible (and nothing is freed under a thread still in
  /// release_wait()).
  std::atomic<std::int64_t> outside{0};
  void outside_in() noexcept { outside.fetch_add(1, std::memory_order_relaxed); }
  void outside_out() noexcept { outside.fetch_sub(1, std::memory_order_release); }
  void wait_outside() const noexcept {
    while (outside.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

  std::mutex hooks_mutex;
  std::function<void(const ItemFailure&)> on_failure;
  std::vector<std::function<void()>> on_cancel;
  std::atomic<bool> cancelled{false};
  std::string cancel_reason;  // written once under hooks_mutex before `cancelled` is set

  template <class Node, class... Args>
  Node& make(Args&&... args) {
    auto node = std::make_shared<Node>(std::forward<Args>(args)...);
    Node& ref = *node;
    owned.push_back(std::move(node));
    return ref;
  }
  template <class Node, class... Args>
  Node& make_flow_node(Args&&... args) {
    return make<Node>(*graph, std::forward<Args>(args)...);
  }
  /// Adds a node to the table (and, if `reported`, to the report); returns its id.
  std::size_t add_node(std::string name, std::string kind, Concurrency c, std::string label, bool reported) {
    NodeStats* s = reported ? &stats.emplace_back(name, kind, c, body_clock, executor.threads()) : nullptr;
    nodes.push_back({std::move(name), std::move(kind), std::move(label), s});
    return nodes.size() - 1;
  }
  NodeStats& stats_of(std::size_t node) { return *nodes[node].stats; }
  void add_edge(std::size_t from, std::size_t to, std::string label) { edges.push_back({from, to, std::move(label)}); }
  ItemKey next_key() noexcept { return ItemKey(next_seq.fetch_add(1, std::memory_order_relaxed)); }

  void cancel(const std::string& reason);
  [[nodiscard]] bool is_cancelled() const noexcept { return cancelled.load(std::memory_order_relaxed); }
  /// Sends a failed item to on_failure (from any thread).
  void fail(ItemKey key, std::size_t node, std::string reason, HoldPtr hold) {
    failure_node->try_put(FailureMsg{std::move(key), node, std::move(reason), std::move(hold)});
  }
};

}  // namespace pixflow::detail
