// `/redis` of the config file and a worker's whole config file (pixflow/queue/config.hpp). No server.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#include <pixflow/queue/config.hpp>

#include "support.hpp"

namespace {

using namespace pixflow::tasks;
using namespace pixflow::queue;
namespace fs = std::filesystem;
using json = nlohmann::json;

}  // namespace

TEST_CASE("the /redis config keys are read from the same file as the pipeline's", "[queue]") {
  const QueueConfig defaults;
  CHECK(parse_queue_config(json::object()) == defaults);
  CHECK(parse_queue_config(json{{"threads", 2}}) == defaults);  // other keys are not ours

  const QueueConfig c = parse_queue_config(
      json::parse(R"({"redis": {"claim_idle_s": 1.5, "batch_size": 8, "connect_timeout_s": 2, "max_deliveries": 3}})"));
  CHECK(c.claim_idle_s == 1.5);
  CHECK(c.batch_size == 8);
  CHECK(c.connect_timeout_s == 2);
  CHECK(c.max_deliveries == 3);
  CHECK(parse_queue_config(to_json(c)) == c);

  const auto error = [](const char* text) {
    try {
      parse_queue_config(json::parse(text));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error(R"({"redis": {"batch": 8}})") == "/redis/batch: unknown key");
  CHECK(error(R"({"redis": {"batch_size": 0}})") == "/redis/batch_size: expected an integer in 1..100000, got 0");
  CHECK(error(R"({"redis": {"batch_size": 2.5}})") == "/redis/batch_size: expected an integer in 1..100000, got 2.5");
  CHECK(error(R"({"redis": {"claim_idle_s": -1}})") ==
        "/redis/claim_idle_s: expected a number > 0 and <= 10000000, got -1");
  CHECK(error(R"({"redis": {"connect_timeout_s": "5"}})") ==
        "/redis/connect_timeout_s: expected a number > 0 and <= 10000000, got \"5\"");
  CHECK(error(R"({"redis": 3})") == "/redis: expected an object, got 3");

  pixflow::test::TempDir dir;
  std::ofstream(dir / "both.json") << R"({"threads": 3, "nodes": {"download": {"concurrency": 4}}, "redis": {"batch_size": 5}})";
  const WorkerConfig both = load_worker_config(dir / "both.json");
  CHECK(both.pipeline.threads == 3);
  CHECK(both.pipeline.download.concurrency == pixflow::Concurrency(4));
  CHECK(both.queue.batch_size == 5);

  std::ofstream(dir / "bad.json") << R"({"redis": {"batch_size": 5}, "threads": "x"})";
  try {
    load_worker_config(dir / "bad.json");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "/threads");
    CHECK(e.file() == dir / "bad.json");
  }
  CHECK_THROWS_AS(load_worker_config(dir / "missing.json"), ConfigError);

  // The worker reads its config through the same bounded reader as a local run.
  std::ofstream(dir / "deep.json") << R"({"redis": )" << std::string(100'000, '[') << std::string(100'000, ']') << "}";
  CHECK_THROWS_WITH(load_worker_config(dir / "deep.json"), Catch::Contains("too deeply nested (more than 64 levels)"));
  std::ofstream(dir / "nul.json") << std::string("{}\0garbage", 10);
  CHECK_THROWS_WITH(load_worker_config(dir / "nul.json"), Catch::Contains("unexpected NUL byte at byte 2"));
  CHECK_THROWS_WITH(load_worker_config("/dev/zero"), Catch::Contains("too large (more than 1 MiB)"));
}
