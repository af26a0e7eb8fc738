#pragma once
// The Redis scale-out subcommands of the pixflow CLI (pixflow::queue does the work):
//
//   pixflow enqueue --redis URL --queue NAME gallery [--api URL] [--section S] [--sort S] [--pages N] [--client-id ID]
//   pixflow enqueue --redis URL --queue NAME urls FILE|-
//   pixflow worker  --redis URL --queue NAME --out DIR [--exit-when-empty] [--config C.json] [--threads N]
//                   [--size WxH]... [--format F] [--consumer NAME] [--quiet]
//   pixflow status  --redis URL --queue NAME
//
//   enqueue ─▶ pixflow:<queue>:items (stream) ─▶ worker, worker, ... (consumer group, each a local graph)
//                                                  └─▶ pixflow:<queue>:results (hash) ◀─ status
//
// main() calls add_queue_commands before parsing and run_queue_command right after.
#include <CLI/CLI.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <pixflow/tasks/imgur.hpp>

/// What the queue subcommands parsed (filled by CLI11).
struct QueueCommandState {
  CLI::App* enqueue = nullptr;
  CLI::App* enqueue_gallery = nullptr;
  CLI::App* enqueue_urls = nullptr;
  CLI::App* worker = nullptr;
  CLI::App* status = nullptr;

  std::string redis_url;    ///< --redis (or $PIXFLOW_REDIS)
  std::string queue;        ///< --queue
  std::string config_file;  ///< --config (pipeline keys and /redis)
  pixflow::tasks::GalleryQuery query;  ///< enqueue gallery
  std::string url_file;                ///< enqueue urls
  std::string out;                     ///< worker
  std::vector<std::string> sizes;
  std::string format;
  std::optional<std::size_t> threads;
  std::string consumer;
  bool exit_when_empty = false;
  bool quiet = false;
};

/// Adds the `enqueue`, `worker` and `status` subcommands to `app`, bound to `state`.
void add_queue_commands(CLI::App& app, QueueCommandState& state);

/// Runs the queue subcommand that was parsed and returns its exit code (0 ok, 1 some items failed or
/// stopped, 2 usage/config/bad URL or login refused, 3 Redis or the source unreachable); nullopt when
/// none of them was parsed.
std::optional<int> run_queue_command(const QueueCommandState& state);
