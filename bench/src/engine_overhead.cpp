// The engine's own overhead: the same four trivial stages on pixflow::Graph and on a plain
// tbb::parallel_pipeline, same threads, same items in flight.
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <thread>

#include <pixflow/engine/graph.hpp>

#include "bench.hpp"

namespace pixflow::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// A trivial body: a few integer operations (splitmix64), so the stage costs next to nothing.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double run_graph(const EngineOptions& o, std::uint64_t& checksum) {
  pixflow::Graph graph({.threads = o.threads, .max_in_flight = o.tokens});
  std::uint64_t next = 0;
  std::atomic<std::uint64_t> sum{0};
  graph.source("numbers", [&]() -> std::optional<std::uint64_t> {
         return next < o.items ? std::optional<std::uint64_t>(next++) : std::nullopt;
       })
      .limit()
      .compute("a", pixflow::Concurrency::unlimited(), [](std::uint64_t v) -> pixflow::Result<std::uint64_t> { return mix(v); })
      .compute("b", pixflow::Concurrency::unlimited(), [](std::uint64_t v) -> pixflow::Result<std::uint64_t> { return mix(v); })
      .sink("sum", pixflow::Concurrency::unlimited(), [&](std::uint64_t v) {
        sum.fetch_add(v, std::memory_order_relaxed);
        return pixflow::ok();
      });
  const auto started = Clock::now();
  const pixflow::RunReport report = graph.run();
  const double s = std::chrono::duration<double>(Clock::now() - started).count();
  if (report.cancelled) throw std::runtime_error("graph run cancelled: " + report.cancel_reason);
  checksum = sum.load();
  return s;
}

double run_pipeline(const EngineOptions& o, std::size_t threads, std::uint64_t& checksum) {
  tbb::task_arena arena(static_cast<int>(threads));
  std::uint64_t next = 0;
  std::atomic<std::uint64_t> sum{0};
  const auto started = Clock::now();
  arena.execute([&] {
    tbb::parallel_pipeline(
        o.tokens,
        tbb::make_filter<void, std::uint64_t>(tbb::filter_mode::serial_in_order,
                                              [&](tbb::flow_control& fc) -> std::uint64_t {
                                                if (next >= o.items) {
                                                  fc.stop();
                                                  return 0;
                                                }
                                                return next++;
                                              }) &
            tbb::make_filter<std::uint64_t, std::uint64_t>(tbb::filter_mode::parallel, [](std::uint64_t v) { return mix(v); }) &
            tbb::make_filter<std::uint64_t, std::uint64_t>(tbb::filter_mode::parallel, [](std::uint64_t v) { return mix(v); }) &
            tbb::make_filter<std::uint64_t, void>(tbb::filter_mode::parallel,
                                                  [&](std::uint64_t v) { sum.fetch_add(v, std::memory_order_relaxed); }));
  });
  const double s = std::chrono::duration<double>(Clock::now() - started).count();
  checksum = sum.load();
  return s;
}

}  // namespace

int run_engine(const EngineOptions& options) {
  EngineOptions o = options;
  const std::size_t threads = o.threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : o.threads;
  o.threads = threads;
  double best_graph = 1e300;
  double best_pipeline = 1e300;
  std::uint64_t graph_sum = 0;
  std::uint64_t pipeline_sum = 0;
  for (int i = 0; i < std::max(1, o.repeat); ++i) {
    if (o.only != "pipeline") best_graph = std::min(best_graph, run_graph(o, graph_sum));
    if (o.only != "graph") best_pipeline = std::min(best_pipeline, run_pipeline(o, threads, pipeline_sum));
  }
  if (o.only.empty() && graph_sum != pipeline_sum) throw std::runtime_error("the two runs disagree on the checksum");
  const double n = static_cast<double>(o.items);
  std::cout << "{\"items\": " << o.items << ", \"threads\": " << threads << ", \"tokens\": " << o.tokens
            << ", \"graph_s\": " << best_graph << ", \"pipeline_s\": " << best_pipeline
            << ", \"graph_items_per_s\": " << n / best_graph << ", \"pipeline_items_per_s\": " << n / best_pipeline
            << ", \"ratio\": " << best_pipeline / best_graph << "}\n";
  return 0;
}

}  // namespace pixflow::bench
