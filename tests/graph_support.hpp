#pragma once
// Helpers shared by the engine's tests (test_graph, test_stream, test_input, test_executor, test_trace).
#include <pixflow/engine/graph.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pixflow::test {

using namespace std::chrono_literals;

/// Counts bodies running at once and remembers the highest count.
class ActiveCounter {
 public:
  void enter() {
    const int now = ++active_;
    int seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
  }
  void leave() { --active_; }
  [[nodiscard]] int peak() const { return peak_.load(); }
  [[nodiscard]] int now() const { return active_.load(); }

 private:
  std::atomic<int> active_{0}, peak_{0};
};

/// A source of the integers [0, n).
inline std::function<std::optional<int>()> count_to(int n) {
  auto next = std::make_shared<int>(0);
  return [next, n]() -> std::optional<int> {
    if (*next >= n) return std::nullopt;
    return (*next)++;
  };
}

/// Spins for about `d` of CPU work (a body that keeps a core busy).
inline void burn(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  volatile unsigned x = 0;
  while (std::chrono::steady_clock::now() < end) x = x + 1;
}

/// A service thread that completes operations when told to: the stand-in for an HTTP loop.
class Service {
 public:
  using Op = std::function<void()>;
  Service() : thread_([this] { loop(); }) {}
  ~Service() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  /// Runs `op` on the service thread once `ready()` is true (checked whenever something changes).
  void submit(std::function<bool()> ready, Op op) {
    {
      std::lock_guard lock(mutex_);
      pending_.push_back({std::move(ready), std::move(op)});
    }
    wake_.notify_all();
  }
  void poke() { wake_.notify_all(); }
  /// Takes every pending operation and hands each to `cancel`.
  void cancel_all(const std::function<void(Op&)>& cancel) {
    std::deque<std::pair<std::function<bool()>, Op>> taken;
    {
      std::lock_guard lock(mutex_);
      taken.swap(pending_);
    }
    for (auto& p : taken) cancel(p.second);
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, 2ms);
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->first()) {
          Op op = std::move(it->second);
          it = pending_.erase(it);
          lock.unlock();
          op();
          lock.lock();
          it = pending_.begin();
        } else {
          ++it;
        }
      }
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::function<bool()>, Op>> pending_;
  bool stop_ = false;
  std::thread thread_;
};

/// The failures of a graph's runs by item key (on_failure calls come one at a time, from any thread).
class FailureLog {
 public:
  explicit FailureLog(pixflow::Graph& graph) {
    graph.on_failure([this](const pixflow::ItemFailure& f) {
      std::lock_guard lock(mutex_);
      all_.push_back(f);
      by_seq_.emplace(f.key.seq(), f);
    });
  }
  /// The failure of the item of source number `seq` (depth 1).
  const pixflow::ItemFailure& at(std::uint64_t seq) const {
    const auto it = by_seq_.find(seq);
    if (it == by_seq_.end()) throw std::out_of_range("no failure of item " + std::to_string(seq));
    return it->second;
  }
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mutex_);
    return all_.size();
  }
  [[nodiscard]] std::vector<pixflow::ItemFailure> all() const {
    std::lock_guard lock(mutex_);
    return all_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<pixflow::ItemFailure> all_;
  std::multimap<std::uint64_t, pixflow::ItemFailure> by_seq_;
};

}  // namespace pixflow::test
