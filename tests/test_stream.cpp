// Tests for pixflow/engine/stream.hpp: every node kind, and the shapes they make — broadcasts, routes,
// merges, nested expands — with limits holding across them.
#include <catch2/catch.hpp>

#include <pixflow/engine/graph.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "graph_support.hpp"

using namespace std::chrono_literals;
using pixflow::test::ActiveCounter;
using pixflow::test::burn;
using pixflow::test::count_to;
using pixflow::test::FailureLog;
using pixflow::test::Service;

namespace {

/// Counts the branches each item has ended on, so a test knows when all of an item's copies are done.
class BranchTally {
 public:
  explicit BranchTally(int branches) : branches_(branches) {}
  /// An item enters the limited part; returns how many entered items have not ended on every branch.
  int enter(int item) {
    std::lock_guard lock(mutex_);
    ended_[item] = 0;
    live_.insert(item);
    peak_ = std::max(peak_, static_cast<int>(live_.size()));
    return static_cast<int>(live_.size());
  }
  /// One branch of `item` ended (done or failed).
  void end(int item) {
    std::lock_guard lock(mutex_);
    if (++ended_[item] == branches_) live_.erase(item);
  }
  [[nodiscard]] int peak() const {
    std::lock_guard lock(mutex_);
    return peak_;
  }
  [[nodiscard]] bool all_ended(int item) const {
    std::lock_guard lock(mutex_);
    const auto it = ended_.find(item);
    return it != ended_.end() && it->second == branches_;
  }

 private:
  const int branches_;
  mutable std::mutex mutex_;
  std::map<int, int> ended_;
  std::set<int> live_;
  int peak_ = 0;
};

}  // namespace

TEST_CASE("every node kind runs its items on 1, 2 and 4 threads", "[graph][engine]") {
  // source → limit → compute → expand → io → route ─┬─ even: compute ─┐
  //                                                  └─ odd ──────────┴─ merge ─┬─ sink (sum)
  //                                                                             └─ sink (count)   (broadcast)
  const std::size_t threads = GENERATE(1u, 2u, 4u);
  CAPTURE(threads);
  Service service;
  std::atomic<long> sum{0};
  std::atomic<int> counted{0};
  pixflow::Graph graph({.threads = threads, .max_in_flight = 8});
  graph.on_cancel([&] { service.cancel_all([](Service::Op& op) { op(); }); });
  FailureLog failures(graph);
  auto children = graph.source("numbers", count_to(40))
                      .limit()
                      .compute("double", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<int> { return v * 2; })
                      .expand<int>("split", pixflow::Concurrency(2), [](int v, pixflow::Emitter<int>& emit) -> pixflow::Result<void> {
                        emit(v);
                        emit(v + 1);
                        return pixflow::ok();
                      })
                      .io<int>("fetch", pixflow::Concurrency(3), [&](int v, pixflow::Completion<int> done) {
                        service.submit([] { return true; }, [v, done] { done(v); });
                      });
  auto [even, odd] = children.route("parity", {"even", "odd"}, [](const int& v) -> std::size_t { return v % 2 == 0 ? 0 : 1; });
  auto merged = pixflow::merge("together", even.compute("tenfold", pixflow::Concurrency(1), [](int v) -> pixflow::Result<int> { return v * 10; }), odd);
  merged.sink("sum", pixflow::Concurrency(2), [&](int v) {
    sum += v;
    return pixflow::ok();
  });
  merged.sink("count", pixflow::Concurrency::unlimited(), [&](int) {
    ++counted;
    return pixflow::ok();
  });
  const auto report = graph.run();
  CHECK_FALSE(report.cancelled);
  CHECK(failures.size() == 0);
  long expected = 0;
  for (int v = 0; v < 40; ++v) expected += 10L * (2 * v) + (2 * v + 1);
  CHECK(sum == expected);
  CHECK(counted == 80);
  CHECK(report.node("numbers")->emitted == 40);
  CHECK(report.node("split")->emitted == 80);
  CHECK(report.node("fetch")->items == 80);
  CHECK(report.node("fetch")->peak_active <= 3);
  CHECK(report.node("parity")->items == 80);
  CHECK(report.node("tenfold")->items == 40);
  CHECK(report.node("tenfold")->peak_active == 1);
  CHECK(report.node("together")->items == 80);
  CHECK(report.node("sum")->items == 80);
  CHECK(report.node("count")->items == 80);
  CHECK(report.node("together")->kind == "merge");
  CHECK(report.node("parity")->kind == "route");
  CHECK(report.peak_live <= 8);
}

