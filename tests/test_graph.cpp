// Tests for pixflow/engine/graph.hpp: a graph's runs — concurrency bounds, back-pressure, I/O nodes that
// do not starve compute nodes, failures as values, cancellation, timeouts, progress, reruns.
// (Node kinds and their shapes: test_stream.cpp; inputs: test_input.cpp; executors: test_executor.cpp;
// the trace and the DOT dump: test_trace.cpp.)
#include <catch2/catch.hpp>

#include <pixflow/engine/cancel.hpp>
#include <pixflow/engine/graph.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
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

TEST_CASE("a compute stage never runs more bodies at once than its concurrency", "[graph]") {
  const std::size_t threads = GENERATE(1u, 2u, 4u);
  const std::size_t limit = GENERATE(1u, 2u, 3u);
  CAPTURE(threads, limit);
  ActiveCounter counter;
  std::atomic<int> done{0};
  pixflow::Graph graph({.threads = threads, .max_in_flight = 32});
  graph.source("numbers", count_to(60))
      .limit()
      .compute("bounded", pixflow::Concurrency(limit),
               [&](int v) -> pixflow::Result<int> {
                 counter.enter();
                 burn(300us);
                 counter.leave();
                 return v;
               })
      .sink("count", pixflow::Concurrency::unlimited(), [&](int) {
        ++done;
        return pixflow::ok();
      });
  const auto report = graph.run();
  CHECK(done == 60);
  CHECK(counter.peak() <= static_cast<int>(limit));
  CHECK(counter.peak() >= 1);
  REQUIRE(report.node("bounded") != nullptr);
  CHECK(report.node("bounded")->peak_active <= limit);
  CHECK(report.node("bounded")->items == 60);
  CHECK(graph.threads() == threads);
}

