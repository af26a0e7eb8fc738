#pragma once
// Internal: the nodes a Stream builds. Each is a Port (where items arrive) that ends by putting into
// an Outlet (its successors); see core.hpp.
#include <oneapi/tbb/flow_graph.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "pixflow/engine/body.hpp"
#include "pixflow/engine/detail/core.hpp"
#include "pixflow/engine/detail/pump.hpp"

namespace pixflow::detail {

/// Times one body for the node's figures and, when tracing, for the trace.
class BodyTimer {
 public:
  BodyTimer(GraphCore& core, NodeStats& stats, std::size_t node) noexcept
      : core_(core), stats_(stats), node_(node), body_(stats.start()) {
    if (Trace* trace = core_.trace.get()) {
      started_ = trace->now();
      in_flight_ = stats_.in_flight();
    }
  }
  /// The body ended: successfully if `failure` is nullptr.
  void finish(const ItemKey& key, const std::string* failure) {
    stats_.finish(body_, failure != nullptr);
    if (Trace* trace = core_.trace.get()) trace->body(node_, key, started_, failure, in_flight_, stats_.in_flight());
  }
  void emitted(std::uint64_t n = 1) noexcept { stats_.emitted(body_, n); }

 private:
  GraphCore& core_;
  NodeStats& stats_;
  std::size_t node_;
  NodeStats::Body body_;
  std::int64_t started_ = 0, in_flight_ = 0;
};

/// A cancelled run's items waiting in a node: taken out under `mutex` and destroyed once it is let go
/// (their holds give places back, which takes other locks).
template <class T>
void drop_waiting(std::mutex& mutex, std::deque<ItemPtr<T>>& waiting) {
  std::deque<ItemPtr<T>> dropped;
  std::lock_guard lock(mutex);
  dropped.swap(waiting);
}

/// A node whose body runs in a tbb::flow::function_node, a task per item: compute, expand, route,
/// sink. `Body` is called as body(item, timer) and calls timer.finish() once.
template <class T, class Body>
class TaskNode final : public Port<T> {
 public:
  TaskNode(GraphCore& core, std::size_t id, Concurrency concurrency, Body body)
      : core_(core),
        stats_(core.stats_of(id)),
        id_(id),
        body_(std::move(body)),
        node_(*core.graph, tbb_concurrency(concurrency), [this](const Msg<T>& in, auto&) { run(in.take()); }) {}
  void put(ItemPtr<T> item) override {
    stats_.arrive();
    node_.try_put(Msg<T>(std::move(item)));
  }

 private:
  void run(ItemPtr<T> in) {
    if (core_.is_cancelled()) return;  // as a cancelled task would be dropped
    BodyTimer timer(core_, stats_, id_);
    body_(in, timer);
  }
  GraphCore& core_;
  NodeStats& stats_;
  std::size_t id_;
  Body body_;
  // A multifunction_node whose port is never used: a function_node would broadcast a continue_msg
  // to its (no) successors after every body, under a lock.
  tbb::flow::multifunction_node<Msg<T>, std::tuple<tbb::flow::continue_msg>> node_;
};

/// The place where items wait for, and take, a place of a limit. Holds the source in front of it,
/// when that source feeds only this limit: the source is then asked for an item per free place.
///
/// `count_` is the free places minus the items waiting (or about to wait): an item that finds a place
/// takes it with one atomic operation, and a place given back with none waiting is one too; only
/// waiting takes the lock. A place given back to a waiter that has not queued itself yet is left as
/// a grant, which that waiter takes instead of queueing.
template <class T>
class LimitNode final : public Port<T>, public PlaceLender, public RunState {
 public:
  LimitNode(GraphCore& core, std::size_t places, Outlet<T>& out)
      : core_(core), places_(places), count_(static_cast<std::int64_t>(places)), out_(out) {}

