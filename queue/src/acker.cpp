// The Acker: results + XACK, heartbeats and lease renewal on a connection and a thread of their own.
// See acker.hpp.
#include "acker.hpp"

#include <iterator>
#include <utility>

namespace pixflow::queue::detail {
namespace {

// KEYS: workers zset. ARGV: worker name. Records a heartbeat at the server's time (ms).
constexpr const char* kHeartbeatScript = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
return now
)lua";

}  // namespace

Acker::Acker(const RedisAddress& address, double connect_timeout_s, Keys keys, std::string consumer, double tick_s,
             OutageLog& outage, std::function<bool()> before_record)
    : connection_(address, connect_timeout_s, 0),
      keys_(std::move(keys)),
      consumer_(std::move(consumer)),
      tick_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(tick_s))),
      outage_(outage),
      before_record_(std::move(before_record)),
      thread_([this] { loop(); }) {}

Acker::~Acker() { stop(); }

void Acker::hold(const std::vector<std::string>& ids) {
  std::lock_guard lock(mutex_);
  held_.insert(ids.begin(), ids.end());
}

void Acker::release(const std::vector<std::string>& ids) {
  std::lock_guard lock(mutex_);
  for (const auto& id : ids) held_.erase(id);
}

void Acker::finish(Finished item) {
  {
    std::lock_guard lock(mutex_);
    for (const auto& id : item.ids) held_.erase(id);
    queue_.push_back(std::move(item));
  }
  wake_.notify_all();
}

bool Acker::wait_flushed_unless(const std::function<bool()>& stop) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (fatal_) throw *fatal_;
    if (queue_.empty() && sending_ == 0) return true;
    if (stop && stop()) return false;
    flushed_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void Acker::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<QueueError> Acker::fatal() const {
  std::lock_guard lock(mutex_);
  return fatal_;
}

void Acker::loop() {
  std::unique_lock lock(mutex_);
  auto next_tick = Clock::now();
  Backoff backoff;
  for (;;) {
    wake_.wait_until(lock, next_tick, [&] { return stop_ || !queue_.empty(); });
    if (stop_ && queue_.empty()) break;
    std::vector<Finished> batch(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    sending_ = batch.size();
    const bool tick_due = Clock::now() >= next_tick;
    std::vector<std::string> held;
    if (tick_due) held.assign(held_.begin(), held_.end());
    lock.unlock();

    bool ok = true;
    try {
      if (!connection_.connected()) connection_.connect();
      // What is acknowledged must be on disk first: one sync for the whole batch.
      if (!batch.empty() && before_record_ && !before_record_()) {
        ok = false;
      } else {
        if (!batch.empty()) record(batch);
        if (tick_due) beat(held);
        outage_.restored();
      }
    } catch (const QueueError& e) {
      ok = false;
      connection_.close();
      if (e.transient()) {
        outage_.lost(e.what());
      } else {
        lock.lock();
        fatal_ = e;
        sending_ = 0;
        flushed_.notify_all();
        break;
      }
    }

    lock.lock();
    sending_ = 0;
    if (ok) {
      backoff.reset();
      if (tick_due) next_tick = Clock::now() + tick_;
      flushed_.notify_all();
    } else {
      // Put the batch back in front, in order, and wait before trying again (even when stopping:
      // what finished must be recorded).
      queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
      const auto delay = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff.next()));
      lock.unlock();
      std::this_thread::sleep_for(delay);
      lock.lock();
      next_tick = Clock::now();
    }
  }
}

void Acker::record(const std::vector<Finished>& batch) {
  std::vector<Args> commands;
  std::vector<std::size_t> execs;
  for (const auto& item : batch) {
    commands.push_back({"MULTI"});
    if (!item.url.empty()) commands.push_back({"HSET", keys_.results, item.url, item.result});
    Args ack{"XACK", keys_.items, kGroup};
    ack.insert(ack.end(), item.ids.begin(), item.ids.end());
    commands.push_back(std::move(ack));
    execs.push_back(commands.size());
    commands.push_back({"EXEC"});
  }
  const auto replies = connection_.pipeline(commands);
  for (const std::size_t i : execs) {
    checked(replies[i], "EXEC (HSET + XACK)");
    if (!replies[i].is_array()) unexpected("EXEC");
    for (const auto& r : replies[i].elements) checked(r, "HSET/XACK");
  }
}

void Acker::beat(const std::vector<std::string>& held) {
  std::vector<Args> commands{{"EVAL", kHeartbeatScript, "1", keys_.workers, consumer_}};
  if (!held.empty()) {
    Args claim{"XCLAIM", keys_.items, kGroup, consumer_, "0"};
    claim.insert(claim.end(), held.begin(), held.end());
    claim.push_back("JUSTID");
    commands.push_back(std::move(claim));
  }
  for (const auto& r : connection_.pipeline(commands)) {
    if (r.error_is("NOGROUP")) continue;  // the group was lost (a Redis without persistence): re-made by the reader
    checked(r, "heartbeat");
  }
}

}  // namespace pixflow::queue::detail
