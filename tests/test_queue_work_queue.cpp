// WorkQueue (pixflow/queue/work_queue.hpp) and the CLI's enqueue/status against a real redis-server
// (tests/fixtures/redis).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pixflow/queue/work_queue.hpp>

#include "queue_support.hpp"

namespace {

using namespace pixflow::tasks;
using namespace pixflow::queue;
using namespace pixflow::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

}  // namespace

TEST_CASE("enqueue adds each URL once and status counts it", "[queue][redis][server]") {
  const std::string name = fresh_queue("enqueue");
  WorkQueue queue(fixture_address(), name);
  CHECK(queue.name() == name);

  ItemReport video;
  video.input = "http://example.test/clip.mp4";
  video.stage = "fetch";
  video.reason = "not an image (video/mp4)";
  const EnqueueResult first = queue.enqueue({"http://example.test/a.jpg", "http://example.test/b.jpg",
                                             "http://example.test/a.jpg"},
                                            {video});
  CHECK(first.queued == 2);
  CHECK(first.already_queued == 1);
  CHECK(first.skipped == 1);

  const EnqueueResult again = queue.enqueue({"http://example.test/b.jpg", "http://example.test/c.jpg"});
  CHECK(again.queued == 1);
  CHECK(again.already_queued == 1);

  const QueueStatus status = queue.status();
  CHECK(status.total == 4);
  CHECK(status.done == 1);  // the skipped video
  CHECK(status.skipped == 1);
  CHECK(status.failed == 0);
  CHECK(status.pending == 3);
  CHECK(status.in_progress == 0);
  CHECK(status.workers == 0);
  const json j = to_json(status);
  CHECK(j["total"] == 4);
  CHECK(j["pending"] == 3);
  CHECK(j.contains("workers"));
  CHECK(j["failures"].empty());
}

TEST_CASE("a bad queue name, an unreachable Redis and a refused login are errors, not hangs", "[queue][redis][server]") {
  CHECK_THROWS_AS(WorkQueue(fixture_address(), "no spaces"), std::invalid_argument);

  RedisAddress closed = fixture_address();
  closed.port = 1;  // nothing listens there
  try {
    WorkQueue queue(closed, "q", 2);
    FAIL("connected to port 1");
  } catch (const QueueError& e) {
    CHECK(e.kind() == QueueError::Kind::unreachable);
    CHECK(e.transient());
  }

  RedisAddress wrong = fixture_address();
  wrong.password = "wrong";  // the fixture has no password: AUTH is refused
  try {
    WorkQueue queue(wrong, "q", 2);
    FAIL("logged in with a password the server does not have");
  } catch (const QueueError& e) {
    CHECK(e.kind() == QueueError::Kind::rejected);
  }

  pixflow::test::TempDir dir;
  const std::string url = redis_url();
  const auto bad_url = run_cli({"status", "--redis", "http://127.0.0.1:6379", "--queue", "q"}, dir);
  CHECK(bad_url.code == 2);
  CHECK(bad_url.err.find("invalid redis url") != std::string::npos);
  const auto bad_login = run_cli({"worker", "--redis", "redis://:wrong@" + url.substr(8), "--queue", "q", "--out",
                                  (dir / "out").string()},
                                 dir);
  CHECK(bad_login.code == 2);
  CHECK(bad_login.err.find("refused") != std::string::npos);
  const auto bad_queue = run_cli({"status", "--redis", url, "--queue", "a:b"}, dir);
  CHECK(bad_queue.code == 2);
  const auto unreachable = run_cli({"status", "--redis", "redis://127.0.0.1:1", "--queue", "q"}, dir);
  CHECK(unreachable.code == 3);
  CHECK(unreachable.err.find("cannot connect") != std::string::npos);
  std::ofstream(dir / "bad.json") << R"({"redis": {"batch_size": 0}})";
  const auto bad_config = run_cli({"worker", "--redis", url, "--queue", "q", "--out", (dir / "out").string(), "--config",
                                   (dir / "bad.json").string()},
                                  dir);
  CHECK(bad_config.code == 2);
  CHECK(bad_config.err.find("/redis/batch_size") != std::string::npos);
}

TEST_CASE("enqueue queues a gallery largest first, each image once, non-images as skipped", "[queue][redis][server]") {
  pixflow::test::TempDir dir;
  const std::string url = redis_url();
  const std::string queue = fresh_queue("gallery");
  const auto enqueued = run_cli({"enqueue", "--redis", url, "--queue", queue, "gallery", "--api", pixflow::test::server_url(),
                                 "--client-id", "x", "--pages", "0"},
                                dir);
  INFO(enqueued.err);
  REQUIRE(enqueued.code == 0);
  // The fixture's own account of its gallery: every link with its listed size and what becomes of it.
  const json expected = json::parse(read_text(pixflow::test::fixture_dir("nginx") / "expected.json"));
  std::map<std::string, std::uint64_t> size_of;
  std::size_t skipped = 0;
  for (const auto& item : expected["items"]) {
    if (item["outcome"] == "ok" || item["outcome"] == "failed") size_of[item["link"]] = item["size"];
    if (item["outcome"] == "skipped") ++skipped;
  }
  CHECK(enqueued.out.find("queued " + std::to_string(size_of.size()) + " items") != std::string::npos);

  // The stream, in order: id, "url", URL, "index", N for each entry.
  const std::string stream_file = (dir / "stream").string();
  REQUIRE(std::system(("redis-cli -u " + url + " --raw XRANGE pixflow:" + queue + ":items - + >" + stream_file).c_str()) == 0);
  std::istringstream lines(read_text(stream_file));
  std::vector<std::uint64_t> sizes;
  for (std::string line, previous; std::getline(lines, line); previous = line)
    if (previous == "url") {
      INFO(line);
      REQUIRE(size_of.count(line) == 1);
      sizes.push_back(size_of[line]);
    }
  CHECK(sizes.size() == size_of.size());
  CHECK(std::is_sorted(sizes.rbegin(), sizes.rend()));  // largest first

  WorkQueue watch(fixture_address(), queue);
  const QueueStatus s = watch.status();
  CHECK(s.skipped == skipped);
  CHECK(s.total == size_of.size() + skipped);
}
