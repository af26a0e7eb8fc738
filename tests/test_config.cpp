// Tests for pixflow/tasks/config.hpp: defaults, merging, every kind of bad value named by its JSON
// path, the to_json round trip, and loading real files (syntax errors with line and column).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <string>
#include <thread>

#include "pixflow/tasks/config.hpp"
#include "support.hpp"

using pixflow::Concurrency;
using pixflow::tasks::ConfigError;
using pixflow::tasks::ImageFormat;
using pixflow::tasks::load_config;
using pixflow::tasks::parse_config;
using pixflow::tasks::PipelineConfig;
using pixflow::tasks::Size;
using pixflow::tasks::to_json;
using json = nlohmann::json;

namespace {

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

}  // namespace

TEST_CASE("an empty document gives the documented defaults", "[config]") {
  const PipelineConfig c = parse_config(json::object());
  CHECK(c.threads == 0);
  CHECK(c.max_in_flight == 64);
  CHECK(c.timeout_s == 0.0);
  CHECK(c.fetch_concurrency == Concurrency(2));
  CHECK(c.download.concurrency == Concurrency(32));
  CHECK(c.download.per_host == 32);
  CHECK(c.download.connect_timeout_s == 10.0);
  CHECK(c.download.timeout_s == 120.0);
  CHECK(c.download.header_timeout_s == 30.0);
  CHECK(c.download.stall_timeout_s == 30.0);
  CHECK(c.download.min_speed_bytes_s == 1024);
  CHECK(c.download.max_bytes == 64u * 1024 * 1024);
  CHECK(c.download.max_redirects == 5);
  CHECK(c.download.retries == 3);
  CHECK(c.download.backoff_s == 0.5);
  CHECK(c.download.max_retry_wait_s == 30.0);
  CHECK(c.download.rate_per_host == 0.0);
  CHECK(c.decode_concurrency.is_unlimited());
  CHECK(c.decode_max_memory_mb == 512);
  CHECK(c.thumbnail.concurrency.is_unlimited());
  CHECK(c.thumbnail.sizes == std::vector<Size>{{128, 128}});
  CHECK(c.thumbnail.format == ImageFormat::same);
  CHECK(c.thumbnail.jpeg_quality == 85);
  CHECK(c.thumbnail.webp_quality == 80);
  CHECK(c.thumbnail.png_compression == 3);
  CHECK(c.write_concurrency == Concurrency(4));
  CHECK(c == PipelineConfig{});
}

TEST_CASE("the issue's document parses to the values it states", "[config]") {
  const auto c = parse_config(json::parse(R"({
    "threads": 3, "max_in_flight": 200, "timeout_s": 90.5,
    "nodes": {
      "fetch": {"concurrency": 4},
      "download": {"concurrency": 48, "per_host": 8, "connect_timeout_s": 2.5, "timeout_s": 60,
                   "header_timeout_s": 7.5, "stall_timeout_s": 15, "min_speed_bytes_s": 0,
                   "max_bytes": 1048576, "max_redirects": 0,
                   "retries": 5, "backoff_s": 0.25, "max_retry_wait_s": 60, "rate_per_host": 2.5},
      "decode": {"concurrency": 2, "max_memory_mb": 64},
      "thumbnail": {"concurrency": "unlimited", "sizes": ["128x128", "640x480"], "format": "webp",
                    "jpeg_quality": 90, "webp_quality": 70, "png_compression": 9},
      "write": {"concurrency": "unlimited"}
    }})"));
  CHECK(c.threads == 3);
  CHECK(c.max_in_flight == 200);
  CHECK(c.timeout_s == 90.5);
  CHECK(c.fetch_concurrency == Concurrency(4));
  CHECK(c.download.concurrency == Concurrency(48));
  CHECK(c.download.per_host == 8);
  CHECK(c.download.connect_timeout_s == 2.5);
  CHECK(c.download.timeout_s == 60.0);
  CHECK(c.download.header_timeout_s == 7.5);
  CHECK(c.download.stall_timeout_s == 15.0);
  CHECK(c.download.min_speed_bytes_s == 0);
  CHECK(c.download.max_bytes == 1048576);
  CHECK(c.download.max_redirects == 0);
  CHECK(c.download.retries == 5);
  CHECK(c.download.backoff_s == 0.25);
  CHECK(c.download.max_retry_wait_s == 60.0);
  CHECK(c.download.rate_per_host == 2.5);
  CHECK(c.decode_concurrency == Concurrency(2));
  CHECK(c.decode_max_memory_mb == 64);
  CHECK(c.thumbnail.concurrency.is_unlimited());
  CHECK(c.thumbnail.sizes == std::vector<Size>{{128, 128}, {640, 480}});
  CHECK(c.thumbnail.format == ImageFormat::webp);
  CHECK(c.thumbnail.jpeg_quality == 90);
  CHECK(c.thumbnail.webp_quality == 70);
  CHECK(c.thumbnail.png_compression == 9);
  CHECK(c.write_concurrency.is_unlimited());
}

