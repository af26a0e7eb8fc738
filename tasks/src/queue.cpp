// Redis Streams scale-out on hiredis (blocking API, one connection per thread): enqueue, status, and the
// worker loop — claim/read a batch, run it through run_pipeline, record + XACK each item as it finishes.
#include "pixflow/tasks/queue.hpp"

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>
#include <utility>

#include "pixflow/engine/cancel.hpp"
#include "pixflow/engine/executor.hpp"
#include "pixflow/tasks/http.hpp"
#include "pixflow/tasks/json.hpp"

namespace pixflow::tasks {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Args = std::vector<std::string>;

constexpr const char* kGroup = "workers";
constexpr std::size_t kMaxBatch = 100'000;
constexpr std::size_t kMaxQueueName = 100;
constexpr double kAliveWindowS = 5;         // a worker counts as alive this long after its heartbeat
constexpr double kOutageRepeatS = 30;       // while Redis stays away, one log line this often
constexpr int kLocalWriteAttempts = 3;      // a write failure is retried by the same worker this often

// --- keys --------------------------------------------------------------------------------------

struct Keys {
  std::string items, urls, results, workers;
  explicit Keys(const std::string& queue)
      : items("pixflow:" + queue + ":items"),
        urls("pixflow:" + queue + ":urls"),
        results("pixflow:" + queue + ":results"),
        workers("pixflow:" + queue + ":workers") {}
};

// --- replies -----------------------------------------------------------------------------------

/// A reply copied out of hiredis (so no redisReply outlives its command).
struct Reply {
  int type = REDIS_REPLY_NIL;
  std::string str;
  long long integer = 0;
  std::vector<Reply> elements;

  [[nodiscard]] bool is_error() const { return type == REDIS_REPLY_ERROR; }
  [[nodiscard]] bool is_nil() const { return type == REDIS_REPLY_NIL; }
  [[nodiscard]] bool is_array() const { return type == REDIS_REPLY_ARRAY; }
  [[nodiscard]] bool is_text() const { return type == REDIS_REPLY_STRING || type == REDIS_REPLY_STATUS; }
  [[nodiscard]] bool error_is(std::string_view code) const {
    return is_error() && std::string_view(str).substr(0, code.size()) == code;
  }
};

Reply copy_reply(const redisReply* r) {
  Reply out;
  out.type = r->type;
  out.integer = r->integer;
  if (r->str != nullptr) out.str.assign(r->str, r->len);
  out.elements.reserve(r->elements);
  for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
  return out;
}

/// The QueueError an error reply stands for: the login refused, Redis busy (retry), or anything else.
QueueError error_of(const Reply& reply, const std::string& what) {
  for (std::string_view code : {"NOAUTH", "WRONGPASS", "NOPERM"})
    if (reply.error_is(code)) return QueueError(QueueError::Kind::rejected, "redis refused " + what + ": " + reply.str);
  for (std::string_view code : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})
    if (reply.error_is(code)) return QueueError(QueueError::Kind::unreachable, "redis is busy (" + what + "): " + reply.str);
  return QueueError(QueueError::Kind::protocol, "redis " + what + ": " + reply.str);
}

Reply checked(Reply reply, const std::string& what) {
  if (reply.is_error()) throw error_of(reply, what);
  return reply;
}

[[noreturn]] void unexpected(const std::string& what) {
  throw QueueError(QueueError::Kind::protocol, "unexpected reply to " + what + " (is this Redis 6.2 or later?)");
}

std::uint64_t to_u64(std::string_view text) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) return 0;
  return n;
}

std::size_t to_size(long long n) { return n > 0 ? static_cast<std::size_t>(n) : 0; }

timeval to_timeval(double seconds) {
  const auto us = static_cast<long long>(std::llround(seconds * 1e6));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return tv;
}

// --- one connection ----------------------------------------------------------------------------

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};

/// A blocking hiredis connection with AUTH/SELECT on connect. Any I/O error closes it and throws
/// QueueError(unreachable); error replies are returned as replies.
class Connection {
 public:
  /// `command_wait_s`: the longest a command may block in Redis (BLOCK), added to the socket timeout.
  Connection(RedisAddress address, double connect_timeout_s, double command_wait_s)
      : address_(std::move(address)), connect_timeout_s_(connect_timeout_s), command_wait_s_(command_wait_s) {}

  [[nodiscard]] bool connected() const { return ctx_ != nullptr; }
  [[nodiscard]] const RedisAddress& address() const { return address_; }