  void put(ItemPtr<T> item) override {
    if (core_.is_cancelled()) return;
    if (count_.fetch_sub(1, std::memory_order_acq_rel) <= 0) {
      std::lock_guard lock(mutex_);
      if (grants_ == 0) {
        waiting_.push_back(std::move(item));
        return;
      }
      --grants_;
    }
    admit(std::move(item));
  }
  void give_back() noexcept override {
    live_.fetch_sub(1, std::memory_order_relaxed);
    if (count_.fetch_add(1, std::memory_order_acq_rel) >= 0) {
      if (pump_ != nullptr) pump_->free_places(1);
      return;
    }
    ItemPtr<T> next;  // an item waits, or is about to: the place is its
    {
      std::lock_guard lock(mutex_);
      if (waiting_.empty()) {
        ++grants_;
        return;
      }
      next = std::move(waiting_.front());
      waiting_.pop_front();
    }
    if (!core_.is_cancelled()) admit(std::move(next));
  }
  void on_cancel() override { drop_waiting(mutex_, waiting_); }
  void on_run_end() override {
    std::lock_guard lock(mutex_);
    waiting_.clear();
    grants_ = 0;
    count_ = static_cast<std::int64_t>(places_);
    live_ = 0;
    peak_live = 0;
  }
  /// The source asked for an item per free place, or nullptr.
  void pace(SourcePump* pump) noexcept { pump_ = pump; }
  [[nodiscard]] std::size_t places() const noexcept { return places_; }

  std::atomic<std::size_t> peak_live{0};

 private:
  void admit(ItemPtr<T> item) {
    raise_peak(peak_live, live_.fetch_add(1, std::memory_order_relaxed) + 1);
    item->hold = std::make_shared<Hold>(*this, std::move(item->hold));
    out_.put(std::move(item));
  }
  GraphCore& core_;
  const std::size_t places_;
  std::atomic<std::int64_t> count_;
  std::mutex mutex_;
  std::size_t grants_ = 0;
  std::deque<ItemPtr<T>> waiting_;
  std::atomic<std::size_t> live_{0};
  Outlet<T>& out_;
  SourcePump* pump_ = nullptr;
};

/// An I/O node: the body hands the operation over and returns; the Completion delivers later, from
/// any thread. At most `concurrency` operations are in flight; the others wait here (not in threads).
template <class T, class U, class F>
class IoNode final : public Port<T>, public RunState {
 public:
  IoNode(GraphCore& core, std::size_t id, Concurrency concurrency, F f, Outlet<U>& out)
      : core_(core),
        stats_(core.stats_of(id)),
        id_(id),
        bound_(concurrency.is_unlimited() ? 0 : concurrency.limit()),
        f_(std::move(f)),
        out_(out),
        starter_(*core.graph, tbb::flow::unlimited, [this](const Msg<T>& in, auto&) { begin(in.take()); }) {}

  void put(ItemPtr<T> item) override {
    stats_.arrive();
    {
      std::lock_guard lock(mutex_);
      if (bound_ != 0 && active_ >= bound_) {
        waiting_.push_back(std::move(item));
        return;
      }
      ++active_;
    }
    starter_.try_put(Msg<T>(std::move(item)));
  }
  void on_cancel() override { drop_waiting(mutex_, waiting_); }
  void on_run_end() override {
    std::lock_guard lock(mutex_);
    waiting_.clear();
    active_ = 0;
    free_lanes_.clear();
    lanes_ = 0;
  }

