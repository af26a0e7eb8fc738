// pixflow-bench: the C++ measurements of the benchmark (bench/run.py runs them; see bench/README in
// bench/RESULTS.md). One subcommand per measurement, each printing one JSON object on one line.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "bench.hpp"

int main(int argc, char** argv) {
  CLI::App app{"pixflow-bench: the floor, download-only and engine-overhead measurements"};
  app.require_subcommand(1);

  pixflow::bench::FloorOptions floor;
  auto* floor_cmd = app.add_subcommand("floor", "decode + thumbnail + encode, in memory, one thread, no graph");
  floor_cmd->add_option("dir", floor.dir, "folder of images")->required();
  floor_cmd->add_option("--box", floor.box, "thumbnail box side (default 128)");
  floor_cmd->add_option("--repeat", floor.repeat, "passes, the fastest is reported (default 1)");

  pixflow::bench::DownloadOptions download;
  auto* download_cmd = app.add_subcommand("download", "the pipeline's listing + downloads + writes, no decode");
  download_cmd->add_option("--api", download.api, "API base URL")->required();
  download_cmd->add_option("--section", download.section, "gallery section (default hot)");
  download_cmd->add_option("--client-id", download.client_id, "Client-ID header value");
  download_cmd->add_option("--out", download.out, "output folder")->required();
  download_cmd->add_option("--config", download.config, "pixflow config file (limits, ca_file, http2, durability)");

  pixflow::bench::EngineOptions engine;
  auto* engine_cmd = app.add_subcommand("engine", "items/s: pixflow::Graph vs hand-wired tbb::flow and tbb::parallel_pipeline");
  engine_cmd->add_option("--items", engine.items, "items per run (default 2000000)");
  engine_cmd->add_option("--threads", engine.threads, "worker threads (0 = every core)");
  engine_cmd->add_option("--tokens", engine.tokens, "items in flight (default 64, the pipeline's max_in_flight)");
  engine_cmd->add_option("--repeat", engine.repeat, "runs of each, alternated; the best is reported (default 3)");
  engine_cmd->add_option("--trace-items", engine.trace_items, "items of the traced and untraced runs (default 20000)");
  engine_cmd->add_option("--only", engine.only, "run only one measurement (for a profiler)")
      ->check(CLI::IsMember({"graph", "flow", "pipeline", "diamond", "trace"}));

  CLI11_PARSE(app, argc, argv);
  try {
    if (*floor_cmd) return pixflow::bench::run_floor(floor);
    if (*download_cmd) return pixflow::bench::run_download(download);
    return pixflow::bench::run_engine(engine);
  } catch (const std::exception& e) {
    std::cerr << "pixflow-bench: " << e.what() << '\n';
    return 1;
  }
}
