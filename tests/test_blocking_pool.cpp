// blocking_pool.hpp: jobs run on the pool's own threads, as many at once as it has, every submitted job
// runs (also when the pool is destroyed right after), and a throwing job does not stop the pool.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "pixflow/tasks/blocking_pool.hpp"

using pixflow::tasks::BlockingPool;
using namespace std::chrono_literals;

TEST_CASE("BlockingPool runs jobs on its own threads, as many at once as it has", "[blocking_pool]") {
  constexpr std::size_t threads = 3;
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t running = 0;
  std::size_t peak = 0;
  bool release = false;
  std::set<std::thread::id> seen;
  {
    BlockingPool pool(threads);
    CHECK(pool.threads() == threads);
    for (std::size_t i = 0; i < 2 * threads; ++i) {
      pool.submit([&] {
        std::unique_lock lock(mutex);
        seen.insert(std::this_thread::get_id());
        peak = std::max(peak, ++running);
        changed.notify_all();
        changed.wait_for(lock, 10s, [&] { return release; });  // bounded: a broken pool fails, never hangs
        --running;
      });
    }
    std::unique_lock lock(mutex);
    CHECK(changed.wait_for(lock, 10s, [&] { return running == threads; }));  // every thread busy at once
    release = true;
    changed.notify_all();
  }
  CHECK(peak == threads);  // never more than the pool has
  CHECK(seen.size() == threads);
  CHECK(seen.count(std::this_thread::get_id()) == 0);
}

TEST_CASE("BlockingPool runs every job submitted before it is destroyed", "[blocking_pool]") {
  std::atomic<int> ran{0};
  {
    BlockingPool pool(2);
    for (int i = 0; i < 200; ++i)
      pool.submit([&] {
        std::this_thread::sleep_for(100us);
        ran.fetch_add(1);
      });
  }
  CHECK(ran.load() == 200);
}

TEST_CASE("BlockingPool goes on after a job throws", "[blocking_pool]") {
  std::atomic<int> ran{0};
  {
    BlockingPool pool(1);
    pool.submit([] { throw std::runtime_error("disk on fire"); });
    pool.submit([&] { ran.fetch_add(1); });
  }
  CHECK(ran.load() == 1);
}

TEST_CASE("BlockingPool needs a thread", "[blocking_pool]") {
  CHECK_THROWS_AS(BlockingPool(0), std::invalid_argument);
}