  void connect() {
    close();
    redisContext* c = redisConnectWithTimeout(address_.host.c_str(), address_.port, to_timeval(connect_timeout_s_));
    if (c == nullptr) throw QueueError(QueueError::Kind::unreachable, "cannot connect to " + address_.to_string() + ": out of memory");
    if (c->err != 0) {
      const std::string why = c->errstr;
      redisFree(c);
      throw QueueError(QueueError::Kind::unreachable, "cannot connect to " + address_.to_string() + ": " + why);
    }
    ctx_.reset(c);
    redisSetTimeout(c, to_timeval(connect_timeout_s_ + command_wait_s_));
    redisEnableKeepAlive(c);
    try {
      if (!address_.password.empty()) {
        Reply r = address_.user.empty() ? command({"AUTH", address_.password})
                                         : command({"AUTH", address_.user, address_.password});
        if (r.is_error()) throw QueueError(QueueError::Kind::rejected, "redis refused the login to " + address_.to_string() + ": " + r.str);
      }
      if (address_.db != 0) {
        Reply r = command({"SELECT", std::to_string(address_.db)});
        if (r.is_error()) throw QueueError(QueueError::Kind::rejected, "redis refused database " + std::to_string(address_.db) + ": " + r.str);
      }
      Reply pong = command({"PING"});
      if (pong.is_error()) {
        QueueError e = error_of(pong, "PING");
        throw QueueError(e.kind() == QueueError::Kind::protocol ? QueueError::Kind::rejected : e.kind(),
                         std::string(e.what()) + " (" + address_.to_string() + ")");
      }
    } catch (...) {
      close();
      throw;
    }
  }

  void close() { ctx_.reset(); }

  Reply command(const Args& args) { return pipeline({args}).front(); }

  /// Sends every command, then reads every reply.
  std::vector<Reply> pipeline(const std::vector<Args>& commands) {
    if (!ctx_) throw QueueError(QueueError::Kind::unreachable, "not connected to " + address_.to_string());
    for (const Args& args : commands) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lengths;
      for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
      }
      if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()) != REDIS_OK)
        io_failed();
    }
    std::vector<Reply> replies;
    replies.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_.get(), &raw) != REDIS_OK || raw == nullptr) io_failed();
      const auto* reply = static_cast<redisReply*>(raw);
      replies.push_back(copy_reply(reply));
      freeReplyObject(raw);
    }
    return replies;
  }

 private:
  [[noreturn]] void io_failed() {
    std::string why = ctx_ && ctx_->errstr[0] != '\0' ? ctx_->errstr : "connection lost";
    if (why == "Resource temporarily unavailable") why = "timed out";
    close();
    throw QueueError(QueueError::Kind::unreachable, "redis connection to " + address_.to_string() + " lost: " + why);
  }

  RedisAddress address_;
  double connect_timeout_s_;
  double command_wait_s_;
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
};

/// Creates the consumer group (and the stream) unless it exists.
void ensure_group(Connection& c, const Keys& keys) {
  Reply r = c.command({"XGROUP", "CREATE", keys.items, kGroup, "0", "MKSTREAM"});
  if (r.is_error() && !r.error_is("BUSYGROUP")) throw error_of(r, "XGROUP CREATE");
}

// --- outages and backoff -------------------------------------------------------------------------

/// Bounded logging of Redis outages, shared by a worker's connections: one line when it starts, one
/// every 30 s while it lasts, one when it ends.
class OutageLog {
 public:
  explicit OutageLog(std::function<void(const std::string&)> log) : log_(std::move(log)) {}

  void lost(const std::string& why) {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (!down_) {
      down_ = true;
      // The other connection finding its socket dead right after an outage ended: the same outage.
      quiet_ = restored_at_ && now - *restored_at_ < std::chrono::seconds(5);
      since_ = last_line_ = now;
      if (quiet_) return;
      ++outages_;
      say(std::string(why) + "; retrying with backoff");
    } else if (now - last_line_ >= std::chrono::duration<double>(kOutageRepeatS)) {
      last_line_ = now;
      say("redis still unreachable after " + std::to_string(seconds_since(since_)) + " s: " + why);
    }
  }
  void restored() {
    std::lock_guard lock(mutex_);
    if (!down_) return;
    down_ = false;
    restored_at_ = Clock::now();
    if (!quiet_) say("redis reachable again after " + std::to_string(seconds_since(since_)) + " s");
  }
  [[nodiscard]] std::size_t outages() const {
    std::lock_guard lock(mutex_);
    return outages_;
  }

 private:
  static long seconds_since(Clock::time_point t) {
    return static_cast<long>(std::chrono::duration<double>(Clock::now() - t).count() + 0.5);
  }
  void say(const std::string& line) const {
    if (log_) log_(line);
  }

  std::function<void(const std::string&)> log_;
  mutable std::mutex mutex_;
  bool down_ = false;
  bool quiet_ = false;
  std::optional<Clock::time_point> restored_at_;
  std::size_t outages_ = 0;
  Clock::time_point since_, last_line_;
};

/// 0.1 s doubling to 5 s.
class Backoff {
 public:
  double next() {
    const double d = delay_;
    delay_ = std::min(delay_ * 2, 5.0);
    return d;
  }
  void reset() { delay_ = 0.1; }

 private:
  double delay_ = 0.1;
};

