// The engine's own overhead, with trivial bodies, on the same threads and items in flight:
// - chain: source → limit → a → b → sink on pixflow::Graph, against the same nodes wired by hand in
//   tbb::flow (a serial source node fed one token per free place, two function_nodes, a sink that
//   gives the token back) and against tbb::parallel_pipeline (serial input, three parallel filters);
// - diamond: source → limit → (a, b: the stream broadcast) → merge → sink, against the same graph by
//   hand in tbb::flow (each item shared by its two branches, its token given back by the second);
// - trace: the chain with GraphOptions::trace_path set, against none (per item, the file written).
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

#include <unistd.h>

#include <pixflow/engine/graph.hpp>

#include "bench.hpp"

namespace pixflow::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace flow = tbb::flow;

/// A trivial body: a few integer operations (splitmix64), so the stage costs next to nothing.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Puts `tokens` tokens into a hand-wired graph's source and times the graph until it is idle.
template <class Source>
double timed_tokens(flow::graph& g, Source& source, std::size_t tokens) {
  const auto started = Clock::now();
  for (std::size_t i = 0; i < tokens; ++i) source.try_put(flow::continue_msg());
  g.wait_for_all();
  return seconds_since(started);
}

/// Runs a pixflow graph once and times it; `checksum` gets what its sink added up into `sum`.
double timed_run(pixflow::Graph& graph, const std::atomic<std::uint64_t>& sum, std::uint64_t& checksum) {
  const auto started = Clock::now();
  const pixflow::RunReport report = graph.run();
  const double s = seconds_since(started);
  if (report.cancelled) throw std::runtime_error("graph run cancelled: " + report.cancel_reason);
  checksum = sum.load();
  return s;
}

pixflow::Result<std::uint64_t> mixed(std::uint64_t v) { return mix(v); }

/// The chain on pixflow::Graph; `trace` = a trace file to write ("" = none).
double graph_chain(const EngineOptions& o, pixflow::Executor& executor, std::uint64_t items, const std::string& trace,
                   std::uint64_t& checksum) {
  pixflow::Graph graph(executor, {.max_in_flight = o.tokens, .trace_path = trace});
  std::uint64_t next = 0;
  std::atomic<std::uint64_t> sum{0};
  graph.source("numbers", [&]() -> std::optional<std::uint64_t> { return next < items ? std::optional(next++) : std::nullopt; })
      .limit()
      .compute("a", pixflow::Concurrency::unlimited(), mixed)
      .compute("b", pixflow::Concurrency::unlimited(), mixed)
      .sink("sum", pixflow::Concurrency::unlimited(), [&](std::uint64_t v) {
        sum.fetch_add(v, std::memory_order_relaxed);
        return pixflow::ok();
      });
  return timed_run(graph, sum, checksum);
}

/// The chain by hand in tbb::flow: the source is a serial node fed one token per free place; the
/// sink gives the token back.
double flow_chain(const EngineOptions& o, tbb::task_arena& arena, std::uint64_t& checksum) {
  std::atomic<std::uint64_t> sum{0};
  double s = 0;
  arena.execute([&] {
    flow::graph g;
    using source_t = flow::multifunction_node<flow::continue_msg, std::tuple<std::uint64_t>>;
    std::uint64_t next = 0;
    source_t source(g, flow::serial, [&](const flow::continue_msg&, source_t::output_ports_type& ports) {
      if (next < o.items) std::get<0>(ports).try_put(next++);
    });
    flow::function_node<std::uint64_t, std::uint64_t> a(g, flow::unlimited, [](std::uint64_t v) { return mix(v); });
    flow::function_node<std::uint64_t, std::uint64_t> b(g, flow::unlimited, [](std::uint64_t v) { return mix(v); });
    flow::function_node<std::uint64_t, flow::continue_msg> sink(g, flow::unlimited, [&](std::uint64_t v) {
      sum.fetch_add(v, std::memory_order_relaxed);
      return flow::continue_msg();
    });
    flow::make_edge(flow::output_port<0>(source), a);
    flow::make_edge(a, b);
    flow::make_edge(b, sink);
    flow::make_edge(sink, source);
    s = timed_tokens(g, source, o.tokens);
  });
  checksum = sum.load();
  return s;
}

double pipeline_chain(const EngineOptions& o, tbb::task_arena& arena, std::uint64_t& checksum) {
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
  const double s = seconds_since(started);
  checksum = sum.load();
  return s;
}

/// The diamond on pixflow::Graph: the limited stream feeds two computes (a broadcast), merged into a sink.
double graph_diamond(const EngineOptions& o, pixflow::Executor& executor, std::uint64_t& checksum) {
  pixflow::Graph graph(executor, {.max_in_flight = o.tokens});
  std::uint64_t next = 0;
  std::atomic<std::uint64_t> sum{0};
  auto numbers = graph.source("numbers", [&]() -> std::optional<std::uint64_t> { return next < o.items ? std::optional(next++) : std::nullopt; })
                     .limit();
  auto left = numbers.compute("a", pixflow::Concurrency::unlimited(), mixed);
  auto right = numbers.compute("b", pixflow::Concurrency::unlimited(), [](std::uint64_t v) -> pixflow::Result<std::uint64_t> { return mix(v + 1); });
  pixflow::merge("both", left, right).sink("sum", pixflow::Concurrency::unlimited(), [&](std::uint64_t v) {
    sum.fetch_add(v, std::memory_order_relaxed);
    return pixflow::ok();
  });
  return timed_run(graph, sum, checksum);
}

