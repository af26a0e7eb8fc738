// Workers (pixflow/queue/worker.hpp) against a real redis-server (tests/fixtures/redis), run as pixflow CLI
// processes, images from the nginx fixture. Worker crashes are real `kill -9`s and the Redis restart is
// a real shutdown and start of the same server on the same port.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pixflow/queue/work_queue.hpp>
#include <pixflow/queue/worker.hpp>

#include "queue_support.hpp"

namespace {

using namespace pixflow::tasks;
using namespace pixflow::queue;
using namespace pixflow::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

}  // namespace

TEST_CASE("two workers drain a queue: every item done once, every thumbnail written", "[queue][redis][server]") {
  pixflow::test::TempDir dir;
  const std::string base = pixflow::test::server_url();
  const std::string url = redis_url();
  const std::string queue = fresh_queue("drain");
  // Two slow items first (one worker holds them for ~2.5 s while the other takes the rest).
  const std::vector<std::string> ok_names{"aqua.jpg", "storm-rotated.jpg", "dune.jpg", "fresh-flower.jpg",
                                          "garden.png", "ladybird-alpha.png", "two-wings.jpg", "tiny.jpg", "wood.webp"};
  std::vector<std::string> urls{base + "/slow/aqua.jpg", base + "/slow/storm-rotated.jpg"};
  for (std::size_t i = 2; i < ok_names.size(); ++i) urls.push_back(base + "/photos/" + ok_names[i]);
  urls.push_back(base + "/photos/broken.gif");
  urls.push_back(base + "/photos/missing.jpg");

  const auto enqueued = run_cli({"enqueue", "--redis", url, "--queue", queue, "urls", write_urls(dir, urls).string()}, dir);
  INFO(enqueued.err);
  REQUIRE(enqueued.code == 0);
  CHECK(enqueued.out.find("queued 11 items") != std::string::npos);

  const fs::path out = dir / "out";
  // max_in_flight 2: a worker holds at most 2 items, so the one holding the slow two leaves the rest.
  const fs::path config = write_config(dir, {{"claim_idle_s", 5}}, {{"max_in_flight", 2}});
  Worker a("a", url, queue, out, config, dir);
  Worker b("b", url, queue, out, config, dir);
  const int code_a = a.wait();
  const int code_b = b.wait();
  INFO("a: " << a.err() << "\nb: " << b.err());
  CHECK(code_a <= 1);  // 1: it recorded one of the two failures
  CHECK(code_b <= 1);
  const json ra = a.report();
  const json rb = b.report();
  CHECK(ra["items"].get<int>() + rb["items"].get<int>() == 11);  // each item once
  CHECK(ra["items"].get<int>() >= 1);
  CHECK(rb["items"].get<int>() >= 1);
  CHECK(ra["reclaimed"] == 0);
  CHECK(rb["reclaimed"] == 0);

  const auto status = run_cli({"status", "--redis", url, "--queue", queue}, dir);
  REQUIRE(status.code == 0);
  const json s = json::parse(status.out);
  CHECK(s["total"] == 11);
  CHECK(s["done"] == 9);
  CHECK(s["failed"] == 2);
  CHECK(s["pending"] == 0);
  CHECK(s["in_progress"] == 0);
  CHECK(s["workers"] == 0);  // both left
  REQUIRE(s["failures"].size() == 2);
  CHECK(s["failures"][0]["reason"] == "truncated gif");
  CHECK(s["failures"][1]["reason"] == "http 404");
  CHECK(s["failures"][1]["url"] == base + "/photos/missing.jpg");
  require_thumbnails(out, ok_names);
  CHECK(temporaries_in(out) == 0);
}

