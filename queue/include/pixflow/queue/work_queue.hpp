#pragma once
/// @file
/// WorkQueue: one queue of image URLs on Redis Streams — enqueue them, read the queue's status.
/// Workers (worker.hpp) take the items; `pixflow enqueue` / `pixflow status` are this class.
///
/// `enqueue` adds one stream entry per URL to `pixflow:<queue>:items` (a URL already queued is not added
/// again). Workers record each item's result in the hash `pixflow:<queue>:results` (url → JSON).
/// Keys of queue `q`: `pixflow:q:items` (stream, consumer group `workers`), `pixflow:q:urls` (set of every
/// URL queued), `pixflow:q:results` (hash), `pixflow:q:workers` (sorted set: worker → last heartbeat).
///
/// @code
/// using namespace pixflow::queue;
/// auto address = parse_redis_url("redis://127.0.0.1:6379/0");
/// if (!address) throw std::invalid_argument(address.error().reason);
/// WorkQueue queue(*address, "holiday");                            // throws QueueError when unreachable
/// queue.enqueue({"https://example.com/a.jpg", "https://example.com/b.jpg"});
/// std::cout << to_json(queue.status()).dump(2) << '\n';             // {"total": 2, "done": 0, ...}
/// @endcode
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pixflow/queue/address.hpp"
#include "pixflow/queue/error.hpp"
#include "pixflow/tasks/report.hpp"

namespace pixflow::queue {

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
  EnqueueResult enqueue(const std::vector<std::string>& urls, const std::vector<tasks::ItemReport>& skipped = {});
  /// Reads the counts, the failures and the consumers. Throws QueueError.
  QueueStatus status();
  /// The queue's name.
  [[nodiscard]] const std::string& name() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pixflow::queue
