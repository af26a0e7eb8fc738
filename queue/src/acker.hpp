#pragma once
// The Acker: a worker's second Redis connection, on a thread of its own. It records each finished item
// (HSET result + XACK, one MULTI/EXEC each, pipelined) while the worker's graph goes on, sends the
// worker's heartbeat, and renews the lease of the entries the worker holds (XCLAIM to itself with
// JUSTID resets their idle time, so other workers do not take slow items over). A lost connection is
// retried with backoff, forever: what finished is recorded once Redis is back.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connection.hpp"
#include "layout.hpp"

namespace pixflow::queue::detail {

/// One finished item: its result record (layout.hpp: result_json) and the entries to acknowledge.
struct Finished {
  std::string url;     ///< empty: nothing to record, only acknowledge (an entry that is not an item)
  std::string result;
  std::vector<std::string> ids;
};

class Acker {
 public:
  /// Starts the thread. `tick_s`: how often the heartbeat and the lease renewal go out.
  /// `before_record`, when given, runs before each batch is recorded and acknowledged: the outputs of
  /// what is acknowledged must be on disk first (one sync of OUT per batch, durability "at-end"); false
  /// holds the batch back and tries again after a backoff.
  Acker(const RedisAddress& address, double connect_timeout_s, Keys keys, std::string consumer, double tick_s,
        OutageLog& outage, std::function<bool()> before_record = {});
  ~Acker();
  Acker(const Acker&) = delete;
  Acker& operator=(const Acker&) = delete;

  /// Renews the lease of these entries from now on (until released).
  void hold(const std::vector<std::string>& ids);
  /// Stops renewing these entries' lease.
  void release(const std::vector<std::string>& ids);
  /// Records `item` and acknowledges its entries, soon (the entries are released too). Any thread.
  void finish(Finished item);
  /// Waits until everything finished so far is recorded (however long Redis stays away) and returns
  /// true; false as soon as `stop()` turns true. Throws the fatal error the thread met, if any.
  bool wait_flushed_unless(const std::function<bool()>& stop);
  /// Flushes what is queued and ends the thread.
  void stop();
  /// A non-transient error the thread met (it has stopped then).
  [[nodiscard]] std::optional<QueueError> fatal() const;

 private:
  void loop();
  void record(const std::vector<Finished>& batch);
  void beat(const std::vector<std::string>& held);

  Connection connection_;
  const Keys keys_;
  const std::string consumer_;
  const Clock::duration tick_;
  OutageLog& outage_;
  std::function<bool()> before_record_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, flushed_;
  std::deque<Finished> queue_;
  std::size_t sending_ = 0;
  std::set<std::string> held_;
  bool stop_ = false;
  std::optional<QueueError> fatal_;
  std::thread thread_;  // last: starts once everything above is built
};

}  // namespace pixflow::queue::detail