TEST_CASE("a document is merged onto the given defaults, key by key", "[config]") {
  PipelineConfig defaults;
  defaults.threads = 7;
  defaults.download.per_host = 3;
  defaults.download.max_redirects = 9;
  defaults.thumbnail.sizes = {{64, 64}, {256, 256}};
  defaults.thumbnail.format = ImageFormat::png;

  const auto c = parse_config(json::parse(R"({"nodes": {"download": {"per_host": 5},
                                              "thumbnail": {"sizes": ["32x16"]}}})"),
                              defaults);
  CHECK(c.threads == 7);                    // absent: kept
  CHECK(c.download.per_host == 5);          // present: overridden
  CHECK(c.download.max_redirects == 9);     // sibling absent: kept
  CHECK(c.thumbnail.sizes == std::vector<Size>{{32, 16}});  // an array replaces the list
  CHECK(c.thumbnail.format == ImageFormat::png);
  CHECK(c.max_in_flight == 64);

  // Values built in C++ (signed ints) are read like parsed ones.
  const auto built = parse_config(json{{"threads", 2}, {"nodes", {{"write", {{"concurrency", 3}}}}}});
  CHECK(built.threads == 2);
  CHECK(built.write_concurrency == Concurrency(3));
}

TEST_CASE("every kind of bad config names the JSON path at fault", "[config]") {
  struct Case {
    const char* document;
    const char* path;
    const char* what;
  };
  const Case cases[] = {
      {R"({"nodes":{"download":{"concurency":8}}})", "/nodes/download/concurency",
       "/nodes/download/concurency: unknown key"},
      {R"({"thread":2})", "/thread", "/thread: unknown key"},
      {R"({"nodes":{"resize":{}}})", "/nodes/resize", "/nodes/resize: unknown key"},
      {R"({"nodes":{"write":{"concurrency":2,"atomic":true}}})", "/nodes/write/atomic", "/nodes/write/atomic: unknown key"},
      {R"({"threads":"four"})", "/threads", R"(/threads: expected an integer >= 0, got "four")"},
      {R"({"threads":-1})", "/threads", "/threads: expected an integer >= 0, got -1"},
      {R"({"threads":2.5})", "/threads", "/threads: expected an integer >= 0, got 2.5"},
      {R"({"threads":4.0})", "/threads", "/threads: expected an integer >= 0, got 4.0"},
      {R"({"threads":100000})", "/threads", "/threads: expected an integer <= 4096, got 100000"},
      {R"({"max_in_flight":0})", "/max_in_flight", "/max_in_flight: expected an integer >= 1, got 0"},
      {R"({"max_in_flight":1000001})", "/max_in_flight", "/max_in_flight: expected an integer <= 1000000, got 1000001"},
      {R"({"max_in_flight":true})", "/max_in_flight", "/max_in_flight: expected an integer >= 1, got true"},
      {R"({"timeout_s":-5})", "/timeout_s", "/timeout_s: expected a number >= 0, got -5"},
      {R"({"timeout_s":"10s"})", "/timeout_s", R"(/timeout_s: expected a number >= 0, got "10s")"},
      {R"({"nodes":{"decode":{"concurrency":0}}})", "/nodes/decode/concurrency",
       R"(/nodes/decode/concurrency: expected an integer >= 1 or "unlimited", got 0)"},
      {R"({"nodes":{"decode":{"max_memory_mb":8}}})", "/nodes/decode/max_memory_mb",
       "/nodes/decode/max_memory_mb: expected an integer >= 16, got 8"},
      {R"({"nodes":{"fetch":{"concurrency":"lots"}}})", "/nodes/fetch/concurrency",
       R"(/nodes/fetch/concurrency: expected an integer >= 1 or "unlimited", got "lots")"},
      {R"({"nodes":{"write":{"concurrency":false}}})", "/nodes/write/concurrency",
       R"(/nodes/write/concurrency: expected an integer >= 1 or "unlimited", got false)"},
      {R"({"nodes":{"write":{"concurrency":-3}}})", "/nodes/write/concurrency",
       R"(/nodes/write/concurrency: expected an integer >= 1 or "unlimited", got -3)"},
      {R"({"nodes":{"download":{"concurrency":2000000}}})", "/nodes/download/concurrency",
       R"(/nodes/download/concurrency: expected an integer <= 1000000 or "unlimited", got 2000000)"},
      {R"({"nodes":{"download":{"per_host":0}}})", "/nodes/download/per_host",
       "/nodes/download/per_host: expected an integer >= 1, got 0"},
      {R"({"nodes":{"download":{"connect_timeout_s":0}}})", "/nodes/download/connect_timeout_s",
       "/nodes/download/connect_timeout_s: expected a number > 0, got 0"},
      {R"({"nodes":{"download":{"stall_timeout_s":null}}})", "/nodes/download/stall_timeout_s",
       "/nodes/download/stall_timeout_s: expected a number > 0, got null"},
      {R"({"nodes":{"download":{"header_timeout_s":0}}})", "/nodes/download/header_timeout_s",
       "/nodes/download/header_timeout_s: expected a number > 0, got 0"},
      {R"({"nodes":{"download":{"header_timeout_s":"30s"}}})", "/nodes/download/header_timeout_s",
       R"(/nodes/download/header_timeout_s: expected a number > 0, got "30s")"},
      {R"({"nodes":{"download":{"min_speed_bytes_s":-1}}})", "/nodes/download/min_speed_bytes_s",
       "/nodes/download/min_speed_bytes_s: expected an integer >= 0, got -1"},
      {R"({"nodes":{"download":{"min_speed_bytes_s":0.5}}})", "/nodes/download/min_speed_bytes_s",
       "/nodes/download/min_speed_bytes_s: expected an integer >= 0, got 0.5"},
      {R"({"nodes":{"download":{"min_speed_bytes_s":2000000000000}}})", "/nodes/download/min_speed_bytes_s",
       "/nodes/download/min_speed_bytes_s: expected an integer <= 1099511627776, got 2000000000000"},
      {R"({"nodes":{"download":{"max_redirects":-1}}})", "/nodes/download/max_redirects",
       "/nodes/download/max_redirects: expected an integer >= 0, got -1"},
      {R"({"nodes":{"download":{"max_bytes":"64M"}}})", "/nodes/download/max_bytes",
       R"(/nodes/download/max_bytes: expected an integer >= 1, got "64M")"},
      {R"({"nodes":{"download":{"retries":-1}}})", "/nodes/download/retries",
       "/nodes/download/retries: expected an integer >= 0, got -1"},
      {R"({"nodes":{"download":{"retries":101}}})", "/nodes/download/retries",
       "/nodes/download/retries: expected an integer <= 100, got 101"},
      {R"({"nodes":{"download":{"retries":1.5}}})", "/nodes/download/retries",
       "/nodes/download/retries: expected an integer >= 0, got 1.5"},
      {R"({"nodes":{"download":{"retries":true}}})", "/nodes/download/retries",
       "/nodes/download/retries: expected an integer >= 0, got true"},
      {R"({"nodes":{"download":{"backoff_s":0}}})", "/nodes/download/backoff_s",
       "/nodes/download/backoff_s: expected a number > 0, got 0"},
      {R"({"nodes":{"download":{"backoff_s":"1s"}}})", "/nodes/download/backoff_s",
       R"(/nodes/download/backoff_s: expected a number > 0, got "1s")"},
      {R"({"nodes":{"download":{"max_retry_wait_s":-2}}})", "/nodes/download/max_retry_wait_s",
       "/nodes/download/max_retry_wait_s: expected a number > 0, got -2"},
      {R"({"nodes":{"download":{"max_retry_wait_s":0.0}}})", "/nodes/download/max_retry_wait_s",
       "/nodes/download/max_retry_wait_s: expected a number > 0, got 0.0"},
      {R"({"nodes":{"download":{"max_retry_wait_s":1e8}}})", "/nodes/download/max_retry_wait_s",
       "/nodes/download/max_retry_wait_s: expected a number <= 10000000.0, got 100000000.0"},
      {R"({"nodes":{"download":{"rate_per_host":-0.5}}})", "/nodes/download/rate_per_host",
       "/nodes/download/rate_per_host: expected a number >= 0, got -0.5"},
      {R"({"nodes":{"download":{"rate_per_host":false}}})", "/nodes/download/rate_per_host",
       "/nodes/download/rate_per_host: expected a number >= 0, got false"},
      {R"({"nodes":{"download":{"rate_per_host":2000000}}})", "/nodes/download/rate_per_host",
       "/nodes/download/rate_per_host: expected a number <= 1000000.0, got 2000000"},
      {R"({"nodes":{"download":{"retry":3}}})", "/nodes/download/retry", "/nodes/download/retry: unknown key"},
      {R"({"force":false})", "/force", "/force: unknown key"},
      {R"({"nodes":{"thumbnail":{"sizes":[]}}})", "/nodes/thumbnail/sizes",
       R"(/nodes/thumbnail/sizes: expected a non-empty array of sizes like ["128x128"], got [])"},
      {R"({"nodes":{"thumbnail":{"sizes":"128x128"}}})", "/nodes/thumbnail/sizes",
       R"(/nodes/thumbnail/sizes: expected a non-empty array of sizes like ["128x128"], got "128x128")"},
      {R"({"nodes":{"thumbnail":{"sizes":["128x128","12x"]}}})", "/nodes/thumbnail/sizes/1",
       R"(/nodes/thumbnail/sizes/1: expected a size "WxH" with 1 <= W, H <= 65535, got "12x")"},
      {R"({"nodes":{"thumbnail":{"sizes":["0x10"]}}})", "/nodes/thumbnail/sizes/0",
       R"(/nodes/thumbnail/sizes/0: expected a size "WxH" with 1 <= W, H <= 65535, got "0x10")"},
      {R"({"nodes":{"thumbnail":{"sizes":["64x64","64x64"]}}})", "/nodes/thumbnail/sizes/1",
       "/nodes/thumbnail/sizes/1: duplicate size 64x64"},
      {R"({"nodes":{"thumbnail":{"format":"gif"}}})", "/nodes/thumbnail/format",
       R"(/nodes/thumbnail/format: expected one of "same", "jpg", "png", "webp", got "gif")"},
      {R"({"nodes":{"thumbnail":{"jpeg_quality":101}}})", "/nodes/thumbnail/jpeg_quality",
       "/nodes/thumbnail/jpeg_quality: expected an integer <= 100, got 101"},
      {R"({"nodes":{"thumbnail":{"webp_quality":0}}})", "/nodes/thumbnail/webp_quality",
       "/nodes/thumbnail/webp_quality: expected an integer >= 1, got 0"},
      {R"({"nodes":{"thumbnail":{"png_compression":10}}})", "/nodes/thumbnail/png_compression",
       "/nodes/thumbnail/png_compression: expected an integer <= 9, got 10"},
      {R"({"nodes":[]})", "/nodes", "/nodes: expected an object, got []"},
      {R"({"nodes":{"download":8}})", "/nodes/download", "/nodes/download: expected an object, got 8"},
      {R"([1,2])", "", "(root): expected an object, got [1,2]"},
      {R"({"a/b~c":1})", "/a~1b~0c", "/a~1b~0c: unknown key"},
  };
  for (const Case& c : cases) {
    INFO(c.document);
    try {
      (void)parse_config(json::parse(c.document));
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(e.path() == c.path);
      CHECK(std::string(e.what()) == c.what);
      CHECK(e.file().empty());
    }
  }
}

