// Tests for pixflow/engine/input.hpp: items pushed from outside threads until the input is closed.
#include <catch2/catch.hpp>

#include <pixflow/engine/graph.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "graph_support.hpp"

using namespace std::chrono_literals;
using pixflow::test::FailureLog;
using pixflow::test::Service;

TEST_CASE("an input fed from two outside threads, then closed, ends the run with every item done", "[graph][engine]") {
  const std::size_t threads = GENERATE(1u, 2u, 4u);
  CAPTURE(threads);
  Service service;
  std::mutex mutex;
  std::multiset<int> seen;
  pixflow::Graph graph({.threads = threads, .max_in_flight = 8});
  graph.on_cancel([&] { service.cancel_all([](Service::Op& op) { op(); }); });
  FailureLog failures(graph);
  pixflow::Input<int> input = graph.input<int>("requests", 4);
  input.stream()
      .io<int>("lookup", pixflow::Concurrency(2), [&](int v, pixflow::Completion<int> done) {
        service.submit([] { return true; }, [v, done] { done(v); });
      })
      .sink("answer", pixflow::Concurrency::unlimited(), [&](int v) {
        std::lock_guard lock(mutex);
        seen.insert(v);
        return pixflow::ok();
      });
  std::atomic<int> pushed{0};
  auto feeder = [&](int first) {
    for (int v = first; v < first + 200; ++v)
      if (input.push(v)) ++pushed;
  };
  std::thread a(feeder, 0), b(feeder, 1000);
  std::thread closer([&] {
    a.join();
    b.join();
    input.close();
  });
  const auto report = graph.run();
  closer.join();
  CHECK_FALSE(report.cancelled);
  CHECK(pushed == 400);
  REQUIRE(seen.size() == 400);
  for (int v = 0; v < 200; ++v) {
    CHECK(seen.count(v) == 1);
    CHECK(seen.count(1000 + v) == 1);
  }
  CHECK(failures.size() == 0);
  CHECK(report.node("requests")->items == 400);
  CHECK(report.node("lookup")->peak_active <= 2);
  CHECK(input.capacity() == 4);
}

TEST_CASE("try_push fails while the input is full; push waits for room", "[graph][engine]") {
  pixflow::Graph graph({.threads = 2});
  std::atomic<bool> release{false};
  std::atomic<int> done{0};
  pixflow::Input<int> input = graph.input<int>("jobs", 2);
  input.stream().sink("hold", pixflow::Concurrency::unlimited(), [&](int) {
    while (!release.load()) std::this_thread::sleep_for(1ms);
    ++done;
    return pixflow::ok();
  });
  std::thread runner([&] { graph.run(); });
  CHECK(input.try_push(1));
  CHECK(input.try_push(2));
  CHECK_FALSE(input.try_push(3));  // two items in flight: full
  std::atomic<bool> third_in{false};
  std::thread pusher([&] {
    third_in = input.push(3);  // waits on this thread until a place frees
  });
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(third_in.load());
  release = true;
  pusher.join();
  CHECK(third_in.load());
  input.close();
  runner.join();
  CHECK(done == 3);
  CHECK(input.push(4));  // open again once the run has ended; the item starts at once
  input.close();
  CHECK_FALSE(input.push(5));
}

TEST_CASE("an input is open again for the next run", "[graph][engine]") {
  pixflow::Graph graph({.threads = 2});
  std::atomic<int> sum{0};
  pixflow::Input<int> input = graph.input<int>("numbers");
  input.stream().sink("add", pixflow::Concurrency(1), [&](int v) {
    sum += v;
    return pixflow::ok();
  });
  for (int round = 1; round <= 3; ++round) {
    std::thread feeder([&] {
      for (int v = 0; v < 10; ++v) input.push(v);
      input.close();
    });
    const auto report = graph.run();
    feeder.join();
    CHECK(report.node("add")->items == 10);  // each report counts its own run
    CHECK(sum == 45 * round);
  }
}

TEST_CASE("a cancelled run closes its inputs and releases a waiting push", "[graph][engine][cancel]") {
  pixflow::Graph graph({.threads = 2, .timeout_s = 0.2});
  pixflow::Input<int> input = graph.input<int>("stuck", 1);
  std::atomic<bool> release{false};
  input.stream().sink("slow", pixflow::Concurrency(1), [&](int) {
    while (!release.load()) std::this_thread::sleep_for(1ms);
    return pixflow::ok();
  });
  std::atomic<int> refused{0};
  std::thread pusher([&] {
    input.push(1);
    if (!input.push(2)) ++refused;  // full until the timeout cancels the run, then refused
  });
  std::thread releaser([&] {
    std::this_thread::sleep_for(400ms);
    release = true;
  });
  const auto report = graph.run();  // never closed: the timeout ends it
  pusher.join();
  releaser.join();
  CHECK(report.cancelled);
  CHECK(refused == 1);
}