/// Sleeps `seconds` in short slices; returns false early when `stop()` turns true.
bool sleep_unless(double seconds, const std::function<bool()>& stop) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    if (stop && stop()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

/// Runs `f` on `c`, reconnecting with backoff while Redis is unreachable; nullopt when `stop()` turned
/// true meanwhile. Non-transient errors propagate.
template <class F>
auto with_retry(Connection& c, OutageLog& outage, const std::function<bool()>& stop, F&& f)
    -> std::optional<decltype(f())> {
  Backoff backoff;
  for (;;) {
    try {
      if (!c.connected()) c.connect();
      auto result = f();
      outage.restored();
      return result;
    } catch (const QueueError& e) {
      if (!e.transient()) throw;
      c.close();
      outage.lost(e.what());
    }
    if (!sleep_unless(backoff.next(), stop)) return std::nullopt;
  }
}

// --- scripts -------------------------------------------------------------------------------------

// KEYS: urls set, items stream, results hash. ARGV: url, skipped-result JSON ('' to queue the url).
// Returns the item's index, or -1 when the URL was queued before.
constexpr const char* kEnqueueScript = R"lua(
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return -1 end
local index = redis.call('SCARD', KEYS[1]) - 1
if ARGV[2] ~= '' then
  local result = cjson.decode(ARGV[2])
  result['index'] = index
  redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(result))
else
  redis.call('XADD', KEYS[2], '*', 'url', ARGV[1], 'index', tostring(index))
end
return index
)lua";

// KEYS: workers zset. ARGV: worker name. Records a heartbeat at the server's time (ms).
constexpr const char* kHeartbeatScript = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
return now
)lua";

// KEYS: workers zset. ARGV: window (ms). Workers seen within the window.
constexpr const char* kAliveScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
)lua";

// --- config --------------------------------------------------------------------------------------

using pointer = json::json_pointer;

[[noreturn]] void config_fail(const pointer& at, const std::string& expected, const json& value) {
  std::string shown = value.dump();
  if (shown.size() > 60) shown = shown.substr(0, 60) + "...";
  throw ConfigError(at.to_string(), "expected " + expected + ", got " + shown);
}

double read_seconds(const json& value, const pointer& at) {
  const std::string expected = "a number > 0 and <= " + std::to_string(static_cast<long long>(kMaxSeconds));
  if (!value.is_number()) config_fail(at, expected, value);
  const double s = value.get<double>();
  if (!std::isfinite(s) || s <= 0 || s > kMaxSeconds) config_fail(at, expected, value);
  return s;
}

std::size_t read_count(const json& value, const pointer& at, std::size_t max) {
  const std::string expected = "an integer in 1.." + std::to_string(max);
  if (!value.is_number_integer()) config_fail(at, expected, value);  // booleans and floats too
  if (!value.is_number_unsigned() && value.get<std::int64_t>() < 1) config_fail(at, expected, value);
  const auto n = value.get<std::uint64_t>();
  if (n < 1 || n > max) config_fail(at, expected, value);
  return static_cast<std::size_t>(n);
}

// --- the worker ----------------------------------------------------------------------------------

/// A stream entry: one item to process.
struct Entry {
  std::string id;
  std::string url;
  std::uint64_t index = 0;
};

