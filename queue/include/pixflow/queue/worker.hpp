#pragma once
/// @file
/// run_worker: one worker of a queue (work_queue.hpp) — takes items from the Redis stream and runs them
/// through the local image pipeline, on one machine or many.
///
/// A worker is one long-lived run_pipeline whose source is the stream (tasks::StreamSource): it joins
/// the consumer group `workers`, claims entries a dead worker left pending for longer than
/// `claim_idle_s` (XAUTOCLAIM), reads new ones (XREADGROUP) whenever the run has room — it holds at most
/// the pipeline's `max_in_flight` items, read at most `batch_size` per command — and pushes them one by
/// one, so items flow without batch boundaries. For each finished item it records the result in
/// `pixflow:<queue>:results` and XACKs it in one MULTI/EXEC — only once its outputs are written or it
/// failed for good. Delivery is at least once: an item may be processed twice (a worker that died
/// after writing), and its outputs are then written again, atomically, under the same names. A live
/// worker renews the lease of the items it holds, so slow items are not taken from it. A write that
/// fails ("cannot write: ...") is tried again by the same worker, 3 times in all. A Redis that goes
/// away makes a worker retry with backoff.
///
/// @code
/// using namespace pixflow::queue;
/// WorkerOptions worker{.redis = *parse_redis_url("redis://127.0.0.1:6379"), .queue = "holiday",
///                      .consumer = "host-1", .exit_when_empty = true};
/// worker.pipeline.out = "thumbs";
/// WorkerReport done = run_worker(worker);                          // on each machine
/// std::cout << to_json(done).dump() << '\n';                       // {"worker": "host-1", "items": 2, ...}
/// @endcode
#include <cstddef>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "pixflow/queue/address.hpp"
#include "pixflow/queue/config.hpp"
#include "pixflow/queue/error.hpp"
#include "pixflow/tasks/pipeline.hpp"

namespace pixflow::queue {

/// What one worker does.
struct WorkerOptions {
  RedisAddress redis;
  std::string queue;
  QueueConfig queue_config;
  /// The local pipeline: config (max_in_flight: the most items this worker holds; timeout_s: the worker
  /// stops after that long), out folder, save_originals, stop_on_interrupt, stop (a stop request ends
  /// the worker like an interrupt). on_item is called too, after the worker's own bookkeeping.
  tasks::PipelineOptions pipeline;
  std::string consumer;          ///< this worker's name in the group; empty: "<hostname>-<pid>"
  bool exit_when_empty = false;  ///< return once no item is waiting or held by any worker
  /// Progress and outage lines ("redis connection lost (...); retrying"), bounded: one line when an
  /// outage starts, one every 30 s while it lasts, one when it ends. Empty: silent.
  std::function<void(const std::string&)> log;
};

/// What one worker did.
struct WorkerReport {
  std::string consumer;
  std::size_t items = 0;      ///< results recorded by this worker
  std::size_t ok = 0;
  std::size_t failed = 0;
  std::size_t skipped = 0;
  std::size_t reclaimed = 0;  ///< items taken over from another worker (XAUTOCLAIM)
  std::size_t outages = 0;    ///< times the Redis connection was lost and had to be re-established
  double wall_s = 0;
  bool interrupted = false;   ///< stopped by Ctrl-C/SIGTERM, `pipeline.stop` or timeout_s (held items handed back)
};

/// {"worker", "items", "ok", "failed", "skipped", "reclaimed", "outages", "wall_s", "interrupted"}
nlohmann::ordered_json to_json(const WorkerReport& report);

/// Runs a worker until interrupted (pixflow::interrupt_requested(), or `pipeline.stop`) or, with
/// exit_when_empty, until the queue has nothing waiting or held; what it holds then (items cancelled by
/// the stop included) is handed back to the queue at once. Lost connections are retried with backoff (0.1 s doubling to 5 s),
/// forever. Throws QueueError when the first connection fails or Redis refuses the login or answers
/// unexpectedly, std::invalid_argument for a bad queue name, and what run_pipeline throws (the output
/// folder cannot be created); items it held then stay pending and are claimed by other workers.
WorkerReport run_worker(const WorkerOptions& options);

}  // namespace pixflow::queue
