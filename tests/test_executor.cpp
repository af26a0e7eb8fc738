// Tests for pixflow/engine/executor.hpp: graphs sharing one executor's threads, one after another and
// at once, and a graph run more than once.
#include <catch2/catch.hpp>

#include <pixflow/engine/graph.hpp>

#include <atomic>
#include <thread>

#include "graph_support.hpp"

using pixflow::test::burn;
using pixflow::test::count_to;

namespace {

/// Builds source("numbers", 0..n) → limit → square → sum into `sum` on `graph`.
void build_sum(pixflow::Graph& graph, int n, std::atomic<long>& sum) {
  graph.source("numbers", count_to(n))
      .limit()
      .compute("square", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<long> {
        pixflow::test::burn(std::chrono::microseconds(20));
        return long{v} * v;
      })
      .sink("sum", pixflow::Concurrency(1), [&sum](long v) {
        sum += v;
        return pixflow::ok();
      });
}

long sum_of_squares(int n) {
  long s = 0;
  for (long v = 0; v < n; ++v) s += v * v;
  return s;
}

}  // namespace

TEST_CASE("a graph runs twice on one executor", "[graph][engine]") {
  pixflow::Executor executor(2);
  std::atomic<long> sum{0};
  int round = 0;
  pixflow::Graph graph(executor, {.max_in_flight = 8});
  // A source that starts over for each run: the graph asks it again.
  int next = 0;
  graph.source("numbers", [&]() -> std::optional<int> {
         if (next == 100) {
           next = 0;
           return std::nullopt;
         }
         return next++;
       })
      .limit()
      .sink("sum", pixflow::Concurrency::unlimited(), [&](int v) {
        sum += v;
        return pixflow::ok();
      });
  for (round = 1; round <= 2; ++round) {
    const auto report = graph.run();
    CHECK_FALSE(report.cancelled);
    CHECK(report.node("sum")->items == 100);
    CHECK(sum == 4950L * round);
  }
  CHECK(graph.threads() == 2);
}

TEST_CASE("a graph runs again after a cancelled run", "[graph][engine][cancel]") {
  pixflow::Executor executor(2);
  std::atomic<int> seen{0};
  std::atomic<bool> endless{true};
  pixflow::Graph graph(executor, {.max_in_flight = 4});
  int n = 0;
  graph.source("numbers", [&]() -> std::optional<int> {
         if (!endless.load() && n >= 50) return std::nullopt;
         return n++;
       })
      .limit()
      .sink("count", pixflow::Concurrency(1), [&](int) {
        if (++seen == 30 && endless.load()) throw std::runtime_error("never reached: cancel comes first");
        return pixflow::ok();
      });
  std::thread stopper([&] {
    while (seen.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    graph.cancel("first run over");
  });
  const auto first = graph.run();
  stopper.join();
  CHECK(first.cancelled);
  CHECK(first.cancel_reason == "first run over");
  endless = false;
  n = 0;
  seen = 0;
  const auto second = graph.run();
  CHECK_FALSE(second.cancelled);
  CHECK(second.node("count")->items == 50);
}

TEST_CASE("two graphs run at once on one executor", "[graph][engine]") {
  pixflow::Executor executor(2);
  std::atomic<long> a_sum{0}, b_sum{0};
  pixflow::Graph a(executor, {.max_in_flight = 8});
  pixflow::Graph b(executor, {.max_in_flight = 8});
  build_sum(a, 300, a_sum);
  build_sum(b, 400, b_sum);
  pixflow::RunReport b_report;
  std::thread other([&] { b_report = b.run(); });
  const auto a_report = a.run();
  other.join();
  CHECK(a_sum == sum_of_squares(300));
  CHECK(b_sum == sum_of_squares(400));
  CHECK(a_report.node("sum")->items == 300);
  CHECK(b_report.node("sum")->items == 400);
  CHECK(a.threads() == 2);
  CHECK(b.threads() == 2);
}

TEST_CASE("graphs built one after another reuse the executor's threads", "[graph][engine]") {
  pixflow::Executor executor(3);
  CHECK(executor.threads() == 3);
  for (int i = 0; i < 5; ++i) {
    std::atomic<long> sum{0};
    pixflow::Graph graph(executor);
    build_sum(graph, 50, sum);
    graph.run();
    CHECK(sum == sum_of_squares(50));
  }
}
