#pragma once
/// @file
/// Stream<T>: the items one node puts out, and the methods that add the next node.
///
/// Each method adds one node fed by this stream and returns the stream of its output. A stream used by
/// several nodes is a broadcast: each item goes to every one of them (copied; the last gets the
/// original). Node kinds:
/// - `compute(name, concurrency, f)`: `f(T) -> Result<U>`; work stealing spreads it over every core
///   when the concurrency is unlimited.
/// - `expand<U>(name, concurrency, f)`: `f(T, Emitter<U>&) -> Result<void>`, one item in, many out (a
///   listing page in, its images out). The children are new items: they leave the parent's limits.
/// - `io<U>(name, concurrency, f)`: `f(T, Completion<U>)` hands the work to an outside service (an
///   HTTP loop thread) and returns at once; the service calls the Completion later, from any thread.
///   The concurrency bounds operations in flight, however few threads there are.
/// - `route(name, {"a", "b", ...}, f)`: `f(const T&) -> std::size_t` picks the one output each item
///   goes to; returns one stream per output.
/// - `merge(name, a, b, ...)` (a free function): several streams of one type into one.
/// - `limit()` / `limit(n)`: from here on at most `max_in_flight` (or n) items are alive. An item
///   holds its place, shared by all its broadcast copies, until the last copy ends, done or failed,
///   wherever in the graph that is; routes and merges keep it. A source right before a limit is
///   asked for an item only when a place is free.
/// - `sink(name, concurrency, f)`: `f(T) -> Result<void>`, the end of an item's path.
/// A stream nothing is added to drops its items (they end there, done).
/// A failed item (a Failure returned, or an exception escaping a body) goes to Graph::on_failure with
/// its node's name and the reason; the other items (and the item's other broadcast copies) go on.
///
/// @code
/// auto images = graph.source("files", next_file).limit();
/// auto [gifs, stills] = images.route("by format", {"gif", "other"},
///                                    [](const File& f) -> std::size_t { return f.is_gif() ? 0 : 1; });
/// auto frames = gifs.compute("first frame", pixflow::Concurrency::unlimited(), first_frame);
/// auto decoded = pixflow::merge("decoded", frames, stills.compute("decode", pixflow::Concurrency::unlimited(), decode));
/// decoded.sink("write original", pixflow::Concurrency(4), write_original);        // broadcast:
/// decoded.compute("thumbnail", pixflow::Concurrency::unlimited(), thumbnail)       // both get every item
///     .sink("write thumbnail", pixflow::Concurrency(4), write_thumbnail);
/// @endcode
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "pixflow/engine/body.hpp"
#include "pixflow/engine/concurrency.hpp"
#include "pixflow/engine/detail/nodes.hpp"
#include "pixflow/engine/result.hpp"

namespace pixflow {

template <class T>
class Stream;
template <class T, class... More>
Stream<T> merge(std::string name, Stream<T> first, More... more);

template <class T>
class Stream {
 public:
  using value_type = T;

  template <class F>
  auto compute(std::string name, Concurrency concurrency, F f) -> Stream<typename std::invoke_result_t<const F&, T&&>::value_type>;

  template <class U, class F>
  Stream<U> expand(std::string name, Concurrency concurrency, F f);

  template <class U, class F>
  Stream<U> io(std::string name, Concurrency concurrency, F f);

  template <std::size_t N, class F>
  std::array<Stream<T>, N> route(std::string name, const std::string (&outputs)[N], F f);

  Stream<T> limit();
  Stream<T> limit(std::size_t places);

  template <class F>
  void sink(std::string name, Concurrency concurrency, F f);

 private:
  friend class Graph;
  template <class>
  friend class Stream;
  template <class>
  friend class Input;
  template <class U, class... More>
  friend Stream<U> merge(std::string name, Stream<U> first, More... more);

  Stream(detail::GraphCore* core, detail::Outlet<T>* out, std::size_t from, std::string label = {},
         detail::SourceNode<T>* source = nullptr)
      : core_(core), out_(out), from_(from), label_(std::move(label)), source_(source) {}

