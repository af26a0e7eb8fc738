#pragma once
/// @file
/// Graph and Stream: build a typed, linear task graph over tbb::flow and run it.
///
/// A Graph starts from a source; each call on a Stream adds one stage and returns the Stream of its
/// output. Stage kinds:
/// - `compute(name, concurrency, f)`: `f(T) -> Result<U>`, a function_node; work stealing spreads it
///   over every core when the concurrency is unlimited. Adjacent unlimited compute stages (and an
///   unlimited sink after them) run in one node, one task per item (see detail/fusion.hpp); each
///   still has its own figures in the report.
/// - `expand(name, concurrency, f)`: `f(T, Emitter<U>&) -> Result<void>`, one item in, many out
///   (a listing page in, its images out).
/// - `io<U>(name, concurrency, f)`: `f(T, Completion<U>)` hands the work to an outside service (an
///   HTTP loop thread) and returns at once; the service calls the Completion later, from any thread.
///   The concurrency bounds operations in flight, however few threads there are.
/// - `limit()`: from here on at most `max_in_flight` items are alive; each gives its place back when
///   it leaves the graph, done or failed (back-pressure). `limit(n)` allows n; an `expand` stage ends
///   the scope of its input (its children are new items). A stream can pass several limits.
/// - `sink(name, concurrency, f)`: `f(T) -> Result<void>`, the end of an item's path.
/// A failed item (a Failure returned, or an exception escaping a body) goes to `on_failure` with its
/// stage and reason; the other items go on.
///
/// @code
/// pixflow::Graph graph({.threads = 0, .max_in_flight = 16});
/// int next = 0;
/// graph.on_failure([](const pixflow::ItemFailure& f) { std::cerr << f.stage << ": " << f.reason << '\n'; });
/// graph.source("numbers", [&]() -> std::optional<int> { return next < 100 ? std::optional(next++) : std::nullopt; })
///     .limit()
///     .compute("square", pixflow::Concurrency::unlimited(),
///              [](int v) -> pixflow::Result<long> { return long{v} * v; })
///     .sink("print", pixflow::Concurrency(1), [](long v) { std::cout << v << '\n'; return pixflow::ok(); });
/// pixflow::RunReport report = graph.run();
/// @endcode
#include <oneapi/tbb/flow_graph.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <vector>
#include <utility>

#include "pixflow/engine/concurrency.hpp"
#include "pixflow/engine/detail/core.hpp"
#include "pixflow/engine/detail/fusion.hpp"
#include "pixflow/engine/result.hpp"
#include "pixflow/engine/stats.hpp"

namespace pixflow {

/// How a Graph runs.
struct GraphOptions {
  std::size_t threads = 0;          ///< worker threads; 0 = every core
  std::size_t max_in_flight = 64;   ///< items alive at once behind `Stream::limit()`
  double timeout_s = 0;             ///< cancel the run after this long; 0 = never
  bool stop_on_interrupt = false;   ///< cancel on SIGINT/SIGTERM (see install_interrupt_handler)
  std::stop_token stop{};           ///< cancel when a stop is requested (from any thread)
  /// Called every `progress_interval_s` during the run, from a watchdog thread, with the live figures
  /// of every node (NodeReport::active / queued are the current values).
  std::function<void(const std::vector<NodeReport>&)> on_progress{};
  double progress_interval_s = 0.5;
};

template <class T>
class Stream;

/// A task graph: one source, a chain of stages, run once.
class Graph {
 public:
  explicit Graph(GraphOptions options = {});
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// The start of the graph. `next()` returns the next item or std::nullopt when there are no more;
  /// it is called by one thread at a time, when the graph has room (it must not block for long).
  template <class Next>
  auto source(std::string name, Next next)
      -> Stream<typename std::invoke_result_t<Next&>::value_type>;

  /// Called for each failed item, one call at a time (never concurrently).
  void on_failure(std::function<void(const ItemFailure&)> handler);
  /// Called once when the run is cancelled (timeout, interrupt, cancel()): stop outside services here
  /// so they complete their pending operations (each Completion must still be called, e.g. with a
  /// Failure "cancelled"), or the run cannot end.
  void on_cancel(std::function<void()> hook);

