#pragma once
/// @file
/// The queue's settings (`/redis` of the config file) and a worker's whole config file (the pipeline's
/// keys and `/redis` together: one file serves local runs and workers).
///
/// @code
/// pixflow::queue::WorkerConfig config = pixflow::queue::load_worker_config("worker.json");  // throws ConfigError
/// config.queue.claim_idle_s = 30;
/// std::cout << pixflow::queue::to_json(config.queue).dump() << '\n';   // {"redis": {"claim_idle_s": 30, ...}}
/// @endcode
#include <cstddef>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "pixflow/tasks/config.hpp"

namespace pixflow::queue {

/// `/redis/...` of the config file: how workers use the queue.
/// @code{.json}
/// {"redis": {"claim_idle_s": 60, "batch_size": 16, "connect_timeout_s": 5, "max_deliveries": 5}}
/// @endcode
struct QueueConfig {
  double claim_idle_s = 60;       ///< take over items another worker has held without renewing for this long, > 0
  /// The most entries one XREADGROUP or XAUTOCLAIM takes, 1..100000. A worker reads only what its run
  /// has room for (the pipeline's max_in_flight, which bounds what one worker holds), at most this many
  /// per command; items flow one by one, there are no batches.
  std::size_t batch_size = 16;
  double connect_timeout_s = 5;   ///< connecting to Redis, and each command's own wait beyond its block time, > 0
  std::size_t max_deliveries = 5; ///< an item claimed more often than this (its workers keep dying) fails for good, >= 1
  friend bool operator==(const QueueConfig&, const QueueConfig&) = default;
};

/// Reads `/redis` of a whole config document onto `defaults`, ignoring every other top-level key. Unknown
/// keys under `/redis`, wrong types and out-of-range values throw tasks::ConfigError naming the JSON path
/// ("/redis/batch_size: expected an integer in 1..100000, got 0").
QueueConfig parse_queue_config(const nlohmann::json& document, QueueConfig defaults = {});

/// `{"redis": {...}}` with every key (parse_queue_config(to_json(c)) == c).
nlohmann::json to_json(const QueueConfig& config);

/// The pipeline config and the queue config of one file.
struct WorkerConfig {
  tasks::PipelineConfig pipeline;
  QueueConfig queue;
};

/// Reads a config file holding both the pipeline keys and `/redis` (which tasks::parse_config itself does
/// not know). Throws tasks::ConfigError with the file named, as tasks::load_config does.
WorkerConfig load_worker_config(const std::filesystem::path& file);

}  // namespace pixflow::queue