TEST_CASE("items alive stay within the limit under broadcasts and routes", "[graph][engine]") {
  // limit(4) → broadcast to a slow branch and a fast one; the fast one routes to two sinks. An item
  // holds its place until both branches have ended: never more than 4 items unfinished.
  const std::size_t threads = GENERATE(2u, 4u);
  const std::size_t places = GENERATE(1u, 4u);
  CAPTURE(threads, places);
  BranchTally tally(2);
  std::atomic<int> over{0};
  pixflow::Graph graph({.threads = threads, .max_in_flight = places});
  auto items = graph.source("numbers", count_to(120))
                   .limit()
                   .compute("enter", pixflow::Concurrency::unlimited(), [&](int v) -> pixflow::Result<int> {
                     if (tally.enter(v) > static_cast<int>(places)) ++over;
                     return v;
                   });
  items.compute("slow", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<int> {
         burn(std::chrono::microseconds(100 + 50 * (v % 3)));
         return v;
       })
      .sink("slow end", pixflow::Concurrency::unlimited(), [&](int v) {
        tally.end(v);
        return pixflow::ok();
      });
  auto [low, high] = items.route("half", {"low", "high"}, [](const int& v) -> std::size_t { return v < 60 ? 0 : 1; });
  low.sink("low end", pixflow::Concurrency(1), [&](int v) {
    tally.end(v);
    return pixflow::ok();
  });
  high.sink("high end", pixflow::Concurrency(1), [&](int v) -> pixflow::Result<void> {
    tally.end(v);
    if (v % 10 == 0) return pixflow::Failure{"tenth"};  // a failed branch ends the item's copy too
    return pixflow::ok();
  });
  const auto report = graph.run();
  CHECK(over == 0);
  CHECK(tally.peak() <= static_cast<int>(places));
  CHECK(report.peak_live <= places);
  CHECK(report.node("slow end")->items == 120);
  CHECK(report.node("low end")->items + report.node("high end")->items == 120);
  CHECK(report.node("high end")->failed == 6);
}

TEST_CASE("three nested expands give every item a key of its own", "[graph][engine]") {
  std::mutex mutex;
  std::vector<pixflow::ItemKey> keys;
  std::vector<pixflow::ItemKey> emitted;
  pixflow::Graph graph({.threads = 2, .max_in_flight = 8});
  auto expand3 = [&](const std::string& name, pixflow::Stream<int> s) {
    return s.expand<int>(name, pixflow::Concurrency::unlimited(), [&](int v, pixflow::Emitter<int>& emit) -> pixflow::Result<void> {
      for (int i = 0; i < 3; ++i) {
        const pixflow::ItemKey key = emit(v * 3 + i);
        std::lock_guard lock(mutex);
        emitted.push_back(key);
      }
      return pixflow::ok();
    });
  };
  auto leaves = expand3("c", expand3("b", expand3("a", graph.source("roots", count_to(4)))));
  // Every leaf fails on purpose: its failure carries its key.
  leaves.sink("leaf", pixflow::Concurrency::unlimited(), [](int) -> pixflow::Result<void> { return pixflow::Failure{"leaf"}; });
  graph.on_failure([&](const pixflow::ItemFailure& f) {
    std::lock_guard lock(mutex);
    keys.push_back(f.key);
  });
  graph.run();
  REQUIRE(keys.size() == 4 * 27);
  std::set<pixflow::ItemKey> unique(keys.begin(), keys.end());
  CHECK(unique.size() == keys.size());
  for (const auto& k : keys) {
    CHECK(k.depth() == 4);
    CHECK(k.seq() < 4);
    CHECK(k.index() >= 1);
    CHECK(k.index() <= 3);
  }
  std::set<pixflow::ItemKey> all_emitted(emitted.begin(), emitted.end());
  CHECK(all_emitted.size() == 4 * (3 + 9 + 27));
  CHECK(std::all_of(keys.begin(), keys.end(), [&](const pixflow::ItemKey& k) { return all_emitted.count(k) == 1; }));
}

