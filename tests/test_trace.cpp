// Tests for the trace (GraphOptions::trace_path) and the DOT dump (Graph::dot).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <pixflow/engine/graph.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "graph_support.hpp"

using pixflow::test::count_to;
using pixflow::test::Service;

TEST_CASE("the trace is Chrome-trace JSON with one span per body and per I/O operation", "[graph][engine][trace]") {
  const auto path = std::filesystem::temp_directory_path() / "pixflow-test-trace.json";
  std::filesystem::remove(path);
  Service service;
  pixflow::Graph graph({.threads = 2, .max_in_flight = 4, .trace_path = path.string()});
  graph.on_cancel([&] { service.cancel_all([](Service::Op& op) { op(); }); });
  graph.source("numbers", count_to(25))
      .limit()
      .compute("half", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<int> {
        if (v == 7) return pixflow::Failure{"seven"};
        return v;
      })
      .io<int>("store", pixflow::Concurrency(2), [&](int v, pixflow::Completion<int> done) {
        service.submit([] { return true; }, [v, done] { done(v); });
      })
      .sink("end", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  const auto report = graph.run();
  REQUIRE(std::filesystem::exists(path));
  std::ifstream in(path);
  const nlohmann::json trace = nlohmann::json::parse(in);
  REQUIRE(trace.at("traceEvents").is_array());
  std::map<std::string, int> spans;
  std::map<std::string, std::set<std::string>> items;
  int counters = 0;
  std::string failure;
  for (const auto& e : trace.at("traceEvents")) {
    const std::string ph = e.at("ph");
    if (ph == "X") {
      const std::string name = e.at("name");
      ++spans[name];
      CHECK(e.at("dur").get<double>() >= 0);
      CHECK(e.at("ts").get<double>() >= 0);
      CHECK(e.contains("tid"));
      items[name].insert(e.at("args").at("item").get<std::string>());
      if (e.at("args").contains("failed")) failure = e.at("args").at("failed");
    } else if (ph == "C") {
      ++counters;
      CHECK(e.at("args").at("items").get<long>() >= 0);
    }
  }
  CHECK(spans["half"] == 25);
  CHECK(spans["store"] == 24);
  CHECK(spans["end"] == 24);
  CHECK(spans["numbers"] == 25);
  for (const char* name : {"half", "store", "end"}) {
    CAPTURE(name);
    CHECK(spans[name] == static_cast<int>(report.node(name)->items));
  }
  CHECK(items["half"].size() == 25);  // one span per item
  CHECK(items["half"].count("7") == 1);
  CHECK(failure == "seven");
  CHECK(counters >= 2 * (25 + 24 + 24));
  std::filesystem::remove(path);
}

TEST_CASE("dot() names every node and every edge", "[graph][engine][trace]") {
  pixflow::Graph graph({.threads = 1});
  auto items = graph.source("files", count_to(1)).limit(3);
  auto [gifs, others] = items.route("by format", {"gif", "other"}, [](const int&) -> std::size_t { return 0; });
  auto frames = gifs.compute("first frame", pixflow::Concurrency::unlimited(), [](int v) -> pixflow::Result<int> { return v; });
  auto merged = pixflow::merge("decoded", frames, others);
  merged.sink("write \"original\"", pixflow::Concurrency(4), [](int) { return pixflow::ok(); });
  merged.io<int>("upload", pixflow::Concurrency(2), [](int v, pixflow::Completion<int> done) { done(v); })
      .sink("record", pixflow::Concurrency(1), [](int) { return pixflow::ok(); });
  const std::string dot = graph.dot();
  CAPTURE(dot);
  CHECK(dot.rfind("digraph pixflow {", 0) == 0);
  for (const char* name : {"files", "limit 3", "by format", "first frame", "decoded", "write \\\"original\\\"", "upload", "record"})
    CHECK(dot.find(name) != std::string::npos);
  // n0 files, n1 limit, n2 route, n3 first frame, n4 merge, n5 write, n6 upload, n7 record
  for (const char* edge : {"n0 -> n1;", "n1 -> n2;", "n2 -> n3 [label=\"gif\"];", "n3 -> n4;", "n2 -> n4 [label=\"other\"];",
                           "n4 -> n5;", "n4 -> n6;", "n6 -> n7;"})
    CHECK(dot.find(edge) != std::string::npos);
  std::size_t arrows = 0;
  for (std::size_t p = dot.find("->"); p != std::string::npos; p = dot.find("->", p + 2)) ++arrows;
  CHECK(arrows == 8);
  graph.run();
}