TEST_CASE("a worker killed with kill -9 loses nothing: the others reclaim its items", "[queue][redis][server]") {
  pixflow::test::TempDir dir;
  const std::string base = pixflow::test::server_url();
  const std::string url = redis_url();
  const std::string queue = fresh_queue("kill");
  // Slow items first, so the worker to be killed surely holds one (20 kB/s: 2..4 s each).
  const std::vector<std::string> slow{"aqua.jpg", "storm-rotated.jpg", "fresh-flower.jpg", "wood.webp"};
  const std::vector<std::string> fast{"dune.jpg", "garden.png", "ladybird-alpha.png", "tiny.jpg"};
  std::vector<std::string> urls;
  for (const auto& n : slow) urls.push_back(base + "/slow/" + n);
  for (const auto& n : fast) urls.push_back(base + "/photos/" + n);
  urls.push_back(base + "/photos/broken.gif");
  WorkQueue watch(fixture_address(), queue);
  REQUIRE(watch.enqueue(urls).queued == 9);

  const fs::path out = dir / "out";
  const fs::path config = write_config(dir, {{"batch_size", 1}, {"claim_idle_s", 1}}, {{"max_in_flight", 1}});
  Worker victim("victim", url, queue, out, config, dir);
  // Kill it once it holds an item (a slow one: it started first).
  const bool holds = wait_until(20, [&] {
    for (const auto& c : watch.status().consumers)
      if (c.name == "victim" && c.holding > 0) return true;
    return false;
  });
  REQUIRE(holds);
  Worker k1("k1", url, queue, out, config, dir);
  Worker k2("k2", url, queue, out, config, dir);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  victim.kill9();

  CHECK(k1.wait() <= 1);
  CHECK(k2.wait() <= 1);
  INFO("k1: " << k1.err() << "\nk2: " << k2.err());
  const json r1 = k1.report();
  const json r2 = k2.report();
  CHECK(r1["reclaimed"].get<int>() + r2["reclaimed"].get<int>() >= 1);

  const QueueStatus s = watch.status();
  CHECK(s.total == 9);
  CHECK(s.done + s.failed == s.total);
  CHECK(s.failed == 1);  // the GIF cut short, for its own reason
  REQUIRE(s.failures.size() == 1);
  CHECK(s.failures[0].reason == "truncated gif");
  CHECK(s.pending == 0);
  CHECK(s.in_progress == 0);
  std::vector<std::string> ok_names = slow;
  ok_names.insert(ok_names.end(), fast.begin(), fast.end());
  require_thumbnails(out, ok_names);
}

TEST_CASE("a worker stopped with SIGTERM hands its unfinished items back at once", "[queue][redis][server]") {
  pixflow::test::TempDir dir;
  const std::string base = pixflow::test::server_url();
  const std::string url = redis_url();
  const std::string queue = fresh_queue("term");
  WorkQueue watch(fixture_address(), queue);
  // The slow two take 14 s and 20 s at the fixture's 20 kB/s: a wide margin for tiny.jpg to finish
  // first even under ThreadSanitizer on a busy machine (a worker there needs seconds just to start).
  REQUIRE(watch.enqueue({base + "/slow/garden.png", base + "/slow/ladybird-alpha.png", base + "/photos/tiny.jpg"}).queued == 3);

  const fs::path out = dir / "out";
  const fs::path config = write_config(dir, {{"claim_idle_s", 600}}, {{"max_in_flight", 3}});
  Worker first("first", url, queue, out, config, dir);
  REQUIRE(wait_until(20, [&] { return watch.status().done >= 1; }));  // tiny.jpg; the slow two are held
  first.terminate();
  CHECK(first.wait() == 1);  // stopped
  const json stopped = first.report();
  CHECK(stopped["interrupted"] == true);
  // Usually tiny.jpg alone is done; on a machine slow enough (a loaded CI under ThreadSanitizer) the
  // 14 s garden.png may finish before the signal lands. Either way every item is done or handed back.
  const int finished = stopped["items"].get<int>();
  const int handed = 3 - finished;
  INFO("first: " << first.err());
  CHECK(finished >= 1);
  REQUIRE(handed >= 1);
  CHECK(first.err().find("handed " + std::to_string(handed) + " unfinished item(s) back") != std::string::npos);
  const QueueStatus held = watch.status();
  CHECK(held.pending == static_cast<std::size_t>(handed));
  CHECK(held.failed == 0);  // a cancelled item is not a failed one

  // claim_idle_s is 10 minutes, yet the next worker takes them over at once.
  Worker second("second", url, queue, out, config, dir);
  CHECK(second.wait() == 0);
  CHECK(second.report()["reclaimed"] == handed);
  const QueueStatus s = watch.status();
  CHECK(s.done == 3);
  CHECK(s.pending == 0);
  require_thumbnails(out, {"garden.png", "ladybird-alpha.png", "tiny.jpg"});
}

