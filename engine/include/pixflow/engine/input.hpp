#pragma once
/// @file
/// Input<T>: items pushed into a graph from outside threads (a Redis consumer, a socket, a GUI)
/// until the input is closed.
///
/// An input holds up to `capacity` items at once (each holds its place until it and all its broadcast
/// copies have ended, as behind a limit): `push` waits for room on the caller's thread, `try_push`
/// returns false at once when there is none. Waiting for the next item holds no worker thread. run()
/// returns once every input is closed and every item has ended (or the run is cancelled). An input is
/// open from its creation, and again after each run() returns. Items pushed before run() start at once.
/// Copies of an Input share one input; every member is thread-safe. Do not use it after its Graph is gone
/// (push then returns false).
///
/// @code
/// pixflow::Graph graph({.max_in_flight = 32});
/// pixflow::Input<std::string> urls = graph.input<std::string>("urls");
/// urls.stream().io<Bytes>("download", pixflow::Concurrency(16), download).sink("store", pixflow::Concurrency(1), store);
/// std::thread reader([&] {
///   for (std::string line; std::getline(std::cin, line);) urls.push(line);  // blocks while 32 are in flight
///   urls.close();
/// });
/// graph.run();   // returns after close(), when every URL is stored or failed
/// reader.join();
/// @endcode
#include <memory>
#include <utility>

#include "pixflow/engine/detail/nodes.hpp"
#include "pixflow/engine/stream.hpp"

namespace pixflow {

template <class T>
class Input {
 public:
  /// Hands `value` to the graph, waiting while the input is full. False (and `value` dropped) if the
  /// input is closed, the run cancelled or the graph gone.
  bool push(T value) { return state_->push(std::move(value), true); }
  /// Hands `value` to the graph if there is room now; false (and `value` dropped) if not, or closed.
  bool try_push(T value) { return state_->push(std::move(value), false); }
  /// No more items for this run: run() returns once the items in flight have ended. Idempotent.
  void close() { state_->close(); }
  /// The items pushed, as a stream to build on.
  [[nodiscard]] Stream<T> stream() const { return stream_; }
  /// Items that can be in the graph at once through this input.
  [[nodiscard]] std::size_t capacity() const noexcept { return state_->capacity(); }
  /// Items that can be pushed now without waiting (0 once closed): for sizing a read from a queue.
  [[nodiscard]] std::size_t room() const { return state_->room(); }

 private:
  friend class Graph;
  Input(std::shared_ptr<detail::InputState<T>> state, Stream<T> stream) : state_(std::move(state)), stream_(std::move(stream)) {}
  std::shared_ptr<detail::InputState<T>> state_;
  Stream<T> stream_;
};

}  // namespace pixflow