TEST_CASE("the first error in key order is the one reported, every time", "[config]") {
  // nlohmann::json orders keys by name: "max_in_flight" < "nodes" < "threads".
  const auto document = json::parse(R"({"threads":-1,"nodes":{"write":{"concurrency":0}},"max_in_flight":0})");
  for (int i = 0; i < 3; ++i) {
    try {
      (void)parse_config(document);
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(e.path() == "/max_in_flight");
    }
  }
}

TEST_CASE("a failed parse leaves nothing half-applied: it throws, the caller keeps its config", "[config]") {
  PipelineConfig config;
  config.threads = 5;
  CHECK_THROWS_AS(config = parse_config(json::parse(R"({"threads":1,"timeout_s":-1})"), config), ConfigError);
  CHECK(config.threads == 5);
}

TEST_CASE("to_json gives the effective config in the file's shape, and parses back equal", "[config]") {
  SECTION("defaults") {
    const json dumped = to_json(PipelineConfig{});
    CHECK(dumped.at("/nodes/decode/concurrency"_json_pointer) == "unlimited");
    CHECK(dumped.at("/nodes/download/concurrency"_json_pointer) == 32);
    CHECK(dumped.at("/nodes/thumbnail/sizes"_json_pointer) == json::array({"128x128"}));
    CHECK(dumped.at("/nodes/thumbnail/format"_json_pointer) == "same");
    CHECK(dumped.at("/max_in_flight"_json_pointer) == 64);
    CHECK(dumped.at("/nodes/download/retries"_json_pointer) == 3);
    CHECK(dumped.at("/nodes/download/backoff_s"_json_pointer) == 0.5);
    CHECK(dumped.at("/nodes/download/max_retry_wait_s"_json_pointer) == 30.0);
    CHECK(dumped.at("/nodes/download/rate_per_host"_json_pointer) == 0.0);
    CHECK(parse_config(dumped) == PipelineConfig{});
  }
  SECTION("every value changed") {
    PipelineConfig c;
    c.threads = 2;
    c.max_in_flight = 9;
    c.timeout_s = 1.25;
    c.fetch_concurrency = Concurrency::unlimited();
    c.download.concurrency = Concurrency(7);
    c.download.per_host = 2;
    c.download.connect_timeout_s = 0.5;
    c.download.timeout_s = 33;
    c.download.stall_timeout_s = 4.75;
    c.download.max_bytes = 12345;
    c.download.max_redirects = 0;
    c.download.retries = 0;
    c.download.backoff_s = 0.125;
    c.download.max_retry_wait_s = 2.5;
    c.download.rate_per_host = 0.75;
    c.decode_concurrency = Concurrency(1);
    c.thumbnail.concurrency = Concurrency(3);
    c.thumbnail.sizes = {{100, 50}, {1920, 1080}};
    c.thumbnail.format = ImageFormat::jpeg;
    c.thumbnail.jpeg_quality = 1;
    c.thumbnail.webp_quality = 100;
    c.thumbnail.png_compression = 0;
    c.write_concurrency = Concurrency(1);
    const json dumped = to_json(c);
    CHECK(dumped.at("/nodes/thumbnail/format"_json_pointer) == "jpg");
    CHECK(parse_config(dumped) == c);
    // Through text too, as --dump-config output read back with --config would be.
    CHECK(parse_config(json::parse(dumped.dump(2))) == c);
    // And onto different defaults: every key is present, so nothing of them survives.
    PipelineConfig other;
    other.threads = 99;
    other.thumbnail.sizes = {{1, 1}};
    CHECK(parse_config(dumped, other) == c);
  }
}