/// Parses [[id, [field, value, ...]], ...]; entries deleted from the stream (nil fields) are returned
/// with an empty url.
std::vector<Entry> parse_entries(const Reply& list, const std::string& what) {
  if (list.is_nil()) return {};
  if (!list.is_array()) unexpected(what);
  std::vector<Entry> entries;
  for (const Reply& e : list.elements) {
    if (e.is_nil()) continue;  // Redis 6.2: an entry deleted while pending
    if (!e.is_array() || e.elements.size() != 2 || !e.elements[0].is_text()) unexpected(what);
    Entry entry;
    entry.id = e.elements[0].str;
    const Reply& fields = e.elements[1];
    for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      if (fields.elements[i].str == "url") entry.url = fields.elements[i + 1].str;
      if (fields.elements[i].str == "index") entry.index = to_u64(fields.elements[i + 1].str);
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::string result_json(const ItemReport& item, const std::string& worker, std::uint64_t index) {
  json r = {{"status", name_of(item.status)}, {"stage", item.stage}, {"reason", item.reason},
            {"worker", worker}, {"outputs", item.outputs}, {"index", index}};
  return r.dump();
}

/// One finished item: its result and the entries to acknowledge.
struct Finished {
  std::string url;
  std::string result;
  std::vector<std::string> ids;
};

/// The worker's second connection, on its own thread: records results + XACKs them as items finish
/// (the main thread is inside run_pipeline meanwhile), sends heartbeats, and renews the lease of the
/// entries the worker holds (XCLAIM to itself with JUSTID resets their idle time), reconnecting as needed.
class Acker {
 public:
  Acker(const RedisAddress& address, double connect_timeout_s, const Keys& keys, std::string consumer,
        double tick_s, OutageLog& outage)
      : connection_(address, connect_timeout_s, 0), keys_(keys), consumer_(std::move(consumer)),
        tick_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(tick_s))), outage_(outage),
        thread_([this] { loop(); }) {}
  ~Acker() { stop(); }
  Acker(const Acker&) = delete;
  Acker& operator=(const Acker&) = delete;

  /// The entries whose lease to renew from now on.
  void hold(std::vector<std::string> ids) {
    std::lock_guard lock(mutex_);
    held_ = std::move(ids);
  }
  void finish(Finished item) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(item));
    }
    wake_.notify_all();
  }
  /// Waits until everything finished so far is recorded (however long Redis stays away), or a fatal error.
  void wait_flushed() {
    std::unique_lock lock(mutex_);
    flushed_.wait(lock, [&] { return (queue_.empty() && sending_ == 0) || fatal_; });
    if (fatal_) throw *fatal_;
  }
  /// Flushes what is queued and ends the thread.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::optional<QueueError> fatal() const {
    std::lock_guard lock(mutex_);
    return fatal_;
  }

 private:
  void loop() {
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
      const std::vector<std::string> held = held_;
      lock.unlock();

      bool ok = true;
      try {
        if (!connection_.connected()) connection_.connect();
        if (!batch.empty()) record(batch);
        if (tick_due) beat(held);
        outage_.restored();
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

  /// HSET result + XACK, one MULTI/EXEC per item, all pipelined.
  void record(const std::vector<Finished>& batch) {
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

  void beat(const std::vector<std::string>& held) {
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

  Connection connection_;
  const Keys& keys_;
  const std::string consumer_;
  const Clock::duration tick_;
  OutageLog& outage_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, flushed_;
  std::deque<Finished> queue_;
  std::size_t sending_ = 0;
  std::vector<std::string> held_;
  bool stop_ = false;
  std::optional<QueueError> fatal_;
  std::thread thread_;  // last: starts once everything above is built
};

std::string default_consumer() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "worker");
  return std::string(host) + "-" + std::to_string(getpid());
}

class Worker {
 public:
  explicit Worker(const WorkerOptions& options)
      : options_(options),
        keys_(options.queue),
        consumer_(options.consumer.empty() ? default_consumer() : options.consumer),
        claim_idle_ms_(static_cast<long long>(std::llround(options.queue_config.claim_idle_s * 1000))),
        block_ms_(std::clamp<long long>(claim_idle_ms_ / 2, 100, 1000)),
        outage_(options.log),
        main_(options.redis, options.queue_config.connect_timeout_s, static_cast<double>(block_ms_) / 1000.0) {
    if (!valid_queue_name(options.queue)) throw std::invalid_argument("invalid queue name: \"" + options.queue + "\"");
    if (options.queue_config.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
    if (claim_idle_ms_ < 1) claim_idle_ms_ = 1;
    report_.consumer = consumer_;
  }

  WorkerReport run() {
    const auto start = Clock::now();
    // Held shared for the worker's whole life: other workers may share OUT, a local run may not.
    auto output = OutputLock::acquire(options_.pipeline.out, OutputLock::Mode::shared);
    if (!output) throw OutputFolderError(output.error().reason);
    main_.connect();  // the first connection must work: a wrong address fails fast
    ensure_group(main_, keys_);
    const double tick_s = std::clamp(options_.queue_config.claim_idle_s / 3, 0.05, 1.0);
    Acker acker(options_.redis, options_.queue_config.connect_timeout_s, keys_, consumer_, tick_s, outage_);
    say("worker " + consumer_ + " joined queue " + options_.queue + " on " + options_.redis.to_string());
    try {
      loop(acker);
    } catch (...) {
      acker.stop();
      throw;
    }
    acker.stop();
    if (auto fatal = acker.fatal()) throw *fatal;
    leave();
    report_.outages = outage_.outages();
    report_.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    return report_;
  }

 private:
  bool stopping() const { return pixflow::interrupt_requested(); }

  void say(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  template <class F>
  auto retry(F&& f) {
    return with_retry(main_, outage_, [this] { return stopping(); }, std::forward<F>(f));
  }

  void loop(Acker& acker) {
    while (!stopping()) {
      if (auto fatal = acker.fatal()) throw *fatal;
      std::vector<Entry> batch = std::move(retry_);
      retry_.clear();
      const std::size_t size = options_.queue_config.batch_size;
      if (batch.size() < size) {
        auto claimed = retry([&] { return claim(size - batch.size(), acker); });
        if (!claimed) break;
        std::move(claimed->begin(), claimed->end(), std::back_inserter(batch));
      }
      if (batch.size() < size) {
        auto fresh = retry([&] { return read_new(size - batch.size(), false); });
        if (!fresh) break;
        std::move(fresh->begin(), fresh->end(), std::back_inserter(batch));
      }
      if (batch.empty()) {
        if (options_.exit_when_empty) {
          auto held = retry([&] { return held_by_group(); });
          if (!held || *held == 0) break;  // nothing new, nothing held by anyone: done
        }
        // Wait a little for new entries (the loop comes back to claim stale ones meanwhile).
        auto fresh = retry([&] { return read_new(size, true); });
        if (!fresh) break;
        batch = std::move(*fresh);
        if (batch.empty()) continue;
      }
      process(std::move(batch), acker);
    }
    report_.interrupted = stopping();
  }

  /// XAUTOCLAIM: entries idle for claim_idle_s (their worker died or lost its connection for that long).
  std::vector<Entry> claim(std::size_t count, Acker& acker) {
    Reply r = main_.command({"XAUTOCLAIM", keys_.items, kGroup, consumer_, std::to_string(claim_idle_ms_),
                             claim_cursor_, "COUNT", std::to_string(count)});
    if (r.error_is("NOGROUP")) {
      ensure_group(main_, keys_);
      return {};
    }
    checked(r, "XAUTOCLAIM");
    if (!r.is_array() || r.elements.size() < 2 || !r.elements[0].is_text()) unexpected("XAUTOCLAIM");
    claim_cursor_ = r.elements[0].str;
    std::vector<Entry> entries = parse_entries(r.elements[1], "XAUTOCLAIM");
    if (entries.empty()) return entries;
    // Entries claimed too often: the workers that took them keep dying. Fail them for good.
    std::vector<Args> queries;
    for (const auto& e : entries) queries.push_back({"XPENDING", keys_.items, kGroup, e.id, e.id, "1"});
    std::map<std::string, std::uint64_t> deliveries;
    for (const Reply& reply : main_.pipeline(queries)) {
      checked(reply, "XPENDING");
      for (const Reply& p : reply.elements)
        if (p.is_array() && p.elements.size() == 4) deliveries[p.elements[0].str] = to_size(p.elements[3].integer);
    }
    std::vector<Entry> keep;
    for (auto& e : entries) {
      const auto it = deliveries.find(e.id);
      const std::uint64_t n = it == deliveries.end() ? 1 : it->second;
      if (!e.url.empty() && n > options_.queue_config.max_deliveries) {
        ItemReport item;
        item.input = e.url;
        item.status = ItemStatus::failed;
        item.stage = "queue";
        item.reason = "gave up after " + std::to_string(n) + " deliveries (its workers died or stopped)";
        record_failure_now(e, item, acker);
        continue;
      }
      keep.push_back(std::move(e));
    }
    report_.reclaimed += keep.size();
    if (!keep.empty()) say("claimed " + std::to_string(keep.size()) + " item(s) left by another worker");
    return keep;
  }

  void record_failure_now(const Entry& e, const ItemReport& item, Acker& acker) {
    acker.finish({e.url, result_json(item, consumer_, e.index), {e.id}});
    ++report_.items;
    ++report_.failed;
  }

  /// XREADGROUP: entries never delivered. Blocks a short while when the batch is empty so far.
  std::vector<Entry> read_new(std::size_t count, bool block) {
    Args args{"XREADGROUP", "GROUP", kGroup, consumer_, "COUNT", std::to_string(count)};
    if (block) {
      args.push_back("BLOCK");
      args.push_back(std::to_string(block_ms_));
    }
    args.insert(args.end(), {"STREAMS", keys_.items, ">"});
    Reply r = main_.command(args);
    if (r.error_is("NOGROUP")) {
      ensure_group(main_, keys_);
      return {};
    }
    checked(r, "XREADGROUP");
    if (r.is_nil()) return {};
    if (!r.is_array() || r.elements.empty() || !r.elements[0].is_array() || r.elements[0].elements.size() != 2)
      unexpected("XREADGROUP");
    return parse_entries(r.elements[0].elements[1], "XREADGROUP");
  }

  /// Entries delivered to any consumer and not acknowledged.
  std::size_t held_by_group() {
    Reply r = main_.command({"XPENDING", keys_.items, kGroup});
    if (r.error_is("NOGROUP")) return 0;
    checked(r, "XPENDING");
    if (!r.is_array() || r.elements.empty()) unexpected("XPENDING");
    return to_size(r.elements[0].integer);
  }

  void process(std::vector<Entry> batch, Acker& acker) {
    ++report_.batches;
    std::map<std::string, std::vector<Entry>> by_url;
    std::vector<std::string> urls, ids;
    for (auto& e : batch) {
      if (e.url.empty()) {  // not an item (no url field): acknowledge it, nothing to do
        acker.finish({"", "", {e.id}});
        continue;
      }
      ids.push_back(e.id);
      auto& slot = by_url[e.url];
      if (slot.empty()) urls.push_back(e.url);
      slot.push_back(std::move(e));
    }
    acker.hold(ids);

    std::mutex mutex;
    std::vector<ItemReport> failures;
    auto finish = [&](const ItemReport& item) {
      const auto& entries = by_url.at(item.input);
      std::vector<std::string> entry_ids;
      for (const auto& e : entries) entry_ids.push_back(e.id);
      acker.finish({item.input, result_json(item, consumer_, entries.front().index), std::move(entry_ids)});
      ++report_.items;
      if (item.status == ItemStatus::ok) ++report_.ok;
      if (item.status == ItemStatus::skipped) ++report_.skipped;
      if (item.status == ItemStatus::failed) ++report_.failed;
    };

    PipelineOptions options = options_.pipeline;
    if (options.executor == nullptr) options.executor = &executor_;  // one set of threads for every batch
    options.output_lock = OutputLock::Mode::shared;
    options.on_item = [&](const ItemReport& item) {
      if (by_url.count(item.input) != 0) {
        std::lock_guard lock(mutex);
        if (item.status == ItemStatus::failed)
          failures.push_back(item);  // decided once the run is over: a cancelled run's failures are not final
        else
          finish(item);
      }
      if (options_.pipeline.on_item) options_.pipeline.on_item(item);
    };
    const PipelineReport report = run_pipeline(UrlListSource{urls}, options);

    std::lock_guard lock(mutex);
    for (const auto& item : failures) {
      if (report.run.cancelled && (item.reason == report.run.cancel_reason || item.reason == "cancelled")) {
        // Not the item's fault: it stays pending, handed back when the worker leaves.
        for (const auto& e : by_url.at(item.input)) released_.push_back(e.id);
        continue;
      }
      if (item.reason.starts_with("cannot write")) {
        // A problem of this machine's disk, not of the item: try again here, then give up.
        bool again = false;
        for (const auto& e : by_url.at(item.input))
          if (++write_attempts_[e.id] < kLocalWriteAttempts) {
            retry_.push_back(e);
            again = true;
          }
        if (again) continue;
      }
      finish(item);
    }
    std::vector<std::string> still_held;
    for (const auto& e : retry_) still_held.push_back(e.id);
    acker.hold(std::move(still_held));
    acker.wait_flushed();
  }

  /// A clean exit: no heartbeat any more, and the consumer leaves the group if it holds nothing.
  void leave() {
    try {
      if (!main_.connected()) main_.connect();
      main_.command({"ZREM", keys_.workers, consumer_});
      for (const auto& e : retry_) released_.push_back(e.id);
      if (!released_.empty()) {
        // Hand the unfinished items back: made look idle for a year, any worker's XAUTOCLAIM takes them now.
        Args back{"XCLAIM", keys_.items, kGroup, consumer_, "0"};
        back.insert(back.end(), released_.begin(), released_.end());
        back.insert(back.end(), {"IDLE", "31536000000", "JUSTID"});
        checked(main_.command(back), "XCLAIM (hand back)");
        say("handed " + std::to_string(released_.size()) + " unfinished item(s) back to the queue");
      }
      Reply mine = main_.command({"XPENDING", keys_.items, kGroup, "-", "+", "1", consumer_});
      if (mine.is_array() && mine.elements.empty()) main_.command({"XGROUP", "DELCONSUMER", keys_.items, kGroup, consumer_});
    } catch (const QueueError&) {
      // Best effort: a stale consumer only shows in `status` until it is cleaned up.
    }
  }

  const WorkerOptions& options_;
  const Keys keys_;
  const std::string consumer_;
  long long claim_idle_ms_;
  const long long block_ms_;
  OutageLog outage_;
  Connection main_;
  std::string claim_cursor_ = "0-0";
  std::vector<Entry> retry_;
  std::vector<std::string> released_;  // entries of a cancelled run, handed back on leaving
  std::map<std::string, int> write_attempts_;
  WorkerReport report_;
  pixflow::Executor executor_{options_.pipeline.config.threads};
};

}  // namespace

// --- address -------------------------------------------------------------------------------------

std::string RedisAddress::to_string() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string text = "redis://";
  if (!user.empty()) text += user + "@";
  text += ipv6 ? "[" + host + "]" : host;
  return text + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Expected<RedisAddress> parse_redis_url(std::string_view url) {
  const auto bad = [](const std::string& why) { return Error{"invalid redis url: " + why}; };
  const std::string text(url);
  if (text.starts_with("rediss://")) return bad("tls (rediss://) is not supported");
  if (!text.starts_with("redis://")) return bad("expected redis://[[user]:password@]host[:port][/db], got \"" + text + "\"");
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), &curl_url_cleanup);
  if (!u) return bad("out of memory");
  if (curl_url_set(u.get(), CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    return bad("cannot parse \"" + text + "\"");
  const auto part = [&](CURLUPart which, unsigned flags) -> std::optional<std::string> {
    char* value = nullptr;
    if (curl_url_get(u.get(), which, &value, flags) != CURLUE_OK || value == nullptr) return std::nullopt;
    std::string s(value);
    curl_free(value);
    return s;
  };
  RedisAddress address;
  auto host = part(CURLUPART_HOST, 0);
  if (!host || host->empty()) return bad("no host in \"" + text + "\"");
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  address.host = *host;
  if (auto port = part(CURLUPART_PORT, 0)) {
    const std::uint64_t p = to_u64(*port);
    if (p < 1 || p > 65535) return bad("bad port " + *port);
    address.port = static_cast<int>(p);
  }
  address.user = part(CURLUPART_USER, CURLU_URLDECODE).value_or("");
  address.password = part(CURLUPART_PASSWORD, CURLU_URLDECODE).value_or("");
  if (part(CURLUPART_QUERY, 0) || part(CURLUPART_FRAGMENT, 0)) return bad("unexpected query or fragment in \"" + text + "\"");
  const std::string path = part(CURLUPART_PATH, 0).value_or("/");
  if (path != "/" && !path.empty()) {
    const std::string db = path.substr(1);
    const bool digits = !db.empty() && db.size() <= 5 && std::all_of(db.begin(), db.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) return bad("bad database number \"" + db + "\"");
    address.db = static_cast<int>(to_u64(db));
  }
  return address;
}

bool valid_queue_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxQueueName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

// --- config --------------------------------------------------------------------------------------

QueueConfig parse_queue_config(const nlohmann::json& document, QueueConfig defaults) {
  QueueConfig config = defaults;
  if (!document.is_object() || !document.contains("redis")) return config;
  const pointer at("/redis");
  const json& redis = document.at("redis");
  if (!redis.is_object()) config_fail(at, "an object", redis);
  for (const auto& [key, value] : redis.items()) {
    const pointer here = at / key;
    if (key == "claim_idle_s")
      config.claim_idle_s = read_seconds(value, here);
    else if (key == "batch_size")
      config.batch_size = read_count(value, here, kMaxBatch);
    else if (key == "connect_timeout_s")
      config.connect_timeout_s = read_seconds(value, here);
    else if (key == "max_deliveries")
      config.max_deliveries = read_count(value, here, 1'000'000);
    else
      throw ConfigError(here.to_string(), "unknown key");
  }
  return config;
}

nlohmann::json to_json(const QueueConfig& c) {
  return {{"redis",
           {{"claim_idle_s", c.claim_idle_s}, {"batch_size", c.batch_size},
            {"connect_timeout_s", c.connect_timeout_s}, {"max_deliveries", c.max_deliveries}}}};
}

WorkerConfig load_worker_config(const std::filesystem::path& file) {
  // The same bounded read as load_config (at most 1 MiB, 64 levels, exactly one value), errors in its words.
  JsonResult document = read_json_file(file);
  if (!document) throw config_file_error(file, document.error());
  WorkerConfig config;
  try {
    config.queue = parse_queue_config(*document);
    if (document->is_object()) document->erase("redis");
    config.pipeline = parse_config(*document);
  } catch (const ConfigError& e) {
    throw ConfigError(file, e.path(), e.message());
  }
  return config;
}

// --- status ---------------------------------------------------------------------------------------

namespace {

/// A string member of a result object; "" when absent, not a string, or the result is no object.
std::string text_field(const json& result, const char* key) {
  if (!result.is_object()) return {};
  const auto it = result.find(key);
  return it != result.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// The result's "index" (an unsigned integer); 0 when absent or of another type.
std::uint64_t index_field(const json& result) {
  if (!result.is_object()) return 0;
  const auto it = result.find("index");
  return it != result.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

}  // namespace

nlohmann::ordered_json to_json(const QueueStatus& s) {
  using ojson = nlohmann::ordered_json;
  ojson failures = ojson::array();
  for (const auto& f : s.failures)
    failures.push_back({{"url", f.url}, {"stage", f.stage}, {"reason", f.reason}, {"worker", f.worker}});
  ojson consumers = ojson::array();
  for (const auto& c : s.consumers)
    consumers.push_back({{"name", c.name}, {"holding", c.holding}, {"idle_s", std::round(c.idle_s * 10) / 10}});
  ojson out = ojson::object();
  out["total"] = s.total;
  out["done"] = s.done;
  out["failed"] = s.failed;
  out["pending"] = s.pending;
  out["workers"] = s.workers;
  out["skipped"] = s.skipped;
  out["in_progress"] = s.in_progress;
  out["failures"] = std::move(failures);
  out["consumers"] = std::move(consumers);
  return out;
}

nlohmann::ordered_json to_json(const WorkerReport& r) {
  return nlohmann::ordered_json{{"worker", r.consumer},   {"items", r.items},     {"ok", r.ok},           {"failed", r.failed},
          {"skipped", r.skipped},   {"reclaimed", r.reclaimed}, {"batches", r.batches}, {"outages", r.outages},
          {"wall_s", std::round(r.wall_s * 1000) / 1000}, {"interrupted", r.interrupted}};
}

struct WorkQueue::Impl {
  Impl(RedisAddress address, std::string queue, double connect_timeout_s)
      : name(std::move(queue)), keys(name), connection(std::move(address), connect_timeout_s, 0) {}
  std::string name;
  Keys keys;
  Connection connection;
};

WorkQueue::WorkQueue(RedisAddress address, std::string name, double connect_timeout_s) {
  if (!valid_queue_name(name)) throw std::invalid_argument("invalid queue name: \"" + name + "\" (use 1..100 of A-Z a-z 0-9 . _ -)");
  impl_ = std::make_unique<Impl>(std::move(address), std::move(name), connect_timeout_s);
  impl_->connection.connect();
}
WorkQueue::~WorkQueue() = default;
WorkQueue::WorkQueue(WorkQueue&&) noexcept = default;
WorkQueue& WorkQueue::operator=(WorkQueue&&) noexcept = default;

const std::string& WorkQueue::name() const noexcept { return impl_->name; }

EnqueueResult WorkQueue::enqueue(const std::vector<std::string>& urls, const std::vector<ItemReport>& skipped) {
  Connection& c = impl_->connection;
  const Keys& k = impl_->keys;
  if (!c.connected()) c.connect();
  ensure_group(c, k);
  EnqueueResult result;
  std::vector<Args> commands;
  std::vector<bool> is_skip;
  const auto flush = [&] {
    const auto replies = c.pipeline(commands);
    for (std::size_t i = 0; i < replies.size(); ++i) {
      const Reply& r = checked(replies[i], "EVAL (enqueue)");
      if (r.type != REDIS_REPLY_INTEGER) unexpected("EVAL (enqueue)");
      if (r.integer < 0)
        ++result.already_queued;
      else if (is_skip[i])
        ++result.skipped;
      else
        ++result.queued;
    }
    commands.clear();
    is_skip.clear();
  };
  const auto add = [&](const std::string& url, std::string skip_result) {
    commands.push_back({"EVAL", kEnqueueScript, "3", k.urls, k.items, k.results, url, std::move(skip_result)});
    is_skip.push_back(!commands.back().back().empty());
    if (commands.size() >= 1000) flush();
  };
  for (const auto& item : skipped) {
    json r = {{"status", name_of(ItemStatus::skipped)}, {"stage", item.stage}, {"reason", item.reason}, {"worker", ""}};
    add(item.input, r.dump());
  }
  for (const auto& url : urls) add(url, "");
  flush();
  return result;
}

QueueStatus WorkQueue::status() {
  Connection& c = impl_->connection;
  const Keys& k = impl_->keys;
  if (!c.connected()) c.connect();
  QueueStatus s;
  const auto head = c.pipeline({{"SCARD", k.urls},
                                {"XPENDING", k.items, kGroup},
                                {"EVAL", kAliveScript, "1", k.workers, std::to_string(static_cast<long long>(kAliveWindowS * 1000))},
                                {"XINFO", "CONSUMERS", k.items, kGroup}});
  s.total = to_size(checked(head[0], "SCARD").integer);
  if (!head[1].is_error() && head[1].is_array() && !head[1].elements.empty()) s.in_progress = to_size(head[1].elements[0].integer);
  s.workers = to_size(checked(head[2], "EVAL (workers)").integer);
  if (!head[3].is_error() && head[3].is_array()) {  // an error: no stream or no group yet
    for (const Reply& consumer : head[3].elements) {
      ConsumerInfo info;
      for (std::size_t i = 0; i + 1 < consumer.elements.size(); i += 2) {
        const std::string& key = consumer.elements[i].str;
        const Reply& value = consumer.elements[i + 1];
        if (key == "name") info.name = value.str;
        if (key == "pending") info.holding = to_size(value.integer);
        if (key == "idle") info.idle_s = static_cast<double>(value.integer) / 1000.0;
      }
      s.consumers.push_back(std::move(info));
    }
  }

  std::string cursor = "0";
  do {
    const Reply r = checked(c.command({"HSCAN", k.results, cursor, "COUNT", "1000"}), "HSCAN");
    if (!r.is_array() || r.elements.size() != 2) unexpected("HSCAN");
    cursor = r.elements[0].str;
    const auto& pairs = r.elements[1].elements;
    for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
      // Written by workers, but read back from a shared server: bounded (64 levels; Redis caps the size)
      // and read field by field, so a foreign value counts as pending rather than crashing `status`.
      const JsonResult parsed = parse_json(pairs[i + 1].str, {.max_bytes = 0, .max_depth = kJsonMaxDepth});
      const json result = parsed ? *parsed : json();
      const std::string status = text_field(result, "status");
      if (status == "ok" || status == "skipped") {
        ++s.done;
        if (status == "skipped") ++s.skipped;
      } else if (status == "failed") {
        ++s.failed;
        s.failures.push_back({pairs[i].str, text_field(result, "stage"), text_field(result, "reason"),
                              text_field(result, "worker"), index_field(result)});
      }
    }
  } while (cursor != "0");
  std::sort(s.failures.begin(), s.failures.end(),
            [](const QueueFailure& a, const QueueFailure& b) { return std::tie(a.index, a.url) < std::tie(b.index, b.url); });
  s.pending = s.total > s.done + s.failed ? s.total - s.done - s.failed : 0;
  return s;
}

WorkerReport run_worker(const WorkerOptions& options) {
  Worker worker(options);
  return worker.run();
}

}  // namespace pixflow::tasks
