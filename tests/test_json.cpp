// Tests for pixflow/tasks/json.hpp: one bounded JSON reader for the config, the listings and the Redis
// results. Caps on size and depth, exactly one value (no trailing data, no NUL), and errors with offsets.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstddef>
#include <fstream>
#include <string>
#include <thread>

#include "pixflow/tasks/json.hpp"
#include "support.hpp"

using pixflow::tasks::describe_bytes;
using pixflow::tasks::JsonLimits;
using pixflow::tasks::parse_json;
using pixflow::tasks::read_json_file;

namespace {

/// parse_json's error text for `text` ("" when it parses).
std::string error_of(const std::string& text, const JsonLimits& limits = {}) {
  const auto result = parse_json(text, limits);
  return result ? std::string() : result.error().what();
}

}  // namespace

TEST_CASE("parse_json: one value, the whole text", "[json]") {
  const auto doc = parse_json(" {\"a\": [1, 2.5, \"x\", null, true]}\n");
  REQUIRE(doc);
  CHECK(doc->at("a").size() == 5);
  CHECK(error_of("") == "syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal at byte 0");
  CHECK(error_of("{} {}") == "unexpected data after the JSON value at byte 3");
  CHECK(error_of("1 2") == "unexpected data after the JSON value at byte 2");
  CHECK(error_of(std::string("{}\0garbage", 10)) == "unexpected NUL byte at byte 2");
  CHECK(error_of(std::string("[1,\0]", 5)) == "unexpected NUL byte at byte 3");
  CHECK(error_of("{} // comment") == "unexpected data after the JSON value at byte 3");
  CHECK(error_of("[1e400]") == "number overflow parsing '1e400' at byte 6");
}

TEST_CASE("parse_json: nesting is capped, at the byte that opens one level too many", "[json]") {
  const std::string deep(100'000, '[');
  CHECK(error_of(deep) == "too deeply nested (more than 64 levels) at byte 64");
  CHECK(error_of(deep + std::string(100'000, ']')) == "too deeply nested (more than 64 levels) at byte 64");
  CHECK(error_of(std::string(64, '[') + std::string(64, ']')).empty());
  CHECK(error_of(R"({"a":{"b":[{"c":1}]}})", {.max_bytes = 0, .max_depth = 3}) ==
        "too deeply nested (more than 3 levels) at byte 11");
  CHECK(error_of(R"({"a":{"b":[]}})", {.max_bytes = 0, .max_depth = 3}).empty());
  const auto where = parse_json("{\n  \"a\": [[[1]]]\n}", {.max_bytes = 0, .max_depth = 2});
  REQUIRE_FALSE(where);
  CHECK(where.error().offset == 10u);
  CHECK(where.error().line == 2);
  CHECK(where.error().column == 9);
}

TEST_CASE("parse_json: the size cap", "[json]") {
  CHECK(error_of("[1]", {.max_bytes = 3, .max_depth = 64}).empty());
  CHECK(error_of("[1] ", {.max_bytes = 3, .max_depth = 64}) == "too large (more than 3 bytes)");
  CHECK(error_of(std::string(5000, ' ') + "1", {.max_bytes = 0, .max_depth = 64}).empty());  // 0: no cap
  CHECK(describe_bytes(1u << 20) == "1 MiB");
  CHECK(describe_bytes(64u << 10) == "64 KiB");
  CHECK(describe_bytes(1000) == "1000 bytes");
  CHECK(describe_bytes(1) == "1 byte");
}

TEST_CASE("read_json_file: files, pipes and devices, never more than the cap", "[json]") {
  pixflow::test::TempDir dir;
  {
    std::ofstream(dir / "a.json") << R"({"x": 1})";
  }
  const auto good = read_json_file(dir / "a.json");
  REQUIRE(good);
  CHECK(good->at("x") == 1);
  CHECK(read_json_file(dir / "absent.json").error().what() == "cannot read: No such file or directory");
  CHECK(read_json_file(dir.path()).error().what() == "cannot read: Is a directory");
  CHECK(read_json_file("/dev/zero").error().what() == "too large (more than 1 MiB)");
  CHECK(read_json_file("/dev/zero", {.max_bytes = 10, .max_depth = 64}).error().what() == "too large (more than 10 bytes)");
  CHECK(read_json_file("/dev/null").error().what() ==
        "syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal at byte 0");

  const auto fifo = dir / "pipe";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::string big = "[";  // more than one pipe buffer (built in steps: GCC 12 warns on "[" + string + "1]")
  big.append(200'000, ' ');
  big += "1]";
  std::thread writer([&] { std::ofstream(fifo) << big; });
  const auto piped = read_json_file(fifo);
  writer.join();
  REQUIRE(piped);
  CHECK(piped->at(0) == 1);
}