TEST_CASE("an item whose workers keep dying fails for good after max_deliveries", "[queue][redis][server]") {
  pixflow::test::TempDir dir;
  const std::string url = redis_url();
  const std::string queue = fresh_queue("poison");
  WorkQueue watch(fixture_address(), queue);
  REQUIRE(watch.enqueue({pixflow::test::server_url() + "/photos/tiny.jpg"}).queued == 1);
  // A consumer "ghost" takes it and is "claimed" twice more, as if three workers had died with it.
  const std::string cli = "redis-cli -u " + url + " ";
  const std::string key = "pixflow:" + queue + ":items";
  REQUIRE(std::system((cli + "XREADGROUP GROUP workers ghost COUNT 1 STREAMS " + key + " '>' >/dev/null").c_str()) == 0);
  const std::string id_file = (dir / "id").string();
  REQUIRE(std::system((cli + "--raw XRANGE " + key + " - + COUNT 1 | head -1 >" + id_file).c_str()) == 0);
  const std::string id = read_text(id_file).substr(0, read_text(id_file).find('\n'));
  for (int i = 0; i < 2; ++i)
    REQUIRE(std::system((cli + "XCLAIM " + key + " workers ghost 0 " + id + " >/dev/null").c_str()) == 0);

  const fs::path config = write_config(dir, {{"claim_idle_s", 0.05}, {"max_deliveries", 3}});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Worker worker("survivor", url, queue, dir / "out", config, dir);
  CHECK(worker.wait() == 1);
  const QueueStatus s = watch.status();
  CHECK(s.failed == 1);
  CHECK(s.pending == 0);
  REQUIRE(s.failures.size() == 1);
  CHECK(s.failures[0].stage == "queue");
  CHECK(s.failures[0].reason == "gave up after 4 deliveries (its workers died or stopped)");
  CHECK(s.failures[0].worker == "survivor");

  // Nothing left: a worker that joins now exits at once.
  Worker late("late", url, queue, dir / "out", config, dir);
  CHECK(late.wait() == 0);
  CHECK(late.report()["items"] == 0);
}

