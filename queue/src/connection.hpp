#pragma once
// One blocking hiredis connection (Connection, Reply), what its errors mean (error_of, checked), and
// how a lost connection is ridden out: OutageLog (bounded log lines), Backoff, with_retry.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pixflow/queue/address.hpp"
#include "pixflow/queue/error.hpp"

struct redisContext;
struct redisReply;

namespace pixflow::queue::detail {

using Clock = std::chrono::steady_clock;
using Args = std::vector<std::string>;

/// A reply copied out of hiredis (so no redisReply outlives its command).
struct Reply {
  enum class Type { string, array, integer, nil, status, error, other };
  Type type = Type::nil;
  std::string str;
  long long integer = 0;
  std::vector<Reply> elements;

  [[nodiscard]] bool is_error() const { return type == Type::error; }
  [[nodiscard]] bool is_nil() const { return type == Type::nil; }
  [[nodiscard]] bool is_array() const { return type == Type::array; }
  [[nodiscard]] bool is_integer() const { return type == Type::integer; }
  [[nodiscard]] bool is_text() const { return type == Type::string || type == Type::status; }
  [[nodiscard]] bool error_is(std::string_view code) const {
    return is_error() && std::string_view(str).substr(0, code.size()) == code;
  }
};

/// The QueueError an error reply stands for: the login refused, Redis busy (retry), or anything else.
QueueError error_of(const Reply& reply, const std::string& what);
/// `reply`, or the QueueError it stands for when it is an error reply.
Reply checked(Reply reply, const std::string& what);
/// A reply of the wrong shape: QueueError(protocol).
[[noreturn]] void unexpected(const std::string& what);

/// Digits only, else 0.
std::uint64_t to_u64(std::string_view text);
/// Negative counts as 0.
std::size_t to_size(long long n);

/// A blocking hiredis connection with AUTH/SELECT on connect. Any I/O error closes it and throws
/// QueueError(unreachable); error replies are returned as replies. One thread at a time.
class Connection {
 public:
  /// `command_wait_s`: the longest a command may block in Redis (BLOCK), added to the socket timeout.
  Connection(RedisAddress address, double connect_timeout_s, double command_wait_s);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  [[nodiscard]] bool connected() const { return ctx_ != nullptr; }
  [[nodiscard]] const RedisAddress& address() const { return address_; }

  /// (Re)connects: AUTH and SELECT as the address says, then PING. Throws QueueError.
  void connect();
  void close();

  Reply command(const Args& args) { return pipeline({args}).front(); }
  /// Sends every command, then reads every reply.
  std::vector<Reply> pipeline(const std::vector<Args>& commands);

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  [[noreturn]] void io_failed();

  RedisAddress address_;
  double connect_timeout_s_;
  double command_wait_s_;
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
};

/// Bounded logging of Redis outages, shared by a worker's connections: one line when it starts, one
/// every 30 s while it lasts, one when it ends. Thread-safe.
class OutageLog {
 public:
  explicit OutageLog(std::function<void(const std::string&)> log) : log_(std::move(log)) {}

  void lost(const std::string& why);
  void restored();
  [[nodiscard]] std::size_t outages() const;

 private:
  void say(const std::string& line) const;

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
    delay_ = delay_ * 2 < 5.0 ? delay_ * 2 : 5.0;
    return d;
  }
  void reset() { delay_ = 0.1; }

 private:
  double delay_ = 0.1;
};

/// Sleeps `seconds` in short slices; returns false early when `stop()` turns true.
bool sleep_unless(double seconds, const std::function<bool()>& stop);

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

}  // namespace pixflow::queue::detail