TEST_CASE("unlimited compute uses every thread of the arena", "[graph]") {
  const std::size_t threads = GENERATE(2u, 4u);
  ActiveCounter counter;
  pixflow::Graph graph({.threads = threads, .max_in_flight = 64});
  // Each body waits until `threads` bodies have entered (or a generous deadline passes): only a graph
  // that really runs that many at once lets them all meet. 10 s: under ThreadSanitizer on a loaded
  // 2-core machine a worker thread once took over 2 s to join (the wait only lasts that long on failure).
  std::atomic<int> entered{0};
  graph.source("numbers", count_to(static_cast<int>(threads) * 4))
      .limit()
      .compute("spread", pixflow::Concurrency::unlimited(),
               [&](int v) -> pixflow::Result<int> {
                 counter.enter();
                 ++entered;
                 const auto deadline = std::chrono::steady_clock::now() + 10s;
                 while (entered.load() < static_cast<int>(threads) && std::chrono::steady_clock::now() < deadline)
                   std::this_thread::yield();
                 counter.leave();
                 return v;
               })
      .sink("drop", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  graph.run();
  CHECK(counter.peak() == static_cast<int>(threads));
}

TEST_CASE("max_in_flight bounds the items alive behind the limiter", "[graph]") {
  const std::size_t max_in_flight = GENERATE(1u, 3u, 8u);
  CAPTURE(max_in_flight);
  std::atomic<int> live{0};
  ActiveCounter peak;
  std::atomic<int> produced{0};
  pixflow::Graph graph({.threads = 2, .max_in_flight = max_in_flight});
  graph.source("numbers", [&, n = 0]() mutable -> std::optional<int> {
         if (n >= 200) return std::nullopt;
         ++produced;
         return n++;
       })
      .limit()
      .compute("enter", pixflow::Concurrency::unlimited(),
               [&](int v) -> pixflow::Result<int> {
                 ++live;
                 peak.enter();
                 return v;
               })
      .compute("work", pixflow::Concurrency::unlimited(),
               [&](int v) -> pixflow::Result<int> {
                 burn(50us);
                 if (v % 7 == 0) {  // failures must give their place back too
                   --live;
                   peak.leave();
                   return pixflow::Failure{"multiple of seven"};
                 }
                 return v;
               })
      .sink("leave", pixflow::Concurrency(2), [&](int) {
        --live;
        peak.leave();
        return pixflow::ok();
      });
  const auto report = graph.run();
  CHECK(produced == 200);
  CHECK(peak.peak() <= static_cast<int>(max_in_flight));
  CHECK(report.peak_live <= max_in_flight);
  CHECK(report.node("work")->failed == 29);  // 0, 7, ..., 196
  CHECK(report.node("leave")->items == 171);
  CHECK_FALSE(report.cancelled);
}

TEST_CASE("an I/O stage with many slow operations does not stop compute stages", "[graph]") {
  // One thread only. The first 8 operations complete at once; every later one is held by the service
  // until the compute stage has processed those 8 and 16 later operations are in flight together. A
  // blocking download would hold the only thread and the run would never end (the timeout would cancel
  // it); with an async I/O stage it completes.
  Service service;
  std::atomic<int> computed{0};
  std::atomic<int> started{0};
  const int items = 48;
  pixflow::Graph graph({.threads = 1, .max_in_flight = 64, .timeout_s = 20});
  graph.on_cancel([&] { service.cancel_all([](Service::Op& op) { op(); }); });
  graph.source("numbers", count_to(items))
      .limit()
      .io<int>("download", pixflow::Concurrency(16),
               [&](int v, pixflow::Completion<int> done) {
                 ++started;
                 service.submit([&, v] { return v < 8 || (computed.load() >= 8 && started.load() >= 24); },
                                [done, v] { done(v * 10); });
               })
      .compute("decode", pixflow::Concurrency::unlimited(),
               [&](int v) -> pixflow::Result<int> {
                 burn(200us);
                 ++computed;
                 service.poke();
                 return v;
               })
      .sink("write", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  const auto report = graph.run();
  CHECK_FALSE(report.cancelled);
  CHECK(computed == items);
  // Operations in flight are bounded by the stage's concurrency, not by the single thread.
  CHECK(report.node("download")->peak_active == 16);
  CHECK(report.node("download")->items == static_cast<std::uint64_t>(items));
}

TEST_CASE("failures reach the report with their stage and reason, and the run goes on", "[graph]") {
  std::atomic<int> done{0};
  pixflow::Graph graph({.threads = 2, .max_in_flight = 4});
  FailureLog failures(graph);
  graph.source("numbers", count_to(30))
      .limit()
      .compute("parse", pixflow::Concurrency::unlimited(),
               [](int v) -> pixflow::Result<int> {
                 if (v == 3) return pixflow::Failure{"three is bad"};
                 if (v == 5) throw std::runtime_error("boom");
                 return v;
               })
      .io<int>("fetch", pixflow::Concurrency(2),
               [](int v, pixflow::Completion<int> complete) {
                 if (v == 11) return;  // drops the completion: the item must fail, not hang
                 if (v == 13) {
                   complete(pixflow::Failure{"http 404"});
                   return;
                 }
                 complete(v);
               })
      .sink("store", pixflow::Concurrency(1), [&](int v) -> pixflow::Result<void> {
        if (v == 20) return pixflow::Failure{"disk full"};
        ++done;
        return pixflow::ok();
      });
  const auto report = graph.run();
  CHECK(done == 25);
  REQUIRE(failures.size() == 5);
  CHECK(failures.at(3).stage == "parse");
  CHECK(failures.at(3).reason == "three is bad");
  CHECK(failures.at(5).reason == "internal error: boom");
  CHECK(failures.at(11).stage == "fetch");
  CHECK(failures.at(11).reason == "operation abandoned");
  CHECK(failures.at(13).reason == "http 404");
  CHECK(failures.at(20).stage == "store");
  CHECK(report.node("parse")->failed == 2);
  CHECK(report.node("fetch")->failed == 2);
  CHECK(report.node("store")->failed == 1);
}

TEST_CASE("unlimited stages in a row keep their own figures and failures", "[graph]") {
  // a -> b -> sink, all unlimited; each must count and fail under its own name, and give the item's
  // place back (with 4 places, a lost one would stall the run).
  const std::size_t threads = GENERATE(1u, 2u);
  CAPTURE(threads);
  std::atomic<long> sum{0};
  pixflow::Graph graph({.threads = threads, .max_in_flight = 4});
  FailureLog failures(graph);
  graph.source("numbers", count_to(1000))
      .limit()
      .compute("a", pixflow::Concurrency::unlimited(),
               [](int v) -> pixflow::Result<long> {
                 if (v % 100 == 1) return pixflow::Failure{"a refuses"};
                 return long{v} * 2;
               })
      .compute("b", pixflow::Concurrency::unlimited(),
               [](long v) -> pixflow::Result<std::string> {
                 if (v % 200 == 4) throw std::runtime_error("b broke");
                 return std::to_string(v);
               })
      .sink("c", pixflow::Concurrency::unlimited(), [&](std::string s) -> pixflow::Result<void> {
        if (s == "20") return pixflow::Failure{"c is full"};
        sum += std::stol(s);
        return pixflow::ok();
      });
  const auto report = graph.run();
  REQUIRE(failures.size() == 21);
  CHECK(failures.at(1).stage == "a");
  CHECK(failures.at(1).reason == "a refuses");
  CHECK(failures.at(2).stage == "b");
  CHECK(failures.at(2).reason == "internal error: b broke");
  CHECK(failures.at(10).stage == "c");
  CHECK(failures.at(10).reason == "c is full");
  const auto& a = *report.node("a");
  const auto& b = *report.node("b");
  const auto& c = *report.node("c");
  CHECK(a.items == 1000);
  CHECK(a.failed == 10);
  CHECK(a.emitted == 990);
  CHECK(b.items == 990);
  CHECK(b.failed == 10);
  CHECK(b.emitted == 980);
  CHECK(c.items == 980);
  CHECK(c.failed == 1);
  for (const auto* n : {&a, &b, &c}) {
    CHECK(n->kind == (n == &c ? "sink" : "compute"));
    CHECK(n->active == 0);
    CHECK(n->queued == 0);
    CHECK(n->peak_active >= 1);
    CHECK(n->peak_active <= threads);
  }
  long expected = 0;
  for (int v = 0; v < 1000; ++v)
    if (v % 100 != 1 && v % 100 != 2 && v != 10) expected += 2L * v;
  CHECK(sum == expected);
}

TEST_CASE("a chain of unlimited, bounded and io stages runs every item through", "[graph]") {
  // unlimited -> unlimited -> bounded compute -> unlimited compute -> io -> unlimited sink
  Service service;
  std::atomic<int> done{0};
  pixflow::Graph graph({.threads = 2, .max_in_flight = 8});
  graph.on_cancel([&] { service.cancel_all([](Service::Op& op) { op(); }); });
  graph.source("numbers", count_to(200))
      .limit()
      .compute("one", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<int> { return v + 1; })
      .compute("two", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<int> { return v + 1; })
      .compute("serial", pixflow::Concurrency(1), [](int v) -> pixflow::Result<int> { return v + 1; })
      .compute("three", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<int> { return v + 1; })
      .io<int>("io", pixflow::Concurrency(4),
               [&](int v, pixflow::Completion<int> complete) {
                 service.submit([] { return true; }, [v, complete] { complete(v); });
               })
      .sink("end", pixflow::Concurrency::unlimited(), [&](int v) -> pixflow::Result<void> {
        if (v < 4 || v >= 204) return pixflow::Failure{"out of range"};
        ++done;
        return pixflow::ok();
      });
  const auto report = graph.run();
  CHECK(done == 200);
  for (const char* name : {"one", "two", "serial", "three", "io", "end"}) {
    CAPTURE(name);
    CHECK(report.node(name)->items == 200);
    CHECK(report.node(name)->failed == 0);
  }
  CHECK(report.node("serial")->peak_active == 1);
}

TEST_CASE("an unlimited compute with no stage after it still runs", "[graph]") {
  std::atomic<int> ran{0};
  pixflow::Graph graph({.threads = 2});
  graph.source("numbers", count_to(50)).compute("last", pixflow::Concurrency::unlimited(), [&](int v) -> pixflow::Result<int> {
    ++ran;
    return v;
  });
  const auto report = graph.run();
  CHECK(ran == 50);
  CHECK(report.node("last")->emitted == 50);
}

TEST_CASE("a source before limit() is asked one call at a time, once per free place", "[graph]") {
  // Places are freed by whichever thread ends an item, so the source is asked from many threads:
  // never two at once, never more items alive than places, and none lost at the end.
  const std::size_t threads = GENERATE(1u, 2u, 4u);
  const std::size_t places = GENERATE(1u, 2u, 16u);
  CAPTURE(threads, places);
  std::atomic<int> in_next{0}, overlapping{0}, live{0}, peak_live{0}, done{0};
  int n = 0;
  pixflow::Graph graph({.threads = threads, .max_in_flight = places});
  graph.source("numbers", [&]() -> std::optional<int> {
         if (in_next.fetch_add(1) != 0) ++overlapping;
         std::optional<int> v;
         if (n < 3000) {
           v = n++;
           const int now = ++live;
           int seen = peak_live.load();
           while (now > seen && !peak_live.compare_exchange_weak(seen, now)) {
           }
         }
         --in_next;
         return v;
       })
      .limit()
      .compute("work", pixflow::Concurrency::unlimited(),
               [](int v) -> pixflow::Result<int> {
                 if (v % 10 == 0) return pixflow::Failure{"tenth"};
                 return v;
               })
      .sink("end", pixflow::Concurrency::unlimited(), [&](int) {
        ++done;
        --live;
        return pixflow::ok();
      });
  graph.on_failure([&](const pixflow::ItemFailure&) { --live; });
  const auto report = graph.run();
  CHECK(done == 2700);
  CHECK(overlapping == 0);
  CHECK(peak_live.load() <= static_cast<int>(places));
  CHECK(report.node("numbers")->emitted == 3000);
  CHECK(report.peak_live <= places);
}

TEST_CASE("expand passes children on with keys in emission order", "[graph]") {
  std::mutex mutex;
  std::vector<pixflow::ItemKey> keys;
  std::vector<std::string> values;
  pixflow::Graph graph({.threads = 2, .max_in_flight = 8});
  graph.source("pages", count_to(3))
      .expand<std::string>("list", pixflow::Concurrency(2),
                           [](int page, pixflow::Emitter<std::string>& emit) -> pixflow::Result<void> {
                             if (page == 2) return pixflow::Failure{"page 2 unavailable"};
                             for (int i = 0; i < 3; ++i) {
                               std::string name = std::to_string(page);  // "p<page>i<i>", built without
                               name.insert(0, 1, 'p');                    // "p" + ..., which GCC 12 -O2
                               name += 'i';                               // flags (-Wrestrict, PR105651)
                               name += std::to_string(i);
                               emit(std::move(name));
                             }
                             return pixflow::ok();
                           })
      .limit()
      .sink("collect", pixflow::Concurrency(1), [&](std::string s) {
        std::lock_guard lock(mutex);
        values.push_back(std::move(s));
        return pixflow::ok();
      });
  // Keys are observed through a stage that sees them: failures carry theirs.
  const auto report = graph.run();
  std::sort(values.begin(), values.end());
  CHECK(values == std::vector<std::string>{"p0i0", "p0i1", "p0i2", "p1i0", "p1i1", "p1i2"});
  CHECK(report.node("list")->emitted == 6);
  CHECK(report.node("list")->failed == 1);
  CHECK(report.node("pages")->emitted == 3);
}

TEST_CASE("a source paced by limit(n) runs at most n items ahead of where they end", "[graph]") {
  // Pages are listed until one comes back empty (page 5): the source learns it only from the fetch
  // results, so without pacing it would produce pages without end.
  std::atomic<bool> ended{false};
  std::atomic<int> fetched{0};
  std::atomic<int> items{0};
  Service service;
  pixflow::Graph graph({.threads = 2, .max_in_flight = 8, .timeout_s = 20});
  graph.on_cancel([&] { service.cancel_all([](Service::Op& op) { op(); }); });
  graph.source("pages", [&, page = 0]() mutable -> std::optional<int> {
         if (ended.load()) return std::nullopt;
         return page++;
       })
      .limit(2)
      .io<int>("fetch", pixflow::Concurrency(2),
               [&](int page, pixflow::Completion<int> done) {
                 service.submit([] { return true; }, [&, page, done] {
                   ++fetched;
                   if (page >= 5) ended.store(true);
                   done(page);
                 });
               })
      .expand<int>("list", pixflow::Concurrency(1),
                   [](int page, pixflow::Emitter<int>& emit) -> pixflow::Result<void> {
                     if (page < 5)
                       for (int i = 0; i < 3; ++i) emit(page * 10 + i);
                     return pixflow::ok();
                   })
      .limit()
      .sink("count", pixflow::Concurrency(1), [&](int) {
        ++items;
        return pixflow::ok();
      });
  const auto report = graph.run();
  CHECK_FALSE(report.cancelled);
  CHECK(items == 15);
  CHECK(fetched >= 6);
  CHECK(fetched <= 6 + 2);
}

TEST_CASE("item keys order children after their parent", "[graph]") {
  const pixflow::ItemKey zero{0}, one{1}, two{2};
  CHECK(zero.child(5) < one);
  CHECK(one < one.child(1));
  CHECK(one.child(1) < one.child(2));
  CHECK(one.child(2) < one.child(2).child(1));
  CHECK(one.child(2).child(1) < two);
  CHECK(two == pixflow::ItemKey{2});
  CHECK(one.child(1) == one.child(1));
  CHECK_FALSE(one.child(1) == two.child(1));
  CHECK(one.child(2).child(3).to_string() == "1.2.3");
  CHECK(one.child(2).child(3).seq() == 1);
  CHECK(one.child(2).child(3).depth() == 3);
  CHECK(one.child(2).child(3).index() == 3);
  CHECK(one.child(2).child(3).parent() == one.child(2));
  CHECK(one.child(2).child(3).path() == std::vector<std::uint64_t>{1, 2, 3});
}

TEST_CASE("a timeout cancels the run, pending I/O is completed and run() returns", "[graph][cancel]") {
  Service service;
  std::atomic<int> cancelled_ops{0};
  std::atomic<int> written{0};
  // The first 10 complete at once; 2 s leaves them time even under ThreadSanitizer on a busy machine.
  pixflow::Graph graph({.threads = 2, .max_in_flight = 8, .timeout_s = 2});
  graph.on_cancel([&] {
    service.cancel_all([&](Service::Op& op) {
      ++cancelled_ops;
      op();
    });
  });
  std::atomic<int> failures{0};
  graph.on_failure([&](const pixflow::ItemFailure&) { ++failures; });
  graph.source("numbers", count_to(1000))
      .limit()
      .io<int>("download", pixflow::Concurrency(4),
               [&](int v, pixflow::Completion<int> done) {
                 // Only the first 10 ever complete; the rest would wait forever without cancellation.
                 service.submit([v] { return v < 10; }, [done, v] { done(v); });
               })
      .sink("write", pixflow::Concurrency(1), [&](int) {
        ++written;
        return pixflow::ok();
      });
  const auto started = std::chrono::steady_clock::now();
  const auto report = graph.run();
  CHECK(report.cancelled);
  CHECK(report.cancel_reason == "timed out after 2 s");
  CHECK(written == 10);
  CHECK(cancelled_ops >= 1);
  CHECK(std::chrono::steady_clock::now() - started < 10s);  // a hang guard, not a speed check
}

TEST_CASE("cancel() from another thread and an interrupt both stop the run", "[graph][cancel]") {
  const bool by_interrupt = GENERATE(false, true);
  pixflow::clear_interrupt();
  std::atomic<int> processed{0};
  pixflow::Graph graph({.threads = 2, .max_in_flight = 4, .stop_on_interrupt = true});
  graph.source("endless", [n = 0]() mutable -> std::optional<int> { return n++; })
      .limit()
      .compute("work", pixflow::Concurrency::unlimited(),
               [&](int v) -> pixflow::Result<int> {
                 burn(100us);
                 return v;
               })
      .sink("count", pixflow::Concurrency(1), [&](int) {
        ++processed;
        return pixflow::ok();
      });
  std::thread stopper([&] {
    while (processed.load() < 50) std::this_thread::sleep_for(1ms);
    if (by_interrupt)
      pixflow::request_interrupt();
    else
      graph.cancel("stopped by the user");
  });
  const auto report = graph.run();
  stopper.join();
  pixflow::clear_interrupt();
  CHECK(report.cancelled);
  CHECK(report.cancel_reason == (by_interrupt ? "interrupted" : "stopped by the user"));
  CHECK(processed >= 50);
}

TEST_CASE("a source that throws stops the run with its reason", "[graph][cancel]") {
  pixflow::Graph graph({.threads = 2, .max_in_flight = 4});
  std::atomic<int> seen{0};
  graph.source("broken", [n = 0]() mutable -> std::optional<int> {
         if (n == 5) throw std::runtime_error("listing unreadable");
         return n++;
       })
      .limit()
      .sink("count", pixflow::Concurrency(1), [&](int) {
        ++seen;
        return pixflow::ok();
      });
  const auto report = graph.run();
  CHECK(report.cancelled);
  CHECK(report.cancel_reason == "source failed: listing unreadable");
  CHECK(seen <= 5);
}

TEST_CASE("a graph cannot run on two threads at once", "[graph]") {
  pixflow::Graph graph({.threads = 1});
  std::atomic<bool> entered{false}, release{false};
  graph.source("one", [n = 0]() mutable -> std::optional<int> { return n++ < 1 ? std::optional(0) : std::nullopt; })
      .sink("wait", pixflow::Concurrency(1), [&](int) {
        entered = true;
        while (!release.load()) std::this_thread::sleep_for(1ms);
        return pixflow::ok();
      });
  std::thread first([&] { graph.run(); });
  while (!entered.load()) std::this_thread::sleep_for(1ms);
  CHECK_THROWS_AS(graph.run(), std::logic_error);
  release = true;
  first.join();
}

TEST_CASE("a cancel before run() cancels that run at once", "[graph][cancel]") {
  std::atomic<int> seen{0};
  pixflow::Graph graph({.threads = 2});
  graph.source("numbers", count_to(10)).sink("count", pixflow::Concurrency(1), [&](int) {
    ++seen;
    return pixflow::ok();
  });
  graph.cancel("not today");
  const auto report = graph.run();
  CHECK(report.cancelled);
  CHECK(report.cancel_reason == "not today");
  CHECK(seen == 0);
  CHECK_FALSE(graph.cancelled());  // the next run starts afresh
}

TEST_CASE("a stop request from another thread cancels the run", "[graph][cancel]") {
  std::stop_source stop;
  std::atomic<int> processed{0};
  pixflow::Graph graph({.threads = 2, .max_in_flight = 4, .stop = stop.get_token()});
  graph.source("endless", [n = 0]() mutable -> std::optional<int> { return n++; })
      .limit()
      .sink("count", pixflow::Concurrency(1), [&](int) {
        ++processed;
        return pixflow::ok();
      });
  std::thread stopper([&] {
    while (processed.load() < 20) std::this_thread::sleep_for(1ms);
    stop.request_stop();
  });
  const auto report = graph.run();
  stopper.join();
  CHECK(report.cancelled);
  CHECK(report.cancel_reason == "cancelled");
}

TEST_CASE("progress reports live node figures during the run", "[graph]") {
  std::mutex mutex;
  std::vector<std::vector<pixflow::NodeReport>> seen;
  pixflow::GraphOptions options{.threads = 2, .max_in_flight = 4};
  options.progress_interval_s = 0.02;
  options.on_progress = [&](const std::vector<pixflow::NodeReport>& nodes) {
    std::lock_guard lock(mutex);
    seen.push_back(nodes);
  };
  pixflow::Graph graph(options);
  graph.source("numbers", count_to(40))
      .limit()
      .compute("slow", pixflow::Concurrency(1),
               [](int v) -> pixflow::Result<int> {
                 std::this_thread::sleep_for(5ms);
                 return v;
               })
      .sink("drop", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  const auto report = graph.run();
  std::lock_guard lock(mutex);
  REQUIRE(seen.size() >= 2);
  // Mid-run, the slow node has a body running and items waiting for it.
  const bool saw_work = std::any_of(seen.begin(), seen.end(), [](const auto& nodes) {
    return std::any_of(nodes.begin(), nodes.end(), [](const pixflow::NodeReport& n) { return n.name == "slow" && n.active == 1; });
  });
  CHECK(saw_work);
  CHECK(report.node("slow")->active == 0);
  CHECK(report.node("slow")->items == 40);
}

TEST_CASE("busy_s measures millisecond bodies to within a few percent", "[graph][timing]") {
  // The body clock may be the TSC, converted with a rate calibrated over the run: it must agree with
  // steady_clock, which times the same bodies here.
  std::atomic<std::int64_t> measured_ns{0};
  pixflow::Graph graph({.threads = 2, .max_in_flight = 4});
  graph.source("numbers", count_to(20))
      .limit()
      .compute("spin", pixflow::Concurrency::unlimited(),
               [&](int v) -> pixflow::Result<int> {
                 const auto t0 = std::chrono::steady_clock::now();
                 burn(std::chrono::microseconds(2000 + 500 * (v % 3)));
                 measured_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
                 return v;
               })
      .sink("drop", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  const auto report = graph.run();
  const double expected = static_cast<double>(measured_ns.load()) / 1e9;
  CHECK(expected > 0.04);
  CHECK(report.node("spin")->busy_s == Approx(expected).epsilon(0.03));
}

TEST_CASE("the body clock converts its ticks to seconds", "[graph][timing]") {
  pixflow::detail::BodyClock tsc_if_any;
  pixflow::detail::BodyClock steady(false);
  CHECK_FALSE(steady.uses_tsc());
  const auto a = tsc_if_any.now();
  const auto b = steady.now();
  std::this_thread::sleep_for(20ms);
  const double a_s = static_cast<double>(pixflow::detail::BodyClock::between(a, tsc_if_any.now())) * tsc_if_any.seconds_per_tick();
  const double b_s = static_cast<double>(pixflow::detail::BodyClock::between(b, steady.now())) * steady.seconds_per_tick();
  CHECK(a_s >= 0.019);
  CHECK(a_s < 1.0);
  CHECK(b_s >= 0.019);
  CHECK(a_s == Approx(b_s).epsilon(0.02));
  CHECK(pixflow::detail::BodyClock::between(5, 3) == 0);
}
