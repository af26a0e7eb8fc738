#pragma once
/// @file
/// Scale-out over Redis Streams (hiredis): one queue of image URLs, many workers on one machine or many.
///
/// `enqueue` adds one stream entry per URL to `pixflow:<queue>:items` (a URL already queued is not added
/// again). Workers join the consumer group `workers`, claim entries a dead worker left pending for longer
/// than `claim_idle_s` (XAUTOCLAIM), read new ones (XREADGROUP), run each batch through run_pipeline, and
/// for each item record its result in the hash `pixflow:<queue>:results` (url → JSON) and XACK it in one
/// MULTI/EXEC — only once its outputs are written or it failed for good. Delivery is at least once: an
/// item may be processed twice (a worker that died after writing), and its outputs are then written
/// again, atomically, under the same names. A live worker renews the lease of the items it holds, so
/// slow items are not taken from it. A Redis that goes away makes a worker retry with backoff.
///
/// Keys of queue `q`: `pixflow:q:items` (stream), `pixflow:q:urls` (set of every URL queued),
/// `pixflow:q:results` (hash), `pixflow:q:workers` (sorted set: worker → last heartbeat, server ms).
///
/// @code
/// using namespace pixflow::tasks;
/// auto address = parse_redis_url("redis://127.0.0.1:6379/0");
/// if (!address) throw std::invalid_argument(address.error().reason);
/// WorkQueue queue(*address, "holiday");                           // throws QueueError when unreachable
/// queue.enqueue({"https://example.com/a.jpg", "https://example.com/b.jpg"});
///
/// WorkerOptions worker{.redis = *address, .queue = "holiday", .consumer = "host-1", .exit_when_empty = true};
/// worker.pipeline.out = "thumbs";
/// WorkerReport done = run_worker(worker);                          // on each machine
/// std::cout << to_json(queue.status()).dump(2) << '\n';            // {"total": 2, "done": 2, ...}
/// @endcode
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pixflow/tasks/config.hpp"
#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/pipeline.hpp"
#include "pixflow/tasks/report.hpp"

namespace pixflow::tasks {

/// Where a Redis server is and how to log in.
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;      ///< ACL user; empty: AUTH with the password only (the default user)
  std::string password;  ///< empty: no AUTH
  int db = 0;            ///< SELECTed after connecting

  /// "redis://host:port/db", with the user but never the password (for messages).
  [[nodiscard]] std::string to_string() const;
};

/// Parses "redis://[[user]:password@]host[:port][/db]" (user and password percent-decoded, port 6379 and
/// db 0 by default) with libcurl's URL API. Errors: "invalid redis url: <why>", e.g. "expected
/// redis://host[:port][/db]", "tls (rediss://) is not supported", "bad database number".
Expected<RedisAddress> parse_redis_url(std::string_view url);

/// True for a usable queue name: 1..100 characters among [A-Za-z0-9._-].
bool valid_queue_name(std::string_view name);

/// `/redis/...` of the config file: how workers use the queue.
/// @code{.json}
/// {"redis": {"claim_idle_s": 60, "batch_size": 16, "connect_timeout_s": 5, "max_deliveries": 5}}
/// @endcode
struct QueueConfig {
  double claim_idle_s = 60;       ///< take over items another worker has held without renewing for this long, > 0
  std::size_t batch_size = 16;    ///< items read and run through one pipeline run at a time, 1..100000
  double connect_timeout_s = 5;   ///< connecting to Redis, and each command's own wait beyond its block time, > 0
  std::size_t max_deliveries = 5; ///< an item claimed more often than this (its workers keep dying) fails for good, >= 1
  friend bool operator==(const QueueConfig&, const QueueConfig&) = default;
};

/// Reads `/redis` of a whole config document onto `defaults`, ignoring every other top-level key. Unknown
/// keys under `/redis`, wrong types and out-of-range values throw ConfigError naming the JSON path
/// ("/redis/batch_size: expected an integer in 1..100000, got 0").
QueueConfig parse_queue_config(const nlohmann::json& document, QueueConfig defaults = {});

/// `{"redis": {...}}` with every key (parse_queue_config(to_json(c)) == c).
nlohmann::json to_json(const QueueConfig& config);

/// The pipeline config and the queue config of one file.
struct WorkerConfig {
  PipelineConfig pipeline;
  QueueConfig queue;
};

/// Reads a config file holding both the pipeline keys and `/redis` (which parse_config itself does not
/// know). Throws ConfigError with the file named, as load_config does.
WorkerConfig load_worker_config(const std::filesystem::path& file);