TEST_CASE("route and merge deliver every item exactly once", "[graph][engine]") {
  const std::size_t threads = GENERATE(1u, 2u, 4u);
  CAPTURE(threads);
  std::mutex mutex;
  std::multiset<int> seen;
  pixflow::Graph graph({.threads = threads, .max_in_flight = 16});
  FailureLog failures(graph);
  auto [a, b, c] = graph.source("numbers", count_to(300))
                       .limit()
                       .route("three ways", {"a", "b", "c"}, [](const int& v) -> std::size_t {
                         if (v == 299) return 7;  // no such output: the item fails
                         return static_cast<std::size_t>(v % 3);
                       });
  auto plus = [](int add) { return [add](int v) -> pixflow::Result<int> { return v + add; }; };
  pixflow::merge("all", a.compute("a+0", pixflow::Concurrency::unlimited(), plus(0)), b.compute("b+0", pixflow::Concurrency(2), plus(0)), c)
      .sink("collect", pixflow::Concurrency::unlimited(), [&](int v) {
        std::lock_guard lock(mutex);
        seen.insert(v);
        return pixflow::ok();
      });
  const auto report = graph.run();
  REQUIRE(seen.size() == 299);
  for (int v = 0; v < 299; ++v) CHECK(seen.count(v) == 1);
  REQUIRE(failures.size() == 1);
  CHECK(failures.at(299).stage == "three ways");
  CHECK(failures.at(299).reason == "no output 7");
  CHECK(report.node("all")->items == 299);
}

TEST_CASE("a failure in one branch of a broadcast: the item ends once every branch has", "[graph][engine]") {
  // limit(1): the next item may enter only once both copies of the current one have ended. Branch
  // "check" fails odd items at once; branch "store" is slow: a place given back at the first failure
  // would let the next item in while "store" still works on this one.
  BranchTally tally(2);
  std::atomic<int> early{0};
  std::atomic<int> stored{0};
  pixflow::Graph graph({.threads = 4, .max_in_flight = 1});
  FailureLog failures(graph);
  auto items = graph.source("numbers", count_to(30)).limit().compute("enter", pixflow::Concurrency::unlimited(), [&](int v) -> pixflow::Result<int> {
    if (v > 0 && !tally.all_ended(v - 1)) ++early;
    tally.enter(v);
    return v;
  });
  items.sink("check", pixflow::Concurrency::unlimited(), [&](int v) -> pixflow::Result<void> {
    tally.end(v);
    if (v % 2 == 1) return pixflow::Failure{"odd"};
    return pixflow::ok();
  });
  items.sink("store", pixflow::Concurrency::unlimited(), [&](int v) {
    std::this_thread::sleep_for(1ms);
    ++stored;
    tally.end(v);
    return pixflow::ok();
  });
  const auto report = graph.run();
  CHECK(early == 0);
  CHECK(stored == 30);
  CHECK(failures.size() == 15);  // one report per failed copy; the other copy goes on
  CHECK(failures.at(1).stage == "check");
  CHECK(report.node("check")->failed == 15);
  CHECK(report.peak_live == 1);
}

TEST_CASE("a cancel in the middle of a branch stops the whole run", "[graph][engine][cancel]") {
  std::atomic<int> left{0}, right{0};
  pixflow::Graph graph({.threads = 2, .max_in_flight = 4});
  pixflow::Graph* g = &graph;
  auto items = graph.source("endless", [n = 0]() mutable -> std::optional<int> { return n++; }).limit();
  items.compute("left", pixflow::Concurrency::unlimited(), [&](int v) -> pixflow::Result<int> {
         ++left;
         return v;
       })
      .sink("left end", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  items.compute("right", pixflow::Concurrency::unlimited(), [&, g](int v) -> pixflow::Result<int> {
         if (++right == 100) g->cancel("enough");
         burn(20us);
         return v;
       })
      .sink("right end", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  const auto report = graph.run();
  CHECK(report.cancelled);
  CHECK(report.cancel_reason == "enough");
  CHECK(right >= 100);
  CHECK(right < 100 + 16);  // no new bodies once cancelled: at most the items in flight
  CHECK(left < 100 + 16);
}

TEST_CASE("a stream of a type that cannot be copied has one successor at most", "[graph][engine]") {
  pixflow::Graph graph({.threads = 1});
  auto s = graph.source("boxes", [n = 0]() mutable -> std::optional<std::unique_ptr<int>> {
    return n < 3 ? std::optional(std::make_unique<int>(n++)) : std::nullopt;
  });
  std::atomic<int> sum{0};
  s.sink("open", pixflow::Concurrency(1), [&](std::unique_ptr<int> p) {
    sum += *p;
    return pixflow::ok();
  });
  CHECK_THROWS_AS(s.sink("again", pixflow::Concurrency(1), [](std::unique_ptr<int>) { return pixflow::ok(); }), std::logic_error);
  graph.run();
  CHECK(sum == 3);
}