  /// Runs the graph to the end, or until it is cancelled. Can be called once.
  RunReport run();
  /// Stops the run: no new bodies start; running bodies finish. Thread-safe; the first reason wins.
  void cancel(const std::string& reason = "cancelled");
  [[nodiscard]] bool cancelled() const noexcept;
  [[nodiscard]] const GraphOptions& options() const noexcept { return options_; }
  /// The figures of every node now (thread-safe; also during the run).
  [[nodiscard]] std::vector<NodeReport> snapshot() const;
  /// The number of worker threads the graph runs on.
  [[nodiscard]] std::size_t threads() const noexcept;

 private:
  GraphOptions options_;
  std::unique_ptr<detail::GraphCore> core_;
  bool ran_ = false;
};

/// Delivers the result of one I/O operation, exactly once, from any thread. Copies share one
/// delivery: the first call wins and later calls are ignored. If every copy is destroyed without a
/// call, the item fails with "operation abandoned", so the graph can never hang on a lost operation.
template <class U>
class Completion {
 public:
  struct State {
    std::function<void(Result<U>&&)> deliver;
    std::atomic<bool> done{false};
    void complete(Result<U>&& result) {
      if (!done.exchange(true)) deliver(std::move(result));
    }
    State() = default;
    State(const State&) = delete;
    State& operator=(const State&) = delete;
    ~State() {
      if (!done.load()) complete(Failure{"operation abandoned"});
    }
  };
  explicit Completion(std::shared_ptr<State> state) : state_(std::move(state)) {}
  void operator()(Result<U> result) const { state_->complete(std::move(result)); }

 private:
  std::shared_ptr<State> state_;
};

/// Passes the children of one item downstream from an `expand` body.
template <class U>
class Emitter {
 public:
  using Put = std::function<void(ItemKey, U&&)>;
  Emitter(ItemKey parent, Put put) : parent_(parent), put_(std::move(put)) {}
  /// Sends one child on; children are keyed {parent.seq, 1, 2, ...} in emission order.
  /// Returns the key it was given.
  ItemKey operator()(U value) {
    const ItemKey key{parent_.seq, ++count_};
    put_(key, std::move(value));
    return key;
  }
  /// The key the next call will give (to register it before the child can be seen downstream).
  [[nodiscard]] ItemKey next_key() const noexcept { return ItemKey{parent_.seq, count_ + 1}; }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

 private:
  ItemKey parent_;
  Put put_;
  std::uint64_t count_ = 0;
};

/// The output of the last stage added; add the next stage to it. See graph.hpp's example.
template <class T>
class Stream {
 public:
  using value_type = T;

  template <class F>
  auto compute(std::string name, Concurrency concurrency, F f)
      -> Stream<typename std::invoke_result_t<const F&, T&&>::value_type>;

  template <class U, class F>
  Stream<U> expand(std::string name, Concurrency concurrency, F f);

  template <class U, class F>
  Stream<U> io(std::string name, Concurrency concurrency, F f);

  Stream<T> limit();
  Stream<T> limit(std::size_t places);

  template <class F>
  void sink(std::string name, Concurrency concurrency, F f);

 private:
  friend class Graph;
  template <class>
  friend class Stream;
  using packet = detail::Packet<T>;

  using next_fn = std::function<std::optional<T>()>;
  struct PendingSource {
    next_fn next;
    detail::NodeStats* stats;
  };

  Stream(detail::GraphCore* core, tbb::flow::sender<packet>* out, detail::Edge* edge, detail::Scope* scope)
      : core_(core), out_(out), edge_(edge), scope_(scope) {}
  Stream(detail::GraphCore* core, PendingSource source, detail::Edge* edge)
      : core_(core), out_(nullptr), edge_(edge), scope_(nullptr), source_(std::move(source)) {}
  Stream(detail::GraphCore* core, std::shared_ptr<detail::FusedChain<T>> chain, detail::Edge* edge, detail::Scope* scope)
      : core_(core), out_(nullptr), edge_(edge), scope_(scope), chain_(std::move(chain)) {}

  /// The sender the next stage connects to. A source is built lazily: as an input_node, or, when
  /// limit() follows it, as a pump that asks for the next item each time a place frees up. An open
  /// fused chain is built here, ending in a broadcast_node.
  tbb::flow::sender<packet>& output();
  /// The builder of the fused chain this stream ends, for a stage that joins it; or, when the stream
  /// does not end an open chain, the builder of a new chain fed by output().
  std::function<void(detail::Step<T>)> take_chain();
  /// Whether this stream ends an open fused chain (that an unlimited stage would join).
  [[nodiscard]] bool joins_chain() const noexcept { return chain_ && chain_->open(); }
  /// A Stream ending a new open chain built by `build` (closed by run() if no stage follows).
  template <class U>
  Stream<U> open_chain(std::function<void(detail::Step<U>)> build, detail::Edge* edge);
  /// The body that asks the source for one item and sends it on.
  static auto source_body(detail::GraphCore* core, PendingSource source, detail::Edge* edge);