  std::pair<Stream<T>, detail::LimitNode<T>*> add_limit(std::size_t places);
  /// Feeds node `to` (its input `port`) from this stream.
  void connect(detail::Port<T>& port, std::size_t to) {
    out_->connect(port);
    core_->add_edge(from_, to, label_);
  }
  template <std::size_t... I>
  static std::array<Stream<T>, sizeof...(I)> routes(detail::GraphCore* core, detail::Outlet<T>* outs, std::size_t id,
                                                     const std::string* names, std::index_sequence<I...>) {
    return {Stream<T>(core, &outs[I], id, names[I])...};
  }

  detail::GraphCore* core_;
  detail::Outlet<T>* out_;
  std::size_t from_;      // the node this stream comes out of
  std::string label_;     // the route output it is, if any (for the DOT dump)
  detail::SourceNode<T>* source_;  // the source it comes straight out of, if any
};

/// Several streams of one type into one stream: every item of each goes on, once.
template <class T, class... More>
Stream<T> merge(std::string name, Stream<T> first, More... more) {
  static_assert((std::is_same_v<More, Stream<T>> && ...), "pixflow::merge: streams of one type");
  detail::GraphCore* core = first.core_;
  auto& out = core->make<detail::Outlet<T>>();
  const std::size_t id = core->add_node(std::move(name), "merge", Concurrency::unlimited(), "", true);
  auto& node = core->make<detail::MergeNode<T>>(core->stats_of(id), out);
  first.connect(node, id);
  (more.connect(node, id), ...);
  return Stream<T>(core, &out, id);
}

// ---------------------------------------------------------------------------------------------------
// Implementation

namespace detail {
inline std::string concurrency_label(Concurrency c) { return c.is_unlimited() ? "unlimited" : "≤" + c.to_string(); }
}  // namespace detail

template <class T>
template <class F>
auto Stream<T>::compute(std::string name, Concurrency concurrency, F f)
    -> Stream<typename std::invoke_result_t<const F&, T&&>::value_type> {
  using R = std::invoke_result_t<const F&, T&&>;
  using U = typename R::value_type;
  auto* core = core_;
  auto& out = core->make<detail::Outlet<U>>();
  const std::size_t id = core->add_node(name, "compute", concurrency, detail::concurrency_label(concurrency), true);
  auto body = [core, &out, id, f = std::move(f)](detail::ItemPtr<T>& in, detail::BodyTimer& timer) {
    detail::Item<T>& item = *in;
    R result = detail::invoke_guarded<R>([&] { return f(std::move(item.value)); });
    if (!result) {
      timer.finish(item.key, &result.failure().reason);
      return core->fail(std::move(item.key), id, std::move(result).failure().reason, std::move(item.hold));
    }
    timer.finish(item.key, nullptr);
    timer.emitted();
    if constexpr (std::is_same_v<T, U>) {
      item.value = std::move(result).value();  // the same item goes on: no allocation
      out.put(std::move(in));
    } else {
      out.put(std::make_unique<detail::Item<U>>(detail::Item<U>{std::move(item.key), std::move(result).value(), std::move(item.hold)}));
    }
  };
  auto& node = core->make<detail::TaskNode<T, decltype(body)>>(*core, id, concurrency, std::move(body));
  connect(node, id);
  return Stream<U>(core, &out, id);
}

template <class T>
template <class U, class F>
Stream<U> Stream<T>::expand(std::string name, Concurrency concurrency, F f) {
  auto* core = core_;
  auto& out = core->make<detail::Outlet<U>>();
  const std::size_t id = core->add_node(name, "expand", concurrency, detail::concurrency_label(concurrency), true);
  auto body = [core, &out, id, f = std::move(f)](detail::ItemPtr<T>& in, detail::BodyTimer& timer) {
    detail::Item<T>& item = *in;
    std::uint64_t children = 0;
    Emitter<U> emit(item.key, [&](ItemKey key, U&& value) {
      ++children;
      out.put(std::make_unique<detail::Item<U>>(detail::Item<U>{std::move(key), std::move(value), nullptr}));
    });
    Result<void> result = detail::invoke_guarded<Result<void>>([&] { return f(std::move(item.value), emit); });
    timer.emitted(children);
    if (!result) {
      timer.finish(item.key, &result.failure().reason);
      return core->fail(std::move(item.key), id, std::move(result).failure().reason, std::move(item.hold));
    }
    timer.finish(item.key, nullptr);
    item.hold.reset();  // the parent is done; its children are new items, outside its limits
  };
  auto& node = core->make<detail::TaskNode<T, decltype(body)>>(*core, id, concurrency, std::move(body));
  connect(node, id);
  return Stream<U>(core, &out, id);
}

template <class T>
template <class U, class F>
Stream<U> Stream<T>::io(std::string name, Concurrency concurrency, F f) {
  auto* core = core_;
  auto& out = core->make<detail::Outlet<U>>();
  const std::size_t id = core->add_node(name, "io", concurrency, detail::concurrency_label(concurrency), true);
  auto& node = core->make<detail::IoNode<T, U, F>>(*core, id, concurrency, std::move(f), out);
  core->run_states.push_back(&node);
  connect(node, id);
  return Stream<U>(core, &out, id);
}

template <class T>
template <std::size_t N, class F>
std::array<Stream<T>, N> Stream<T>::route(std::string name, const std::string (&outputs)[N], F f) {
  static_assert(N >= 1, "pixflow::Stream::route: at least one output");
  auto* core = core_;
  auto& outs = core->make<std::array<detail::Outlet<T>, N>>();
  const std::size_t id = core->add_node(name, "route", Concurrency::unlimited(), "", true);
  auto body = [core, &outs, id, f = std::move(f)](detail::ItemPtr<T>& in, detail::BodyTimer& timer) {
    detail::Item<T>& item = *in;
    Result<std::size_t> chosen = detail::invoke_guarded<Result<std::size_t>>([&]() -> Result<std::size_t> {
      return static_cast<std::size_t>(f(std::as_const(item.value)));
    });
    if (chosen && chosen.value() >= N) chosen = Failure{"no output " + std::to_string(chosen.value())};
    if (!chosen) {
      timer.finish(item.key, &chosen.failure().reason);
      return core->fail(std::move(item.key), id, std::move(chosen).failure().reason, std::move(item.hold));
    }
    timer.finish(item.key, nullptr);
    timer.emitted();
    outs[chosen.value()].put(std::move(in));
  };
  auto& node = core->make<detail::TaskNode<T, decltype(body)>>(*core, id, Concurrency::unlimited(), std::move(body));
  connect(node, id);
  return routes(core, outs.data(), id, outputs, std::make_index_sequence<N>{});
}

template <class T>
Stream<T> Stream<T>::limit() {
  auto [limited, node] = add_limit(core_->max_in_flight);
  core_->main_peak_live = &node->peak_live;
  return limited;
}

template <class T>
Stream<T> Stream<T>::limit(std::size_t places) {
  return add_limit(places).first;
}

template <class T>
std::pair<Stream<T>, detail::LimitNode<T>*> Stream<T>::add_limit(std::size_t places) {
  if (places == 0) throw std::invalid_argument("pixflow::Stream::limit: places must be >= 1");
  auto* core = core_;
  auto& out = core->make<detail::Outlet<T>>();
  const std::size_t id = core->add_node("limit", "limit", Concurrency(places), "limit " + std::to_string(places), false);
  auto& node = core->make<detail::LimitNode<T>>(*core, places, out);
  core->run_states.push_back(&node);
  if (source_ != nullptr && out_->size() == 0) source_->pace_candidate(node);
  connect(node, id);
  return {Stream<T>(core, &out, id), &node};
}

template <class T>
template <class F>
void Stream<T>::sink(std::string name, Concurrency concurrency, F f) {
  static_assert(std::is_same_v<std::invoke_result_t<const F&, T&&>, Result<void>>, "a sink body returns pixflow::Result<void>");
  auto* core = core_;
  const std::size_t id = core->add_node(name, "sink", concurrency, detail::concurrency_label(concurrency), true);
  auto body = [core, id, f = std::move(f)](detail::ItemPtr<T>& in, detail::BodyTimer& timer) {
    detail::Item<T>& item = *in;
    Result<void> result = detail::invoke_guarded<Result<void>>([&] { return f(std::move(item.value)); });
    if (!result) {
      timer.finish(item.key, &result.failure().reason);
      return core->fail(std::move(item.key), id, std::move(result).failure().reason, std::move(item.hold));
    }
    timer.finish(item.key, nullptr);
    item.hold.reset();  // the item ends here
  };
  auto& node = core->make<detail::TaskNode<T, decltype(body)>>(*core, id, concurrency, std::move(body));
  connect(node, id);
}

}  // namespace pixflow
