// One blocking hiredis connection, its replies and errors, and the outage log and backoff that ride out
// a Redis that went away. See connection.hpp.
#include "connection.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <charconv>
#include <cmath>
#include <thread>
#include <utility>

namespace pixflow::queue::detail {
namespace {

constexpr double kOutageRepeatS = 30;  // while Redis stays away, one log line this often

Reply::Type type_of(int type) {
  switch (type) {
    case REDIS_REPLY_STRING: return Reply::Type::string;
    case REDIS_REPLY_ARRAY: return Reply::Type::array;
    case REDIS_REPLY_INTEGER: return Reply::Type::integer;
    case REDIS_REPLY_NIL: return Reply::Type::nil;
    case REDIS_REPLY_STATUS: return Reply::Type::status;
    case REDIS_REPLY_ERROR: return Reply::Type::error;
    default: return Reply::Type::other;
  }
}

Reply copy_reply(const redisReply* r) {
  Reply out;
  out.type = type_of(r->type);
  out.integer = r->integer;
  if (r->str != nullptr) out.str.assign(r->str, r->len);
  out.elements.reserve(r->elements);
  for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
  return out;
}

timeval to_timeval(double seconds) {
  const auto us = static_cast<long long>(std::llround(seconds * 1e6));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return tv;
}

long seconds_since(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration<double>(Clock::now() - t).count() + 0.5);
}

}  // namespace

// --- replies -------------------------------------------------------------------------------------

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

void unexpected(const std::string& what) {
  throw QueueError(QueueError::Kind::protocol, "unexpected reply to " + what + " (is this Redis 6.2 or later?)");
}

std::uint64_t to_u64(std::string_view text) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) return 0;
  return n;
}

std::size_t to_size(long long n) { return n > 0 ? static_cast<std::size_t>(n) : 0; }

// --- one connection ------------------------------------------------------------------------------

void Connection::ContextDeleter::operator()(redisContext* c) const { redisFree(c); }

Connection::Connection(RedisAddress address, double connect_timeout_s, double command_wait_s)
    : address_(std::move(address)), connect_timeout_s_(connect_timeout_s), command_wait_s_(command_wait_s) {}

Connection::~Connection() = default;

void Connection::connect() {
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

void Connection::close() { ctx_.reset(); }

std::vector<Reply> Connection::pipeline(const std::vector<Args>& commands) {
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
    replies.push_back(copy_reply(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return replies;
}

void Connection::io_failed() {
  std::string why = ctx_ && ctx_->errstr[0] != '\0' ? ctx_->errstr : "connection lost";
  if (why == "Resource temporarily unavailable") why = "timed out";
  close();
  throw QueueError(QueueError::Kind::unreachable, "redis connection to " + address_.to_string() + " lost: " + why);
}

// --- outages -------------------------------------------------------------------------------------

void OutageLog::lost(const std::string& why) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (!down_) {
    down_ = true;
    // The other connection finding its socket dead right after an outage ended: the same outage.
    quiet_ = restored_at_ && now - *restored_at_ < std::chrono::seconds(5);
    since_ = last_line_ = now;
    if (quiet_) return;
    ++outages_;
    say(why + "; retrying with backoff");
  } else if (now - last_line_ >= std::chrono::duration<double>(kOutageRepeatS)) {
    last_line_ = now;
    say("redis still unreachable after " + std::to_string(seconds_since(since_)) + " s: " + why);
  }
}

void OutageLog::restored() {
  std::lock_guard lock(mutex_);
  if (!down_) return;
  down_ = false;
  restored_at_ = Clock::now();
  if (!quiet_) say("redis reachable again after " + std::to_string(seconds_since(since_)) + " s");
}

std::size_t OutageLog::outages() const {
  std::lock_guard lock(mutex_);
  return outages_;
}

void OutageLog::say(const std::string& line) const {
  if (log_) log_(line);
}

bool sleep_unless(double seconds, const std::function<bool()>& stop) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    if (stop && stop()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace pixflow::queue::detail