TEST_CASE("workers ride out a Redis restart and finish the queue", "[queue][redis][server]") {
  // A Redis of this test's own (appendonly), restarted on the same port: the shared fixture stays up.
  pixflow::test::TempDir dir;
  const fs::path state = dir / "redis";
  const fs::path scripts = pixflow::test::fixtures_dir() / "redis";
  const std::string start = "bash '" + (scripts / "start.sh").string() + "' '" + state.string() + "'";
  const std::string stop = "bash '" + (scripts / "stop.sh").string() + "' '" + state.string() + "'";
  REQUIRE(std::system((start + " >/dev/null").c_str()) == 0);
  struct StopRedis {
    std::string command;
    ~StopRedis() { (void)std::system(command.c_str()); }
  } stop_at_end{stop};
  const std::string url = redis_url(state);

  const std::string base = pixflow::test::server_url();
  const std::vector<std::string> slow{"aqua.jpg", "storm-rotated.jpg", "fresh-flower.jpg", "wood.webp"};
  const std::vector<std::string> fast{"dune.jpg", "tiny.jpg"};
  std::vector<std::string> urls;
  for (const auto& n : slow) urls.push_back(base + "/slow/" + n);
  for (const auto& n : fast) urls.push_back(base + "/photos/" + n);
  {
    WorkQueue queue(fixture_address(state), "restart");
    REQUIRE(queue.enqueue(urls).queued == 6);
  }

  const fs::path out = dir / "out";
  const fs::path config =
      write_config(dir, {{"batch_size", 1}, {"claim_idle_s", 3}, {"connect_timeout_s", 1}}, {{"max_in_flight", 1}});
  Worker w1("w1", url, "restart", out, config, dir);
  Worker w2("w2", url, "restart", out, config, dir);
  {
    WorkQueue queue(fixture_address(state), "restart");
    const bool both_hold = wait_until(20, [&] {  // each holds a slow item
      std::size_t holding = 0;
      for (const auto& c : queue.status().consumers)
        if (c.holding > 0) ++holding;
      return holding == 2;
    });
    REQUIRE(both_hold);
  }
  REQUIRE(std::system(stop.c_str()) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  REQUIRE(std::system((start + " --restart >/dev/null").c_str()) == 0);
  CHECK(redis_url(state) == url);  // the same port

  const int c1 = w1.wait();
  const int c2 = w2.wait();
  INFO("w1: " << w1.err() << "\nw2: " << w2.err());
  CHECK(c1 == 0);
  CHECK(c2 == 0);
  CHECK(w1.report()["outages"].get<int>() + w2.report()["outages"].get<int>() >= 1);
  CHECK((w1.err() + w2.err()).find("reachable again") != std::string::npos);

  WorkQueue queue(fixture_address(state), "restart");
  const QueueStatus s = queue.status();
  CHECK(s.total == 6);
  CHECK(s.done == 6);
  CHECK(s.failed == 0);
  CHECK(s.pending == 0);
  CHECK(s.in_progress == 0);
  std::vector<std::string> ok_names = slow;
  ok_names.insert(ok_names.end(), fast.begin(), fast.end());
  require_thumbnails(out, ok_names);
}

TEST_CASE("a worker streams: a slow item holds one place, the others flow past it", "[queue][redis][server]") {
  // In-process (run_worker), two places (max_in_flight 2): the slow item (20 s at the fixture's
  // 20 kB/s) holds one, the five fast ones go through the other, one after another, no batch waiting
  // for its slowest item. A stop request (pipeline.stop) then ends the worker and hands the slow one back.
  pixflow::test::TempDir dir;
  const std::string base = pixflow::test::server_url();
  const std::string queue = fresh_queue("stream");
  WorkQueue watch(fixture_address(), queue);
  const std::vector<std::string> fast{"aqua.jpg", "dune.jpg", "garden.png", "tiny.jpg", "wood.webp"};
  std::vector<std::string> urls{base + "/slow/ladybird-alpha.png"};
  for (const auto& n : fast) urls.push_back(base + "/photos/" + n);
  REQUIRE(watch.enqueue(urls).queued == 6);

  std::stop_source stop;
  WorkerOptions options;
  options.redis = fixture_address();
  options.queue = queue;
  options.consumer = "streamer";
  options.pipeline.out = dir / "out";
  options.pipeline.config.threads = 1;
  options.pipeline.config.max_in_flight = 2;
  options.pipeline.stop = stop.get_token();
  std::atomic<int> reported{0};
  options.pipeline.on_item = [&](const ItemReport&) { ++reported; };
  WorkerReport report;
  std::thread worker([&] { report = run_worker(options); });

  const bool flowed = wait_until(20, [&] {
    const QueueStatus s = watch.status();
    return s.done == fast.size() && s.in_progress == 1;
  });
  stop.request_stop();
  worker.join();
  CHECK(flowed);
  const QueueStatus s = watch.status();
  CHECK(s.done == fast.size());
  CHECK(s.failed == 0);
  CHECK(s.pending == 1);  // the slow one, handed back: cancelled is not failed
  CHECK(report.interrupted);
  CHECK(report.items == fast.size());
  CHECK(report.ok == fast.size());
  CHECK(reported >= static_cast<int>(fast.size()));  // the caller's on_item sees every item too
  require_thumbnails(dir / "out", fast);
}

TEST_CASE("a write that fails is tried again by the same worker, then fails for good", "[queue][redis][server]") {
  pixflow::test::TempDir dir;
  const std::string queue = fresh_queue("write");
  WorkQueue watch(fixture_address(), queue);
  const std::string url = pixflow::test::server_url() + "/photos/tiny.jpg";
  REQUIRE(watch.enqueue({url}).queued == 1);
  // A FIFO stands under the original's name: every write of it fails, on this machine only.
  const fs::path out = dir / "out";
  fs::create_directories(out);
  REQUIRE(mkfifo((out / "tiny.jpg").c_str(), 0644) == 0);

  WorkerOptions options;
  options.redis = fixture_address();
  options.queue = queue;
  options.consumer = "writer";
  options.exit_when_empty = true;
  options.pipeline.out = out;
  options.pipeline.config.threads = 1;
  std::mutex mutex;
  std::vector<std::string> reasons;
  options.pipeline.on_item = [&](const ItemReport& item) {
    std::lock_guard lock(mutex);
    reasons.push_back(item.reason);
  };
  const WorkerReport report = run_worker(options);
  REQUIRE(reasons.size() == 3);  // three attempts here, each reported by the pipeline
  for (const auto& r : reasons) CHECK(r == "cannot write: name taken by a fifo");
  CHECK(report.items == 1);
  CHECK(report.failed == 1);
  const QueueStatus s = watch.status();
  CHECK(s.failed == 1);
  CHECK(s.pending == 0);
  REQUIRE(s.failures.size() == 1);
  CHECK(s.failures[0].reason == "cannot write: name taken by a fifo");
}

TEST_CASE("a worker stops at its timeout_s and hands back what it holds", "[queue][redis][server]") {
  pixflow::test::TempDir dir;
  const std::string url = redis_url();
  const std::string queue = fresh_queue("timeout");
  WorkQueue watch(fixture_address(), queue);
  REQUIRE(watch.enqueue({pixflow::test::server_url() + "/slow/ladybird-alpha.png"}).queued == 1);
  // No --exit-when-empty: only the timeout (3 s) ends it, while the item (20 s) downloads.
  const fs::path config = write_config(dir, {{"claim_idle_s", 600}}, {{"timeout_s", 3}});
  pixflow::test::Process worker({pixflow::test::cli_path().string(), "worker", "--redis", url, "--queue", queue, "--out",
                                 (dir / "out").string(), "--config", config.string(), "--consumer", "timed", "--threads", "1"},
                                dir / "timed.out", dir / "timed.err");
  CHECK(worker.wait() == 1);  // stopped
  INFO(worker.err());
  const std::string out = worker.out();
  REQUIRE(out.find('{') != std::string::npos);
  const json report = json::parse(out.substr(out.find_last_of('{', out.size() - 2)));
  CHECK(report["interrupted"] == true);
  CHECK(report["items"] == 0);
  CHECK(worker.err().find("handed 1 unfinished item(s) back") != std::string::npos);
  const QueueStatus s = watch.status();
  CHECK(s.done == 0);
  CHECK(s.failed == 0);  // the timeout's cancel is not the item's failure
  CHECK(s.pending == 1);
}
