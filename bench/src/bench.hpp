#pragma once
/// @file
/// The three measurements of pixflow-bench; each prints one JSON object on stdout and returns an exit code.
///
/// @code
/// return pixflow::bench::run_floor({.dir = "build/bench-data/set/photos"});
/// @endcode
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace pixflow::bench {

/// The floor: every image of `dir` read into memory first (not timed), then decode_image (shrink on
/// load) + make_thumbnail + encode_image in one thread, no graph, no writes. Prints
/// {"items", "failed", "seconds", "ms_per_item", "jpeg_ms", "png_ms"}; `repeat` passes, the fastest kept.
struct FloorOptions {
  std::filesystem::path dir;
  int box = 128;
  int repeat = 1;
};
int run_floor(const FloorOptions& options);

/// The pipeline's I/O alone: the Imgur listing (pages `window` at a time) and every download through
/// pixflow::tasks::HttpClient with the pipeline's limits (transfers, per host, items alive; its defaults
/// or `config`'s), each body written with write_file_atomically by `writers` threads, as the pipeline's
/// write node, with its durability (Durability::at_end: one sync_output_folder at the end).
/// Prints {"items", "failed", "bytes", "wall_s"}.
struct DownloadOptions {
  std::string api;
  std::string section = "hot";
  std::string client_id = "bench";
  std::filesystem::path out;
  std::filesystem::path config;  ///< a pixflow config file (ca_file, http2, durability, limits); "" = defaults
};
int run_download(const DownloadOptions& options);

/// Items per second with trivial bodies: the chain source → limit → 2 compute → sink on pixflow::Graph,
/// by hand in tbb::flow, and on tbb::parallel_pipeline; the diamond source → limit → broadcast to 2
/// compute → merge → sink on pixflow::Graph and by hand in tbb::flow; the chain with a trace and
/// without, per item. Same tokens and threads everywhere; `repeat` runs of each, alternated, the best
/// kept. Prints {"graph_items_per_s", "flow_items_per_s", "pipeline_items_per_s", "ratio_flow" (graph
/// / flow), "ratio" (graph / parallel_pipeline), "diamond_ratio_flow", "trace_off_ns_per_item",
/// "trace_on_ns_per_item", ...}.
struct EngineOptions {
  std::uint64_t items = 2000000;
  std::size_t threads = 0;
  std::size_t tokens = 64;
  int repeat = 3;
  std::uint64_t trace_items = 20000;  ///< items of the traced runs (each writes ~1.5 KB of JSON per item)
  std::string only;  ///< "graph", "flow", "pipeline", "diamond" or "trace": run just that (for a profiler); "" all
};
int run_engine(const EngineOptions& options);

}  // namespace pixflow::bench
