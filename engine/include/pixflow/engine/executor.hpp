#pragma once
/// @file
/// Executor: the worker threads that run graphs — one after another or several at once.
///
/// An Executor owns a oneTBB arena of `threads` threads. Every Graph built on it runs its bodies
/// there, so a program (a tool running several graphs in turn, a server running one graph per
/// request kind) keeps one set of threads for all its graphs. A Graph built without one makes its own.
/// Graphs running at once on one executor share its threads by work stealing. The executor must
/// outlive the graphs built on it.
///
/// @code
/// pixflow::Executor executor(4);                       // 4 threads (0 = every core)
/// pixflow::Graph thumbs(executor, {.max_in_flight = 16});
/// pixflow::Graph index(executor);
/// // ... build both, then run them at once from two threads, or one after the other:
/// std::thread other([&] { index.run(); });
/// thumbs.run();
/// other.join();
/// @endcode
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <cstddef>
#include <optional>

namespace pixflow {

class Executor {
 public:
  /// `threads` worker threads; 0 = one per core. More threads than cores is allowed (for tests).
  explicit Executor(std::size_t threads = 0);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// The number of threads graphs run on.
  [[nodiscard]] std::size_t threads() const noexcept { return threads_; }

  /// The arena (for the engine's own use: graphs are built and waited for inside it).
  [[nodiscard]] tbb::task_arena& arena() noexcept { return arena_; }

 private:
  std::size_t threads_;
  std::optional<tbb::global_control> parallelism_;  // only when threads > the default
  tbb::task_arena arena_;
};

}  // namespace pixflow