TEST_CASE("load_config reads a file and names it in errors", "[config]") {
  pixflow::test::TempDir dir;

  SECTION("a good file") {
    write_file(dir / "good.json", R"({"threads": 1, "nodes": {"thumbnail": {"sizes": ["64x48"]}}})");
    const auto c = load_config(dir / "good.json");
    CHECK(c.threads == 1);
    CHECK(c.thumbnail.sizes == std::vector<Size>{{64, 48}});
  }
  SECTION("a syntax error gives the line and column") {
    const auto file = dir / "broken.json";
    write_file(file, "{\n  \"threads\": 2,\n  \"nodes\": {\"fetch\": {\"concurrency\": 2,}}\n}\n");
    try {
      (void)load_config(file);
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(e.file() == file);
      CHECK(e.path().empty());
      // The stray '}' after "2," is line 3, column 40.
      CHECK(what.rfind(file.string() + ": line 3, column 40: syntax error", 0) == 0);
    }
  }
  SECTION("a syntax error on the first line") {
    write_file(dir / "one.json", R"({"threads": tru})");
    try {
      (void)load_config(dir / "one.json");
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(": line 1, column 16: syntax error") != std::string::npos);
    }
  }
  SECTION("a semantic error names the file and the path") {
    write_file(dir / "bad.json", R"({"nodes": {"download": {"concurency": 8}}})");
    try {
      (void)load_config(dir / "bad.json");
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(e.path() == "/nodes/download/concurency");
      CHECK(std::string(e.what()) == (dir / "bad.json").string() + ": /nodes/download/concurency: unknown key");
    }
  }
  SECTION("a missing file") {
    try {
      (void)load_config(dir / "absent.json");
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(std::string(e.what()) == (dir / "absent.json").string() + ": cannot read: No such file or directory");
    }
  }
  SECTION("a folder") {
    CHECK_THROWS_WITH(load_config(dir.path()), dir.path().string() + ": cannot read: Is a directory");
  }
  SECTION("merged onto defaults") {
    write_file(dir / "part.json", R"({"max_in_flight": 8})");
    PipelineConfig defaults;
    defaults.threads = 3;
    const auto c = load_config(dir / "part.json", defaults);
    CHECK(c.threads == 3);
    CHECK(c.max_in_flight == 8);
  }
}

