// primes — the seeds' CPU-bound example (count, sum and product of the primes below each of several
// limits) as one compute graph: the sieve segments of every limit run on every core by work stealing,
// in one process, with no processes to start and no interpreter lock.
//
//   limits ─▶ split (expand: limit → segments [lo, hi)) ─▶ sieve (compute, unlimited: every core)
//                                                                   │ count, sum, product per segment
//                                                                   ▼
//                                        combine (sink, serial): adds up each limit's segments and
//                                        prints each limit's result, in the order the limits were
//                                        given, as soon as it and those before it are complete
//
// The base primes (up to √ of the largest limit) are sieved once before the run and only read by the
// sieve bodies. `--compare` runs the same graph on 1 thread and on every thread and prints the speed-up;
// `--trace FILE` writes a Chrome trace of the run (one span per segment sieved), `--dump-graph` the DOT.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <pixflow/engine/graph.hpp>

namespace {

constexpr std::uint64_t modulus = 1'000'000'007;
constexpr std::uint64_t segment_width = std::uint64_t{1} << 18;  // 256 KiB of flags: fits in L2
// The sum of the primes below 1e10 is about 2.2e18, still inside 64 bits.
constexpr std::uint64_t max_limit = 10'000'000'000;

/// The primes below one limit, or below one segment's `hi` from its `lo`.
struct Tally {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t product = 1;  // modulo `modulus`

