#pragma once
/// @file
/// Where a Redis server is (`redis://[[user]:password@]host[:port][/db]`), and what a queue may be called.
///
/// @code
/// auto address = pixflow::queue::parse_redis_url("redis://:secret@cache.local:6380/2");
/// if (!address) throw std::invalid_argument(address.error().reason);   // "invalid redis url: ..."
/// std::cout << address->to_string() << '\n';                             // redis://cache.local:6380/2
/// bool ok = pixflow::queue::valid_queue_name("holiday-2024");            // true
/// @endcode
#include <string>
#include <string_view>

#include "pixflow/tasks/expected.hpp"

namespace pixflow::queue {

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
tasks::Expected<RedisAddress> parse_redis_url(std::string_view url);

/// True for a usable queue name: 1..100 characters among [A-Za-z0-9._-].
bool valid_queue_name(std::string_view name);

}  // namespace pixflow::queue