TEST_CASE("command-line overrides replace the file's values and name the option at fault", "[config]") {
  PipelineConfig file;
  file.threads = 3;
  file.thumbnail.sizes = {{64, 64}};
  const PipelineConfig merged = apply_overrides(file, pixflow::tasks::ConfigOverrides{{"128x96", "300x300"}, "webp", std::size_t{1}});
  CHECK(merged.threads == 1);
  CHECK(merged.thumbnail.sizes == std::vector<Size>{{128, 96}, {300, 300}});
  CHECK(merged.thumbnail.format == ImageFormat::webp);
  CHECK(apply_overrides(file, pixflow::tasks::ConfigOverrides{}) == file);
  try {
    (void)apply_overrides(file, pixflow::tasks::ConfigOverrides{{"12x"}, "", std::nullopt});
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "--size");
    CHECK(std::string(e.what()) == "--size: expected WxH with both > 0, got \"12x\"");
  }
  CHECK_THROWS_AS(apply_overrides(file, pixflow::tasks::ConfigOverrides{{}, "tiff", std::nullopt}), ConfigError);
}

namespace {

/// load_config's what() for `text` written to a file (the file name cut off), or "" when it loads.
std::string load_error(const pixflow::test::TempDir& dir, const std::string& text) {
  const auto file = dir / "hostile.json";
  write_file(file, text);
  try {
    (void)load_config(file);
    return "";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    CHECK(e.file() == file);
    return what.substr(file.string().size() + 2);
  }
}

}  // namespace