 private:
  void begin(ItemPtr<T> in) {
    const NodeStats::Body body = stats_.start();
    std::int64_t started = 0, in_flight = 0;
    std::uint32_t lane = 0;
    if (Trace* trace = core_.trace.get()) {
      started = trace->now();
      in_flight = stats_.in_flight();
      lane = take_lane();
    }
    core_.outside_in();
    core_.graph->reserve_wait();  // until the operation completes
    auto state = std::make_shared<typename Completion<U>::State>();
    state->deliver = [this, key = in->key, hold = std::move(in->hold), body, started, in_flight, lane](Result<U>&& result) mutable {
      GraphCore* core = &core_;  // `this` may be gone once the wait is released
      const std::string* failure = result.ok() ? nullptr : &result.failure().reason;
      stats_.finish_elsewhere(body, failure != nullptr);
      if (Trace* trace = core_.trace.get()) {
        trace->operation(id_, lane, key, started, failure, in_flight, stats_.in_flight());
        give_lane(lane);
      }
      if (result) {
        stats_.emitted_elsewhere();
        out_.put(std::make_unique<Item<U>>(Item<U>{std::move(key), std::move(result).value(), std::move(hold)}));
      } else {
        core_.fail(std::move(key), id_, std::move(result).failure().reason, std::move(hold));
      }
      done_one();
      core->graph->release_wait();
      core->outside_out();
    };
    Completion<U> done(std::move(state));
    if (core_.is_cancelled()) return done(Failure{"cancelled"});
    try {
      f_(std::move(in->value), done);
    } catch (const std::exception& e) {
      done(Failure{std::string("internal error: ") + e.what()});
    } catch (...) {
      done(Failure{"internal error: unknown exception"});
    }
  }
  /// An operation ended: the next waiting item starts (in a task of its own, not on the thread that
  /// completed the operation, which may be an outside service's).
  void done_one() {
    ItemPtr<T> next;
    {
      std::lock_guard lock(mutex_);
      if (!waiting_.empty() && !core_.is_cancelled()) {
        next = std::move(waiting_.front());
        waiting_.pop_front();
      } else {
        --active_;
      }
    }
    if (next) starter_.try_put(Msg<T>(std::move(next)));
  }
  /// Trace lanes: operation n of this node in flight draws on lane n, so spans of a lane never overlap.
  std::uint32_t take_lane() {
    std::lock_guard lock(mutex_);
    std::uint32_t lane = 0;
    if (free_lanes_.empty()) {
      lane = lanes_++;
    } else {
      lane = free_lanes_.back();
      free_lanes_.pop_back();
    }
    return static_cast<std::uint32_t>(id_) * 10000u + lane % 10000u;
  }
  void give_lane(std::uint32_t lane) {
    std::lock_guard lock(mutex_);
    free_lanes_.push_back(lane % 10000u);
  }

  GraphCore& core_;
  NodeStats& stats_;
  std::size_t id_;
  const std::size_t bound_;  // 0 = unlimited
  F f_;
  Outlet<U>& out_;
  std::mutex mutex_;
  std::size_t active_ = 0;
  std::deque<ItemPtr<T>> waiting_;
  std::vector<std::uint32_t> free_lanes_;
  std::uint32_t lanes_ = 0;
  tbb::flow::multifunction_node<Msg<T>, std::tuple<tbb::flow::continue_msg>> starter_;
};

/// Several streams into one: passes each item on in the caller's thread.
template <class T>
class MergeNode final : public Port<T> {
 public:
  MergeNode(NodeStats& stats, Outlet<T>& out) : stats_(stats), out_(out) {}
  void put(ItemPtr<T> item) override {
    stats_.passed();
    out_.put(std::move(item));
  }

 private:
  NodeStats& stats_;
  Outlet<T>& out_;
};

/// A pulled source: asked for items by its pump, one call at a time.
template <class T>
class SourceNode final : public RunState {
 public:
  SourceNode(GraphCore& core, std::size_t id, std::function<std::optional<T>()> next, Outlet<T>& out)
      : core_(core),
        stats_(core.stats_of(id)),
        id_(id),
        next_(std::move(next)),
        out_(out),
        pump_(core.cancelled, [this] { return pull(); }),
        starter_(*core.graph, tbb::flow::serial, [this](const tbb::flow::continue_msg&) {
          start();
          return tbb::flow::continue_msg();
        }) {
    core.starters.push_back([this] { starter_.try_put(tbb::flow::continue_msg()); });
  }
  /// `limit` was built right after this source: it paces it if it stays the source's only successor.
  void pace_candidate(LimitNode<T>& limit) noexcept { candidate_ = &limit; }
  void on_run_end() override { pump_.reset(); }

