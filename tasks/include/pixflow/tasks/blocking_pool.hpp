#pragma once
/// @file
/// BlockingPool: a few threads of its own for calls that block on the disk (write + fsync, reading a
/// file back), so that the graph's compute workers never wait on it. A worker asleep in fsync is a core
/// doing nothing: on 2 cores, fsync'ed thumbnails written from the workers cost a fifth of the run.
///
/// @code
/// pixflow::tasks::BlockingPool disk(4);
/// disk.submit([&] { auto path = write_file_atomically(out, "a_thumbnail.jpg", bytes); report(path); });
/// // ~BlockingPool runs every job already submitted, then joins its threads.
/// @endcode
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pixflow::tasks {

/// A fixed set of threads running submitted jobs in submission order (several at once, one per
/// thread). A job reports its own outcome (it is a plain `void()`); an exception escaping a job is
/// dropped, so a job that must always report catches its own. Thread-safe.
class BlockingPool {
 public:
  /// Starts `threads` threads; std::invalid_argument when 0.
  explicit BlockingPool(std::size_t threads);
  /// Runs every job already submitted, then joins.
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  /// Queues `job`; it runs on one of the pool's threads as soon as one is free.
  void submit(std::function<void()> job);
  [[nodiscard]] std::size_t threads() const noexcept { return threads_.size(); }

 private:
  void work();

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace pixflow::tasks