/// The diamond by hand: a message shared by the two branches counts them down; the second to reach
/// the sink gives the token back.
double flow_diamond(const EngineOptions& o, tbb::task_arena& arena, std::uint64_t& checksum) {
  struct Shared {
    explicit Shared(std::uint64_t v) : value(v) {}
    std::uint64_t value;
    std::atomic<int> branches{2};
  };
  struct Msg {
    std::uint64_t value;
    std::shared_ptr<Shared> item;
  };
  std::atomic<std::uint64_t> sum{0};
  double s = 0;
  arena.execute([&] {
    flow::graph g;
    using source_t = flow::multifunction_node<flow::continue_msg, std::tuple<std::shared_ptr<Shared>>>;
    std::uint64_t next = 0;
    source_t source(g, flow::serial, [&](const flow::continue_msg&, source_t::output_ports_type& ports) {
      if (next < o.items) std::get<0>(ports).try_put(std::make_shared<Shared>(next++));
    });
    flow::function_node<std::shared_ptr<Shared>, Msg> a(g, flow::unlimited, [](const std::shared_ptr<Shared>& p) { return Msg{mix(p->value), p}; });
    flow::function_node<std::shared_ptr<Shared>, Msg> b(g, flow::unlimited, [](const std::shared_ptr<Shared>& p) { return Msg{mix(p->value + 1), p}; });
    using sink_t = flow::multifunction_node<Msg, std::tuple<flow::continue_msg>>;
    sink_t sink(g, flow::unlimited, [&](const Msg& m, sink_t::output_ports_type& ports) {
      sum.fetch_add(m.value, std::memory_order_relaxed);
      if (m.item->branches.fetch_sub(1) == 1) std::get<0>(ports).try_put(flow::continue_msg());
    });
    flow::make_edge(flow::output_port<0>(source), a);
    flow::make_edge(flow::output_port<0>(source), b);
    flow::make_edge(a, sink);
    flow::make_edge(b, sink);
    flow::make_edge(flow::output_port<0>(sink), source);
    s = timed_tokens(g, source, o.tokens);
  });
  checksum = sum.load();
  return s;
}

}  // namespace

int run_engine(const EngineOptions& options) {
  EngineOptions o = options;
  const std::size_t threads = o.threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : o.threads;
  o.threads = threads;
  pixflow::Executor executor(threads);
  tbb::task_arena arena(static_cast<int>(threads));
  const auto trace_file = std::filesystem::temp_directory_path() / ("pixflow-bench-trace-" + std::to_string(::getpid()) + ".json");
  const std::uint64_t trace_items = std::min<std::uint64_t>(o.items, o.trace_items);

  double chain = 1e300, flow_c = 1e300, pipe = 1e300, diamond = 1e300, flow_d = 1e300, traced = 1e300, untraced = 1e300;
  std::uint64_t sums[7] = {};
  auto best = [&](double& slot, double s) { slot = std::min(slot, s); };
  for (int i = 0; i < std::max(1, o.repeat); ++i) {  // alternated, so a burst of load hits all alike
    if (o.only.empty() || o.only == "graph") best(chain, graph_chain(o, executor, o.items, "", sums[0]));
    if (o.only.empty() || o.only == "flow") best(flow_c, flow_chain(o, arena, sums[1]));
    if (o.only.empty() || o.only == "pipeline") best(pipe, pipeline_chain(o, arena, sums[2]));
    if (o.only.empty() || o.only == "diamond") {
      best(diamond, graph_diamond(o, executor, sums[3]));
      best(flow_d, flow_diamond(o, arena, sums[4]));
    }
    if (o.only.empty() || o.only == "trace") {
      best(untraced, graph_chain(o, executor, trace_items, "", sums[5]));
      best(traced, graph_chain(o, executor, trace_items, trace_file.string(), sums[6]));
    }
  }
  std::error_code ec;
  const auto trace_bytes = std::filesystem::file_size(trace_file, ec);
  std::filesystem::remove(trace_file, ec);
  if (o.only.empty() && (sums[0] != sums[1] || sums[0] != sums[2] || sums[3] != sums[4] || sums[5] != sums[6]))
    throw std::runtime_error("the runs disagree on the checksum");
  const double n = static_cast<double>(o.items);
  const double nt = static_cast<double>(trace_items);
  std::cout << "{\"items\": " << o.items << ", \"threads\": " << threads << ", \"tokens\": " << o.tokens
            << ", \"graph_s\": " << chain << ", \"flow_s\": " << flow_c << ", \"pipeline_s\": " << pipe
            << ", \"graph_items_per_s\": " << n / chain << ", \"flow_items_per_s\": " << n / flow_c
            << ", \"pipeline_items_per_s\": " << n / pipe << ", \"ratio_flow\": " << flow_c / chain
            << ", \"ratio\": " << pipe / chain << ", \"diamond_graph_items_per_s\": " << n / diamond
            << ", \"diamond_flow_items_per_s\": " << n / flow_d << ", \"diamond_ratio_flow\": " << flow_d / diamond
            << ", \"trace_items\": " << trace_items << ", \"trace_off_ns_per_item\": " << untraced / nt * 1e9
            << ", \"trace_on_ns_per_item\": " << traced / nt * 1e9 << ", \"trace_bytes_per_item\": "
            << static_cast<double>(trace_bytes) / nt << "}\n";
  return 0;
}

}  // namespace pixflow::bench