 private:
  void start() {
    const bool paced = candidate_ != nullptr && out_.only() == candidate_;
    if (candidate_ != nullptr) candidate_->pace(paced ? &pump_ : nullptr);
    pump_.free_places(paced ? candidate_->places() : std::numeric_limits<std::size_t>::max() / 2);
  }
  bool pull() {
    const NodeStats::Body body = stats_.start_unqueued();
    const std::int64_t started = core_.trace ? core_.trace->now() : 0;
    std::optional<T> value;
    try {
      value = next_();
    } catch (const std::exception& e) {
      stats_.finish_elsewhere(body, true);
      core_.cancel(std::string("source failed: ") + e.what());
      return false;
    } catch (...) {
      stats_.finish_elsewhere(body, true);
      core_.cancel("source failed: unknown exception");
      return false;
    }
    if (!value) {
      stats_.finish_uncounted(body);
      return false;
    }
    stats_.finish_elsewhere(body, false);
    stats_.emitted_elsewhere();
    ItemKey key = core_.next_key();
    if (Trace* trace = core_.trace.get()) trace->body(id_, key, started, nullptr, 0, 0);
    out_.put(std::make_unique<Item<T>>(Item<T>{std::move(key), std::move(*value), nullptr}));
    return true;
  }

  GraphCore& core_;
  NodeStats& stats_;
  std::size_t id_;
  std::function<std::optional<T>()> next_;
  Outlet<T>& out_;
  LimitNode<T>* candidate_ = nullptr;
  SourcePump pump_;
  tbb::flow::function_node<tbb::flow::continue_msg, tbb::flow::continue_msg> starter_;
};

/// The state behind an Input handle: its capacity (places held by items pushed and not ended), the
/// pushers waiting for room, and whether it is open.
template <class T>
class InputState final : public PlaceLender, public RunState {
 public:
  InputState(GraphCore& core, std::size_t id, std::size_t capacity, Outlet<T>& out)
      : core_(&core), stats_(core.stats_of(id)), capacity_(capacity), free_(capacity), out_(out) {
    core.graph->reserve_wait();  // open: run() waits for close()
  }
  /// Hands `value` on; with `wait`, waits for room first. False if closed, or full and not `wait`.
  bool push(T&& value, bool wait) {
    GraphCore* core = nullptr;
    {
      std::unique_lock lock(mutex_);
      if (wait) room_.wait(lock, [&] { return free_ > 0 || closed_; });
      if (closed_ || free_ == 0) return false;
      --free_;
      core = core_;
      core->outside_in();
      core->graph->reserve_wait();  // a close() meanwhile must not let the run end before the item is in
    }
    stats_.passed();
    out_.put(std::make_unique<Item<T>>(Item<T>{core->next_key(), std::move(value), std::make_shared<Hold>(*this, nullptr)}));
    core->graph->release_wait();
    core->outside_out();
    return true;
  }
  void close() {
    GraphCore* core = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
      core = core_;
      core->outside_in();
    }
    room_.notify_all();
    core->graph->release_wait();
    core->outside_out();
  }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::size_t room() {
    std::lock_guard lock(mutex_);
    return closed_ ? 0 : free_;
  }
  void give_back() noexcept override {
    {
      std::lock_guard lock(mutex_);
      ++free_;
    }
    room_.notify_one();
  }
  void on_cancel() override { close(); }
  void on_run_end() override {
    std::lock_guard lock(mutex_);
    if (!closed_ || detached_) return;
    closed_ = false;
    free_ = capacity_;
    core_->graph->reserve_wait();
  }
  /// The graph is going away: closed for good.
  void detach() {
    close();
    std::lock_guard lock(mutex_);
    detached_ = true;
  }

 private:
  GraphCore* core_;
  NodeStats& stats_;
  const std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable room_;
  std::size_t free_;
  bool closed_ = false;
  bool detached_ = false;
  Outlet<T>& out_;
};

}  // namespace pixflow::detail