// 100,000 nested '[' took the process down with SIGSEGV: nlohmann parses and destroys them iteratively,
// but the error message's dump() of the offending value recursed once per level.
TEST_CASE("load_config refuses deep nesting, oversized files and trailing data with a clear error", "[config]") {
  pixflow::test::TempDir dir;
  const std::string open(100'000, '[');
  const std::string closed = open + std::string(100'000, ']');

  SECTION("100,000 nested brackets in the root, in threads and in sizes") {
    CHECK(load_error(dir, closed) == "line 1, column 65: too deeply nested (more than 64 levels) at byte 64");
    CHECK(load_error(dir, open) == "line 1, column 65: too deeply nested (more than 64 levels) at byte 64");
    CHECK(load_error(dir, R"({"threads":)" + closed + "}") ==
          "line 1, column 75: too deeply nested (more than 64 levels) at byte 74");
    CHECK(load_error(dir, "{\n \"nodes\": {\"thumbnail\": {\"sizes\": " + closed + "}}}") ==
          "line 2, column 96: too deeply nested (more than 64 levels) at byte 97");
  }
  SECTION("64 levels parse (and fail as a config, by path)") {
    const std::string deep = R"({"threads":)" + std::string(63, '[') + std::string(63, ']') + "}";
    CHECK(load_error(dir, deep).rfind("/threads: expected an integer >= 0, got [[[[", 0) == 0);
  }
  SECTION("more than 1 MiB, and /dev/zero") {
    CHECK(load_error(dir, "{}" + std::string((1u << 20) - 2, ' ')).empty());  // exactly the cap is fine
    CHECK(load_error(dir, "{}" + std::string((1u << 20) - 1, ' ')) == "too large (more than 1 MiB)");
    CHECK_THROWS_WITH(load_config("/dev/zero"), "/dev/zero: too large (more than 1 MiB)");
  }
  SECTION("a NUL and garbage, a second document, trailing text") {
    CHECK(load_error(dir, std::string("{}\0garbage", 10)) == "line 1, column 3: unexpected NUL byte at byte 2");
    CHECK(load_error(dir, std::string("{\"threads\": 2}\n\0", 16)) == "line 2, column 1: unexpected NUL byte at byte 15");
    CHECK(load_error(dir, "{\"threads\": 2}\n{\"threads\": 3}\n") ==
          "line 2, column 1: unexpected data after the JSON value at byte 15");
    CHECK(load_error(dir, "{} x") == "line 1, column 4: unexpected data after the JSON value at byte 3");
    CHECK(load_error(dir, std::string("{\"threads\": \"a\0\"}", 17)) == "line 1, column 15: unexpected NUL byte at byte 14");
    CHECK(load_error(dir, "{}\n  \r\n\t").empty());  // trailing whitespace is fine
  }
}

TEST_CASE("load_config reads a pipe (a FIFO, as from <(echo ...))", "[config]") {
  pixflow::test::TempDir dir;
  const auto fifo = dir / "config.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::thread writer([&] { write_file(fifo, R"({"threads": 3})"); });
  PipelineConfig c;
  CHECK_NOTHROW(c = load_config(fifo));
  writer.join();
  CHECK(c.threads == 3);
}

TEST_CASE("parse_config names a 100,000-level value without recursing", "[config]") {
  // A document a caller built (nlohmann parses and destroys this iteratively): the message shows a prefix.
  const std::string text = R"({"threads":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
  const json document = json::parse(text);
  CHECK_THROWS_WITH(parse_config(document),
                    "/threads: expected an integer >= 0, got " + std::string(60, '[') + "...");
  CHECK_THROWS_WITH(parse_config(json::parse(std::string(100'000, '[') + std::string(100'000, ']'))),
                    "(root): expected an object, got " + std::string(60, '[') + "...");
  // Short values are shown whole, nested ones too.
  CHECK_THROWS_WITH(parse_config(json::parse(R"({"threads":[[1,{"a":[]}],{}]})")),
                    R"(/threads: expected an integer >= 0, got [[1,{"a":[]}],{}])");
}

TEST_CASE("thumbnail.animated, max_frames and video: defaults, values, errors, to_json", "[config]") {
  const PipelineConfig defaults = parse_config(json::object());
  CHECK(defaults.thumbnail.animated == pixflow::tasks::AnimatedMode::first_frame);
  CHECK(defaults.thumbnail.max_frames == 1000);
  CHECK(defaults.thumbnail.video == pixflow::tasks::VideoMode::poster);
  const json dumped = to_json(defaults);
  CHECK(dumped.at("/nodes/thumbnail/animated"_json_pointer) == "first-frame");
  CHECK(dumped.at("/nodes/thumbnail/max_frames"_json_pointer) == 1000);
  CHECK(dumped.at("/nodes/thumbnail/video"_json_pointer) == "poster");

  const PipelineConfig c =
      parse_config(json::parse(R"({"nodes":{"thumbnail":{"animated":"animate","max_frames":50,"video":"skip"}}})"));
  CHECK(c.thumbnail.animated == pixflow::tasks::AnimatedMode::animate);
  CHECK(c.thumbnail.max_frames == 50);
  CHECK(c.thumbnail.video == pixflow::tasks::VideoMode::skip);
  CHECK(parse_config(to_json(c)) == c);
  CHECK(to_json(c).at("/nodes/thumbnail/animated"_json_pointer) == "animate");
  CHECK(to_json(c).at("/nodes/thumbnail/video"_json_pointer) == "skip");

  const std::pair<const char*, const char*> bad[] = {
      {R"({"nodes":{"thumbnail":{"animated":"gif"}}})",
       R"(/nodes/thumbnail/animated: expected one of "first-frame", "animate", got "gif")"},
      {R"({"nodes":{"thumbnail":{"animated":true}}})",
       R"(/nodes/thumbnail/animated: expected one of "first-frame", "animate", got true)"},
      {R"({"nodes":{"thumbnail":{"max_frames":0}}})", "/nodes/thumbnail/max_frames: expected an integer >= 1, got 0"},
      {R"({"nodes":{"thumbnail":{"max_frames":100001}}})",
       "/nodes/thumbnail/max_frames: expected an integer <= 100000, got 100001"},
      {R"({"nodes":{"thumbnail":{"max_frames":"all"}}})", R"(/nodes/thumbnail/max_frames: expected an integer >= 1, got "all")"},
      {R"({"nodes":{"thumbnail":{"video":"frames"}}})",
       R"(/nodes/thumbnail/video: expected one of "poster", "skip", got "frames")"},
  };
  for (const auto& [document, what] : bad) {
    INFO(document);
    try {
      (void)parse_config(json::parse(document));
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(std::string(e.what()) == what);
    }
  }
}

TEST_CASE("thumbnail.mode and thumbnail.keep_metadata: parsed, checked, dumped, overridden by --mode", "[config]") {
  using pixflow::tasks::ThumbnailMode;
  const PipelineConfig defaults = parse_config(json::object());
  CHECK(defaults.thumbnail.mode == ThumbnailMode::fit);
  CHECK_FALSE(defaults.thumbnail.keep_metadata);
  const PipelineConfig c = parse_config(json::parse(R"({"nodes":{"thumbnail":{"mode":"fill","keep_metadata":true}}})"));
  CHECK(c.thumbnail.mode == ThumbnailMode::fill);
  CHECK(c.thumbnail.keep_metadata);
  const json dumped = to_json(c);
  CHECK(dumped.at("/nodes/thumbnail/mode"_json_pointer) == "fill");
  CHECK(dumped.at("/nodes/thumbnail/keep_metadata"_json_pointer) == true);
  CHECK(parse_config(dumped) == c);
  CHECK(to_json(defaults).at("/nodes/thumbnail/mode"_json_pointer) == "fit");

  const std::pair<const char*, const char*> bad[] = {
      {R"({"nodes":{"thumbnail":{"mode":"crop"}}})", "/nodes/thumbnail/mode: expected one of \"fit\", \"fill\", \"fill-attention\", got \"crop\""},
      {R"({"nodes":{"thumbnail":{"mode":1}}})", "/nodes/thumbnail/mode: expected one of \"fit\", \"fill\", \"fill-attention\", got 1"},
      {R"({"nodes":{"thumbnail":{"keep_metadata":"yes"}}})", "/nodes/thumbnail/keep_metadata: expected true or false, got \"yes\""},
      {R"({"nodes":{"thumbnail":{"keep_metadata":1}}})", "/nodes/thumbnail/keep_metadata: expected true or false, got 1"},
  };
  for (const auto& [text, message] : bad) {
    INFO(text);
    try {
      (void)parse_config(json::parse(text));
      FAIL("no error");
    } catch (const ConfigError& e) {
      CHECK(std::string(e.what()) == message);
    }
  }

  pixflow::tasks::ConfigOverrides overrides;
  overrides.mode = "fill";
  CHECK(apply_overrides(defaults, overrides).thumbnail.mode == ThumbnailMode::fill);
  overrides.mode = "fit";
  CHECK(apply_overrides(c, overrides).thumbnail.mode == ThumbnailMode::fit);
  overrides.mode = "fill-attention";
  CHECK(apply_overrides(defaults, overrides).thumbnail.mode == ThumbnailMode::fill_attention);
  overrides.mode = "cover";
  try {
    (void)apply_overrides(defaults, overrides);
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "--mode: expected fit|fill|fill-attention, got \"cover\"");
  }
}