  void add(const Tally& other) {
    count += other.count;
    sum += other.sum;
    product = product * other.product % modulus;
  }
  friend bool operator==(const Tally&, const Tally&) = default;
};

struct Limit {
  std::size_t index;  // in the order given
  std::uint64_t value;
};

struct Segment {
  std::size_t limit_index;
  std::uint64_t segments;  // how many segments this limit was split into
  std::uint64_t lo, hi;    // the numbers lo <= n < hi
};

struct SegmentTally {
  std::size_t limit_index;
  std::uint64_t segments;
  Tally tally;
};

std::uint64_t isqrt(std::uint64_t n) {
  auto r = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
  while (r * r > n) --r;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

/// The primes p <= n, by the plain sieve of Eratosthenes.
std::vector<std::uint64_t> primes_up_to(std::uint64_t n) {
  std::vector<bool> composite(n + 1);
  std::vector<std::uint64_t> primes;
  for (std::uint64_t i = 2; i <= n; ++i) {
    if (composite[i]) continue;
    primes.push_back(i);
    for (std::uint64_t j = i * i; j <= n; j += i) composite[j] = true;
  }
  return primes;
}

/// The primes in [lo, hi), given every prime p with p * p < hi.
Tally sieve_segment(std::uint64_t lo, std::uint64_t hi, const std::vector<std::uint64_t>& base) {
  Tally tally;
  if (hi <= 2) return tally;
  lo = std::max<std::uint64_t>(lo, 2);
  std::vector<std::uint8_t> composite(hi - lo, 0);
  for (const std::uint64_t p : base) {
    if (p * p >= hi) break;
    for (std::uint64_t m = std::max(p * p, (lo + p - 1) / p * p); m < hi; m += p) composite[m - lo] = 1;
  }
  for (std::uint64_t n = lo; n < hi; ++n) {
    if (composite[n - lo] != 0) continue;
    ++tally.count;
    tally.sum += n;
    tally.product = tally.product * (n % modulus) % modulus;
  }
  return tally;
}

struct Run {
  std::vector<Tally> tallies;  // one per limit, in the order given
  double wall_s = 0;
  double sieve_busy_s = 0;     // sieve body time summed over segments
  std::size_t threads = 0;
  std::uint64_t failed = 0;
};

/// Builds the graph of the comment at the top and runs it on `threads` threads (0 = every core).
Run run_graph(const std::vector<std::uint64_t>& limits, const std::vector<std::uint64_t>& base, std::size_t threads,
              bool print, const std::string& trace = {}, bool dump_graph = false) {
  Run run;
  run.tallies.resize(limits.size());
  std::vector<std::uint64_t> received(limits.size(), 0);
  std::vector<bool> complete(limits.size(), false);
  std::size_t next_to_print = 0;  // limits print in the order given, whatever order they complete in

  pixflow::GraphOptions options;
  options.threads = threads;
  options.trace_path = trace;
  pixflow::Graph graph(options);
  graph.on_failure([&](const pixflow::ItemFailure& f) {
    ++run.failed;
    std::cerr << "primes: " << f.stage << ": " << f.reason << '\n';
  });
  std::size_t next = 0;
  graph
      .source("limits",
              [&]() -> std::optional<Limit> {
                if (next == limits.size()) return std::nullopt;
                const std::size_t i = next++;
                return Limit{i, limits[i]};
              })
      .expand<Segment>("split", pixflow::Concurrency(1),
                       [](Limit limit, pixflow::Emitter<Segment>& emit) -> pixflow::Result<void> {
                         // At least one (maybe empty) segment, so every limit reaches the sink.
                         const std::uint64_t n = std::max<std::uint64_t>(1, (limit.value + segment_width - 1) / segment_width);
                         for (std::uint64_t s = 0; s < n; ++s)
                           emit(Segment{limit.index, n, s * segment_width, std::min(limit.value, (s + 1) * segment_width)});
                         return pixflow::ok();
                       })
      .compute("sieve", pixflow::Concurrency::unlimited(),
               [&base](Segment s) -> pixflow::Result<SegmentTally> {
                 return SegmentTally{s.limit_index, s.segments, sieve_segment(s.lo, s.hi, base)};
               })
      .sink("combine", pixflow::Concurrency(1), [&](SegmentTally t) -> pixflow::Result<void> {
        run.tallies[t.limit_index].add(t.tally);
        if (++received[t.limit_index] == t.segments) complete[t.limit_index] = true;
        for (; next_to_print < limits.size() && complete[next_to_print]; ++next_to_print) {
          if (!print) continue;
          const Tally& total = run.tallies[next_to_print];
          std::cout << "primes below " << limits[next_to_print] << ": count " << total.count << ", sum " << total.sum
                    << ", product mod " << modulus << " " << total.product << std::endl;
        }
        return pixflow::ok();
      });
  if (dump_graph) {
    std::cout << graph.dot();
    return run;
  }
  const pixflow::RunReport report = graph.run();
  run.wall_s = report.wall_s;
  run.threads = graph.threads();
  if (const pixflow::NodeReport* sieve = report.node("sieve")) run.sieve_busy_s = sieve->busy_s;
  return run;
}

void print_time(const Run& run) {
  std::printf("time: %.3f s on %zu thread%s (sieve busy %.3f s: %.2f cores on average)\n", run.wall_s, run.threads,
              run.threads == 1 ? "" : "s", run.sieve_busy_s, run.wall_s > 0 ? run.sieve_busy_s / run.wall_s : 0.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // The seeds' limits (50328, 22756, 39371, 44832) times 1000: the seeds' own limits take a sieve
  // microseconds, too little to time.
  std::vector<std::uint64_t> limits{50'328'000, 22'756'000, 39'371'000, 44'832'000};
  std::size_t threads = 0;
  bool compare = false;
  bool dump_graph = false;
  std::string trace;

  CLI::App app{
      "primes — the count, the sum and the product of the primes below each limit, as a pixflow compute graph.\n"
      "The product is printed modulo 1000000007: the true product has millions of digits (the primes below\n"
      "5e7 alone multiply to a number of about 2e7 digits). A segmented sieve splits each limit into\n"
      "segments that a compute node sieves on every core."};
  app.set_version_flag("--version", std::string("primes (pixflow) ") + PIXFLOW_VERSION);
  app.add_option("--limits", limits, "Comma-separated limits; primes p < limit are counted (at most 1e10)")
      ->delimiter(',')
      ->check(CLI::Range(std::uint64_t{0}, max_limit))
      ->capture_default_str();
  auto* threads_option = app.add_option("--threads", threads, "Worker threads (0 = every core)")->capture_default_str();
  app.add_flag("--compare", compare, "Run on 1 thread, then on every thread; print both times and the speed-up")
      ->excludes(threads_option);
  app.add_option("--trace", trace, "Write a Chrome-trace JSON of the run to FILE (chrome://tracing, ui.perfetto.dev)");
  app.add_flag("--dump-graph", dump_graph, "Print the graph as Graphviz DOT and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // --help and --version exit 0; a usage error exits 2, as pixflow does
  }
  if (limits.empty()) {
    std::cerr << "primes: --limits: give at least one limit\n";
    return 2;
  }

  const std::vector<std::uint64_t> base = primes_up_to(isqrt(*std::max_element(limits.begin(), limits.end())));
  if (dump_graph) {
    run_graph(limits, base, threads, false, {}, true);
    return 0;
  }
  if (!compare) {
    const Run run = run_graph(limits, base, threads, true, trace);
    print_time(run);
    return run.failed == 0 ? 0 : 1;
  }
  const Run one = run_graph(limits, base, 1, true);
  print_time(one);
  const Run all = run_graph(limits, base, 0, false);
  print_time(all);
  if (one.failed != 0 || all.failed != 0) return 1;
  if (one.tallies != all.tallies) {
    std::cerr << "primes: the runs disagree\n";
    return 1;
  }
  std::printf("speed-up: %.2fx with %zu threads over 1 thread\n", one.wall_s / all.wall_s, all.threads);
  return 0;
}