  /// Wires a multifunction node's failure port to the failure sink.
  template <class Node>
  void connect_failures(Node& node) {
    tbb::flow::make_edge(tbb::flow::output_port<1>(node), *core_->failure_sink);
  }
  /// For the first stage after limit(): the scope it counts items entering (else nullptr).
  detail::Scope* take_entry_mark() { return std::exchange(entry_mark_, false) ? scope_ : nullptr; }

  detail::GraphCore* core_;
  tbb::flow::sender<packet>* out_;
  detail::Edge* edge_;
  detail::Scope* scope_;  // the limit() scope this stream is in, or nullptr
  std::optional<PendingSource> source_;  // set until the source is built
  std::shared_ptr<detail::FusedChain<T>> chain_;  // the fused stages this stream ends, until built
  bool entry_mark_ = false;
  bool pumped_ = false;  // out_ is a source pump's output (a chain fed by it can take items by HandOff)
};

// ---------------------------------------------------------------------------------------------------
// Implementation

template <class Next>
auto Graph::source(std::string name, Next next) -> Stream<typename std::invoke_result_t<Next&>::value_type> {
  using T = typename std::invoke_result_t<Next&>::value_type;
  auto& core = *core_;
  detail::NodeStats& stats = core.add_stats(std::move(name), "source", Concurrency(1));
  detail::Edge& edge = core.add_edge();
  return Stream<T>(&core, typename Stream<T>::PendingSource{std::move(next), &stats}, &edge);
}

template <class T>
auto Stream<T>::source_body(detail::GraphCore* core, PendingSource source, detail::Edge* edge) {
  // Called one at a time by TBB (input_node, or a serial pump) with where to put the item.
  return [core, source = std::move(source), edge, seq = std::uint64_t{0}, exhausted = false](auto&& put) mutable -> bool {
    if (exhausted) return false;
    source.stats->arrive();
    const auto started = source.stats->start();
    std::optional<T> item;
    try {
      item = source.next();
    } catch (const std::exception& e) {
      // The source itself is broken (not one item): nothing more can come, so stop the run.
      core->cancel(std::string("source failed: ") + e.what());
    }
    source.stats->finish(started, false);
    if (!item) {
      exhausted = true;
      return false;
    }
    source.stats->emitted();
    edge->arrive();
    put(packet{ItemKey{seq++, 0}, std::make_shared<T>(std::move(*item))});
    return true;
  };
}

template <class T>
tbb::flow::sender<detail::Packet<T>>& Stream<T>::output() {
  if (source_) {
    using node_t = tbb::flow::input_node<packet>;
    auto body = source_body(core_, std::move(*source_), edge_);
    source_.reset();
    auto& node = core_->make_node<node_t>([body](tbb::flow_control& fc) mutable -> packet {
      packet made;
      if (!body([&made](packet&& p) { made = std::move(p); })) fc.stop();
      return made;
    });
    core_->activations.emplace_back([&node] { node.activate(); });
    out_ = &node;
  } else if (chain_ && chain_->open()) {
    auto& out = core_->make_node<tbb::flow::broadcast_node<packet>>();
    chain_->take()([&out](ItemKey key, T&& value, detail::BodyClock::ticks) { out.try_put(packet{key, std::make_shared<T>(std::move(value))}); });
    out_ = &out;
  }
  return *out_;
}

template <class T>
std::function<void(detail::Step<T>)> Stream<T>::take_chain() {
  if (joins_chain()) return chain_->take();
  // A new chain: its first stage runs in a node of unlimited concurrency fed by this stream. The node
  // has no outputs of its own; the chain's last stage puts its results where they go.
  // Fed by a source pump, it also runs the items the pump hands to its thread (detail::HandOff).
  tbb::flow::sender<packet>& input = output();
  const void* pump = pumped_ ? &input : nullptr;
  return [core = core_, &input, pump](detail::Step<T> first) {
    using node_t = tbb::flow::multifunction_node<packet, std::tuple<tbb::flow::continue_msg>>;
    auto run = [core, first = std::move(first)](const packet& in) { first(in.key, std::move(*in.value), core->body_clock.now()); };
    auto& node = core->make_node<node_t>(tbb::flow::unlimited,
                                         [pump, run = std::move(run)](const packet& in, typename node_t::output_ports_type&) {
                                           if (pump != nullptr)
                                             detail::HandOff<packet>::serve(pump, in, run);
                                           else
                                             run(in);
                                         });
    tbb::flow::make_edge(input, node);
  };
}

template <class T>
template <class U>
Stream<U> Stream<T>::open_chain(std::function<void(detail::Step<U>)> build, detail::Edge* edge) {
  auto chain = std::make_shared<detail::FusedChain<U>>();
  chain->build = std::move(build);
  core_->chain_closers.emplace_back([chain] {
    if (chain->open()) chain->take()([](ItemKey, U&&, detail::BodyClock::ticks) {});  // no next stage: the outputs are dropped
  });
  return Stream<U>(core_, std::move(chain), edge, scope_);
}

template <class T>
template <class F>
auto Stream<T>::compute(std::string name, Concurrency concurrency, F f)
    -> Stream<typename std::invoke_result_t<const F&, T&&>::value_type> {
  using R = std::invoke_result_t<const F&, T&&>;
  using U = typename R::value_type;
  using node_t = tbb::flow::multifunction_node<packet, std::tuple<detail::Packet<U>, detail::FailurePacket>>;
  auto* core = core_;
  detail::NodeStats& stats = core->add_stats(name, "compute", concurrency);
  detail::Edge& next_edge = core->add_edge();
  if (concurrency.is_unlimited()) {
    // Joins (or starts) a fused chain: built once the next stage is known. A stage that joins gets
    // its items from the previous one directly: they never queue, so they are not counted as queued.
    const bool queued = !joins_chain();
    if (queued) edge_->consumer.store(&stats, std::memory_order_release);
    auto step = [core, &stats, &next_edge, f = std::move(f), name = std::move(name), scope = scope_,
                 entry = take_entry_mark(), queued](detail::Step<U>& next, ItemKey key, T&& value, detail::BodyClock::ticks now) {
      if (core->cancelled.load(std::memory_order_relaxed)) return;  // as a cancelled task would be dropped
      if (entry) entry->enter();
      const auto started = queued ? stats.start(now) : stats.start_unqueued(now);
      R result = detail::invoke_guarded<R>([&] { return f(std::move(value)); });
      const auto ended = stats.finish(started, !result.ok());
      if (result) {
        stats.emitted(started);
        next_edge.arrive();
        next(key, std::move(result).value(), ended);
      } else {
        core->fail(detail::FailurePacket{key, name, std::move(result).failure().reason, scope});
      }
    };
    return open_chain<U>(
        [up = take_chain(), step = std::move(step)](detail::Step<U> next) mutable {
          up([step = std::move(step), next = std::move(next)](ItemKey key, T&& value, detail::BodyClock::ticks now) mutable {
            step(next, key, std::move(value), now);
          });
        },
        &next_edge);
  }
  edge_->consumer.store(&stats, std::memory_order_release);
  auto& node = core->make_node<node_t>(
      detail::tbb_concurrency(concurrency),
      [core, &stats, &next_edge, f = std::move(f), name, scope = scope_, entry = take_entry_mark()](
          const packet& in, typename node_t::output_ports_type& ports) {
        if (entry) entry->enter();
        const auto started = stats.start();
        R result = detail::invoke_guarded<R>([&] { return f(std::move(*in.value)); });
        stats.finish(started, !result.ok());
        if (result) {
          stats.emitted();
          next_edge.arrive();
          std::get<0>(ports).try_put(detail::Packet<U>{in.key, std::make_shared<U>(std::move(result).value())});
        } else {
          std::get<1>(ports).try_put(detail::FailurePacket{in.key, name, std::move(result).failure().reason, scope});
        }
      });
  tbb::flow::make_edge(output(), node);
  connect_failures(node);
  return Stream<U>(core, &tbb::flow::output_port<0>(node), &next_edge, scope_);
}

template <class T>
template <class U, class F>
Stream<U> Stream<T>::expand(std::string name, Concurrency concurrency, F f) {
  using node_t = tbb::flow::multifunction_node<packet, std::tuple<detail::Packet<U>, detail::FailurePacket>>;
  auto* core = core_;
  detail::NodeStats& stats = core->add_stats(name, "expand", concurrency);
  edge_->consumer.store(&stats, std::memory_order_release);
  detail::Edge& next_edge = core->add_edge();
  auto& node = core->make_node<node_t>(
      detail::tbb_concurrency(concurrency),
      [core, &stats, &next_edge, f = std::move(f), name, scope = scope_, entry = take_entry_mark()](
          const packet& in, typename node_t::output_ports_type& ports) {
        if (entry) entry->enter();
        const auto started = stats.start();
        Emitter<U> emit(in.key, [&](ItemKey key, U&& value) {
          stats.emitted();
          next_edge.arrive();
          std::get<0>(ports).try_put(detail::Packet<U>{key, std::make_shared<U>(std::move(value))});
        });
        Result<void> result = detail::invoke_guarded<Result<void>>([&] { return f(std::move(*in.value), emit); });
        stats.finish(started, !result.ok());
        if (!result)
          std::get<1>(ports).try_put(detail::FailurePacket{in.key, name, std::move(result).failure().reason, scope});
        else if (scope != nullptr)
          scope->release();  // the parent is done; its children are new items, outside this scope
      });
  tbb::flow::make_edge(output(), node);
  connect_failures(node);
  return Stream<U>(core, &tbb::flow::output_port<0>(node), &next_edge, nullptr);
}

template <class T>
template <class U, class F>
Stream<U> Stream<T>::io(std::string name, Concurrency concurrency, F f) {
  using result_packet = detail::Packet<Result<U>>;
  using async_t = tbb::flow::async_node<packet, result_packet>;
  using router_t = tbb::flow::multifunction_node<result_packet,
                                                 std::tuple<detail::Packet<U>, detail::FailurePacket, tbb::flow::continue_msg>>;
  auto* core = core_;
  detail::NodeStats& stats = core->add_stats(name, "io", concurrency);
  edge_->consumer.store(&stats, std::memory_order_release);
  detail::Edge& next_edge = core->add_edge();
  const bool bounded = !concurrency.is_unlimited();

  // The async body returns as soon as the operation is handed over; the bound on operations in flight
  // is a limiter in front of it, given back by the router when each operation completes.
  auto& async = core->make_node<async_t>(
      tbb::flow::unlimited,
      [core, &stats, f = std::move(f), entry = take_entry_mark()](const packet& in, typename async_t::gateway_type& gateway) {
        if (entry) entry->enter();
        const auto started = stats.start();
        auto state = std::make_shared<typename Completion<U>::State>();
        gateway.reserve_wait();
        state->deliver = [&gateway, &stats, key = in.key, started](Result<U>&& result) {
          stats.finish(started, !result.ok());
          gateway.try_put(result_packet{key, std::make_shared<Result<U>>(std::move(result))});
          gateway.release_wait();
        };
        Completion<U> done(state);
        state.reset();
        if (core->cancelled.load(std::memory_order_acquire)) {
          done(Failure{"cancelled"});
          return;
        }
        try {
          f(std::move(*in.value), done);
        } catch (const std::exception& e) {
          done(Failure{std::string("internal error: ") + e.what()});
        } catch (...) {
          done(Failure{"internal error: unknown exception"});
        }
      });
  auto& router = core->make_node<router_t>(
      tbb::flow::unlimited,
      [&stats, &next_edge, name, scope = scope_, bounded](const result_packet& in, typename router_t::output_ports_type& ports) {
        if (bounded) std::get<2>(ports).try_put(tbb::flow::continue_msg());
        Result<U>& result = *in.value;
        if (result) {
          stats.emitted();
          next_edge.arrive();
          std::get<0>(ports).try_put(detail::Packet<U>{in.key, std::make_shared<U>(std::move(result).value())});
        } else {
          std::get<1>(ports).try_put(detail::FailurePacket{in.key, name, std::move(result).failure().reason, scope});
        }
      });
  if (bounded) {
    auto& queue = core->make_node<tbb::flow::queue_node<packet>>();
    auto& gate = core->make_node<tbb::flow::limiter_node<packet>>(concurrency.limit());
    tbb::flow::make_edge(output(), queue);
    tbb::flow::make_edge(queue, gate);
    tbb::flow::make_edge(gate, async);
    tbb::flow::make_edge(tbb::flow::output_port<2>(router), gate.decrementer());
  } else {
    tbb::flow::make_edge(output(), async);
  }
  tbb::flow::make_edge(async, router);
  connect_failures(router);
  return Stream<U>(core, &tbb::flow::output_port<0>(router), &next_edge, scope_);
}

template <class T>
Stream<T> Stream<T>::limit() {
  Stream<T> limited = limit(core_->max_in_flight);
  core_->main_scope = limited.scope_;
  return limited;
}

template <class T>
Stream<T> Stream<T>::limit(std::size_t places) {
  if (places == 0) throw std::invalid_argument("pixflow::Stream::limit: places must be >= 1");
  detail::Scope& scope = core_->add_scope(places);
  tbb::flow::sender<packet>* gated = nullptr;
  const bool source_pumped = source_.has_value();
  if (source_) {
    // A pump asks the source for one item per free place: `places` at the start, one more each time an
    // item leaves the scope, on the thread that frees the place (see detail/source_pump.hpp). (An
    // input_node feeding a limiter_node stalls in oneTBB 2021.8: once the edge reverses,
    // input_node::try_reserve never produces a new item.)
    auto& out = core_->make_node<tbb::flow::broadcast_node<packet>>();
    detail::SourcePump& pump = core_->add_pump([body = source_body(core_, std::move(*source_), edge_), &out]() mutable {
      return body([&out](packet&& p) {
        // The owner is named as the chain names it: by the pump's output as a sender.
        if (!detail::HandOff<packet>::offer(static_cast<tbb::flow::sender<packet>*>(&out), p)) out.try_put(std::move(p));
      });
    });
    source_.reset();
    core_->activations.emplace_back([&pump, places] { pump.free_places(places); });
    scope.pump = &pump;
    gated = &out;
  } else {
    // Other senders push; a limiter rejects above its threshold and does not buffer, so a queue
    // holds what waits for a place.
    auto& queue = core_->make_node<tbb::flow::queue_node<packet>>();
    auto& gate = core_->make_node<tbb::flow::limiter_node<packet>>(places);
    tbb::flow::make_edge(output(), queue);
    tbb::flow::make_edge(queue, gate);
    scope.decrementer = &gate.decrementer();
    gated = &gate;
  }
  Stream<T> limited(core_, gated, edge_, &scope);
  limited.entry_mark_ = true;
  limited.pumped_ = source_pumped;
  return limited;
}

template <class T>
template <class F>
void Stream<T>::sink(std::string name, Concurrency concurrency, F f) {
  static_assert(std::is_same_v<std::invoke_result_t<const F&, T&&>, Result<void>>,
                "a sink body returns pixflow::Result<void>");
  using node_t = tbb::flow::multifunction_node<packet, std::tuple<detail::FailurePacket>>;
  auto* core = core_;
  detail::NodeStats& stats = core->add_stats(name, "sink", concurrency);
  if (concurrency.is_unlimited()) {
    // Ends a fused chain (or is a chain of its own); see compute() for `queued`.
    const bool queued = !joins_chain();
    if (queued) edge_->consumer.store(&stats, std::memory_order_release);
    take_chain()([core, &stats, f = std::move(f), name = std::move(name), scope = scope_, entry = take_entry_mark(), queued](
                     ItemKey key, T&& value, detail::BodyClock::ticks now) {
      if (core->cancelled.load(std::memory_order_relaxed)) return;  // as a cancelled task would be dropped
      if (entry) entry->enter();
      const auto started = queued ? stats.start(now) : stats.start_unqueued(now);
      Result<void> result = detail::invoke_guarded<Result<void>>([&] { return f(std::move(value)); });
      stats.finish(started, !result.ok());
      if (!result)
        core->fail(detail::FailurePacket{key, name, std::move(result).failure().reason, scope});
      else if (scope != nullptr)
        scope->release();
    });
    return;
  }
  edge_->consumer.store(&stats, std::memory_order_release);
  auto& node = core->make_node<node_t>(
      detail::tbb_concurrency(concurrency),
      [core, &stats, f = std::move(f), name, scope = scope_, entry = take_entry_mark()](
          const packet& in, typename node_t::output_ports_type& ports) {
        if (entry) entry->enter();
        const auto started = stats.start();
        Result<void> result = detail::invoke_guarded<Result<void>>([&] { return f(std::move(*in.value)); });
        stats.finish(started, !result.ok());
        if (!result)
          std::get<0>(ports).try_put(detail::FailurePacket{in.key, name, std::move(result).failure().reason, scope});
        else if (scope != nullptr)
          scope->release();
      });
  tbb::flow::make_edge(output(), node);
  tbb::flow::make_edge(tbb::flow::output_port<0>(node), *core->failure_sink);
}

}  // namespace pixflow
