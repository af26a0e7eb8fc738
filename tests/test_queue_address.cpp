// redis:// URLs and queue names (pixflow/queue/address.hpp). No server.
#include <catch2/catch.hpp>

#include <string>

#include <pixflow/queue/address.hpp>

namespace {

using namespace pixflow::queue;

}  // namespace

TEST_CASE("parse_redis_url reads host, port, login and database", "[queue]") {
  auto plain = parse_redis_url("redis://127.0.0.1:6380");
  REQUIRE(plain);
  CHECK(plain->host == "127.0.0.1");
  CHECK(plain->port == 6380);
  CHECK(plain->db == 0);
  CHECK(plain->password.empty());

  auto full = parse_redis_url("redis://alice:p%40ss@cache.example:7000/3");
  REQUIRE(full);
  CHECK(full->host == "cache.example");
  CHECK(full->user == "alice");
  CHECK(full->password == "p@ss");
  CHECK(full->db == 3);
  CHECK(full->to_string() == "redis://alice@cache.example:7000/3");  // never the password

  auto password_only = parse_redis_url("redis://:secret@localhost");
  REQUIRE(password_only);
  CHECK(password_only->user.empty());
  CHECK(password_only->password == "secret");
  CHECK(password_only->port == 6379);

  auto v6 = parse_redis_url("redis://[::1]:6379/1");
  REQUIRE(v6);
  CHECK(v6->host == "::1");

  for (const char* bad : {"http://127.0.0.1:6379", "127.0.0.1:6379", "redis://", "redis://host:0",
                          "redis://host:99999", "redis://host/x", "redis://host/1/2", "redis://host/1?x=y"}) {
    INFO(bad);
    auto parsed = parse_redis_url(bad);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().reason.starts_with("invalid redis url: "));
  }
  CHECK(parse_redis_url("rediss://host").error().reason == "invalid redis url: tls (rediss://) is not supported");
}

TEST_CASE("queue names are plain words", "[queue]") {
  CHECK(valid_queue_name("holiday-2024_v1.2"));
  CHECK_FALSE(valid_queue_name(""));
  CHECK_FALSE(valid_queue_name("a b"));
  CHECK_FALSE(valid_queue_name("a:b"));
  CHECK_FALSE(valid_queue_name(std::string(101, 'a')));
}
