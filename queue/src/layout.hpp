#pragma once
// How a queue is laid out in Redis, shared by enqueue/status, the worker and the acker: its keys, the
// consumer group, a stream entry (one item), and a result record (the results hash's values).
//
//   pixflow:<q>:items    stream, one entry per item {url, index}; consumer group "workers"
//   pixflow:<q>:urls     set of every URL queued (an item is queued once)
//   pixflow:<q>:results  hash url → {"status", "stage", "reason", "worker", "outputs", "index"}
//   pixflow:<q>:workers  sorted set worker → last heartbeat (server ms)
#include <cstdint>
#include <string>
#include <vector>

#include "connection.hpp"
#include "pixflow/tasks/report.hpp"

namespace pixflow::queue::detail {

inline constexpr const char* kGroup = "workers";

struct Keys {
  std::string items, urls, results, workers;
  explicit Keys(const std::string& queue)
      : items("pixflow:" + queue + ":items"),
        urls("pixflow:" + queue + ":urls"),
        results("pixflow:" + queue + ":results"),
        workers("pixflow:" + queue + ":workers") {}
};

/// Creates the consumer group (and the stream) unless it exists.
void ensure_group(Connection& c, const Keys& keys);

/// A stream entry: one item to process.
struct Entry {
  std::string id;
  std::string url;  ///< empty: not an item (deleted from the stream, or no url field)
  std::uint64_t index = 0;
};

/// Parses [[id, [field, value, ...]], ...] (a reply of XREADGROUP or XAUTOCLAIM); entries deleted from
/// the stream (nil fields) are returned with an empty url.
std::vector<Entry> parse_entries(const Reply& list, const std::string& what);

/// The results hash's value for a finished item: {"status", "stage", "reason", "worker", "outputs", "index"}.
std::string result_json(const tasks::ItemReport& item, const std::string& worker, std::uint64_t index);

}  // namespace pixflow::queue::detail