/// A Redis problem that is not about one item.
class QueueError : public std::runtime_error {
 public:
  enum class Kind {
    unreachable,  ///< cannot connect, connection lost, timed out, server loading or busy: retry later
    rejected,     ///< authentication or permission refused (AUTH, NOAUTH, WRONGPASS, NOPERM, SELECT)
    protocol,     ///< an unexpected reply or an error reply (wrong Redis version, wrong key type)
  };
  QueueError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  /// True for Kind::unreachable: the same command may work after reconnecting.
  [[nodiscard]] bool transient() const noexcept { return kind_ == Kind::unreachable; }

 private:
  Kind kind_;
};

/// What enqueue did.
struct EnqueueResult {
  std::size_t queued = 0;          ///< new entries added to the stream
  std::size_t already_queued = 0;  ///< URLs the queue already had (not added again)
  std::size_t skipped = 0;         ///< items recorded as skipped at once (not images, per the listing)
};

/// A failed item as recorded by the worker that gave up on it.
struct QueueFailure {
  std::string url;
  std::string stage;
  std::string reason;
  std::string worker;
  std::uint64_t index = 0;  ///< the item's place in the queue (order of enqueueing)
};

/// A consumer of the group, alive or not.
struct ConsumerInfo {
  std::string name;
  std::size_t holding = 0;  ///< entries delivered to it and not acknowledged
  double idle_s = 0;        ///< since its last read or claim
};

/// The state of a queue. done + failed + pending == total.
struct QueueStatus {
  std::size_t total = 0;        ///< distinct URLs ever queued
  std::size_t done = 0;         ///< finished ok, or skipped (counted in `skipped` too)
  std::size_t skipped = 0;
  std::size_t failed = 0;       ///< failed for good, with a reason
  std::size_t pending = 0;      ///< not finished yet (waiting or in progress)
  std::size_t in_progress = 0;  ///< delivered to a worker and not acknowledged
  std::size_t workers = 0;      ///< workers that sent a heartbeat in the last 5 s
  std::vector<QueueFailure> failures;   ///< in queue order
  std::vector<ConsumerInfo> consumers;  ///< every consumer the group knows
};

/// {"total", "done", "failed", "pending", "workers", "skipped", "in_progress",
///  "failures": [{"url", "stage", "reason", "worker"}], "consumers": [{"name", "holding", "idle_s"}]}
nlohmann::ordered_json to_json(const QueueStatus& status);

/// One queue on one Redis connection: enqueue and status (workers use run_worker). Not thread-safe.
class WorkQueue {
 public:
  /// Connects (AUTH and SELECT as the address says). Throws std::invalid_argument for a bad queue name,
  /// QueueError when Redis is unreachable (Kind::unreachable) or refuses the login (Kind::rejected).
  WorkQueue(RedisAddress address, std::string name, double connect_timeout_s = 5);
  ~WorkQueue();
  WorkQueue(WorkQueue&&) noexcept;
  WorkQueue& operator=(WorkQueue&&) noexcept;

  /// Adds each URL not queued before as one stream entry (fields `url` and `index`, its place in the
  /// queue), and records each `skipped` item's result at once; creates the consumer group if needed.
  /// Atomic per URL (a Lua script), pipelined. Throws QueueError.
  EnqueueResult enqueue(const std::vector<std::string>& urls, const std::vector<ItemReport>& skipped = {});
  /// Reads the counts, the failures and the consumers. Throws QueueError.
  QueueStatus status();
  /// The queue's name.
  [[nodiscard]] const std::string& name() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What one worker does.
struct WorkerOptions {
  RedisAddress redis;
  std::string queue;
  QueueConfig queue_config;
  /// The local pipeline: config, out folder, save_originals, stop_on_interrupt. on_item is called too,
  /// after the worker's own bookkeeping.
  PipelineOptions pipeline;
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
  std::size_t batches = 0;
  std::size_t outages = 0;    ///< times the Redis connection was lost and had to be re-established
  double wall_s = 0;
  bool interrupted = false;   ///< stopped by Ctrl-C/SIGTERM (held items stay pending for others)
};

/// {"worker", "items", "ok", "failed", "skipped", "reclaimed", "batches", "outages", "wall_s", "interrupted"}
nlohmann::ordered_json to_json(const WorkerReport& report);

/// Runs a worker until interrupted (pixflow::interrupt_requested()) or, with exit_when_empty, until the
/// queue has nothing waiting or held. Lost connections are retried with backoff (0.1 s doubling to 5 s),
/// forever. Throws QueueError when the first connection fails or Redis refuses the login or answers
/// unexpectedly, std::invalid_argument for a bad queue name, and what run_pipeline throws (the output
/// folder cannot be created); items it held then stay pending and are claimed by other workers.
WorkerReport run_worker(const WorkerOptions& options);

}  // namespace pixflow::tasks
