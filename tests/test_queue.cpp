// The Redis scale-out (queue.hpp) against a real redis-server (tests/fixtures/redis) and the pixflow CLI
// run as worker processes, images from the nginx fixture. Worker crashes are real `kill -9`s and the
// Redis restart is a real shutdown and start of the same server on the same port.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pixflow/tasks/queue.hpp>

#include "support.hpp"

extern char** environ;

namespace {

using namespace pixflow::tasks;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The Redis URL of the fixture (tests/fixtures/redis/start.sh).
std::string redis_url(const fs::path& state = pixflow::test::fixture_dir("redis")) {
  std::string url = read_text(state / "url");
  while (!url.empty() && (url.back() == '\n' || url.back() == '\r')) url.pop_back();
  if (url.empty()) throw std::runtime_error("no url in " + state.string() + ": is the redis fixture running?");
  return url;
}

RedisAddress fixture_address(const fs::path& state = pixflow::test::fixture_dir("redis")) {
  auto address = parse_redis_url(redis_url(state));
  REQUIRE(address);
  return *address;
}

/// A queue name no other test (or earlier run) uses.
std::string fresh_queue(const std::string& what) {
  std::random_device rd;
  return "test-" + what + "-" + std::to_string(rd()) + std::to_string(rd());
}

/// A child process with stdout and stderr in files; killed and reaped if still running at the end.
class Process {
 public:
  Process(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) : out_(out), err_(err) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  }
  ~Process() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// The exit code (128 + signal when killed by one).
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void kill9() {
    kill(pid_, SIGKILL);
    wait();
  }
  void terminate() { kill(pid_, SIGTERM); }
  [[nodiscard]] std::string out() const { return read_text(out_); }
  [[nodiscard]] std::string err() const { return read_text(err_); }

 private:
  pid_t pid_ = -1;
  fs::path out_, err_;
};

/// Runs the CLI to the end.
struct CliRun {
  int code;
  std::string out, err;
};
CliRun run_cli(const std::vector<std::string>& args, const pixflow::test::TempDir& dir) {
  static int n = 0;
  const std::string tag = std::to_string(++n);
  std::vector<std::string> argv{pixflow::test::cli_path().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv, dir / ("cli" + tag + ".out"), dir / ("cli" + tag + ".err"));
  const int code = p.wait();
  return {code, p.out(), p.err()};
}

/// A worker process with the given name; its final JSON line is read by report().
class Worker {
 public:
  Worker(const std::string& name, const std::string& url, const std::string& queue, const fs::path& out,
         const fs::path& config, const pixflow::test::TempDir& dir)
      : process_({pixflow::test::cli_path().string(), "worker", "--redis", url, "--queue", queue, "--out", out.string(),
                  "--config", config.string(), "--consumer", name, "--exit-when-empty", "--threads", "1"},
                 dir / (name + ".out"), dir / (name + ".err")) {}
  int wait() { return process_.wait(); }
  void kill9() { process_.kill9(); }
  void terminate() { process_.terminate(); }
  /// The worker's own report (its last stdout line).
  json report() const {
    std::string text = process_.out();
    INFO("worker stdout: " << text << "\nstderr: " << process_.err());
    REQUIRE(!text.empty());
    return json::parse(text.substr(text.find_last_of('{', text.size() - 2)));
  }
  std::string err() const { return process_.err(); }

 private:
  Process process_;
};

fs::path write_config(const pixflow::test::TempDir& dir, const json& redis) {
  const fs::path file = dir / "worker.json";
  std::ofstream(file) << json{{"redis", redis}}.dump();
  return file;
}

fs::path write_urls(const pixflow::test::TempDir& dir, const std::vector<std::string>& urls) {
  const fs::path file = dir / "urls.txt";
  std::ofstream out(file);
  for (const auto& u : urls) out << u << '\n';
  return file;
}

/// Polls `done` every 50 ms for at most `seconds`.
bool wait_until(double seconds, const std::function<bool()>& done) {
  const auto until = Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

/// The thumbnails a run of `names` (photos) leaves in `out`, one 128x128 size, format same.
void require_thumbnails(const fs::path& out, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    const fs::path original(name);
    const fs::path thumb = out / (original.stem().string() + "_thumbnail" + original.extension().string());
    INFO(thumb);
    CHECK(fs::is_regular_file(out / name));
    CHECK(fs::is_regular_file(thumb));
    CHECK(fs::file_size(thumb) > 0);
  }
}

std::size_t temporaries_in(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().starts_with(".pixflow-tmp-")) ++n;
  return n;
}

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
  urls.push_back(base + "/photos/animation.gif");
  urls.push_back(base + "/photos/missing.jpg");

  const auto enqueued = run_cli({"enqueue", "--redis", url, "--queue", queue, "urls", write_urls(dir, urls).string()}, dir);
  INFO(enqueued.err);
  REQUIRE(enqueued.code == 0);
  CHECK(enqueued.out.find("queued 11 items") != std::string::npos);

  const fs::path out = dir / "out";
  const fs::path config = write_config(dir, {{"batch_size", 2}, {"claim_idle_s", 5}});
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
  CHECK(s["failures"][0]["reason"] == "unsupported format (gif)");
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
  urls.push_back(base + "/photos/animation.gif");
  WorkQueue watch(fixture_address(), queue);
  REQUIRE(watch.enqueue(urls).queued == 9);

  const fs::path out = dir / "out";
  const fs::path config = write_config(dir, {{"batch_size", 1}, {"claim_idle_s", 1}});
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
  CHECK(s.failed == 1);  // the GIF, for its own reason
  REQUIRE(s.failures.size() == 1);
  CHECK(s.failures[0].reason == "unsupported format (gif)");
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
  const fs::path config = write_config(dir, {{"batch_size", 3}, {"claim_idle_s", 600}});
  Worker first("first", url, queue, out, config, dir);
  REQUIRE(wait_until(20, [&] { return watch.status().done == 1; }));  // tiny.jpg; the slow two are held
  first.terminate();
  CHECK(first.wait() == 1);  // stopped
  const json stopped = first.report();
  CHECK(stopped["interrupted"] == true);
  CHECK(stopped["items"] == 1);
  CHECK(first.err().find("handed 2 unfinished item(s) back") != std::string::npos);
  const QueueStatus held = watch.status();
  CHECK(held.pending == 2);
  CHECK(held.failed == 0);  // a cancelled item is not a failed one

  // claim_idle_s is 10 minutes, yet the next worker takes them over at once.
  Worker second("second", url, queue, out, config, dir);
  CHECK(second.wait() == 0);
  CHECK(second.report()["reclaimed"] == 2);
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
  const fs::path config = write_config(dir, {{"batch_size", 1}, {"claim_idle_s", 3}, {"connect_timeout_s", 1}});
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
