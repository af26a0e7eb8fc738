#pragma once
// Helpers of the Redis queue tests (test_queue_*.cpp): the Redis fixture's address (tests/fixtures/redis),
// fresh queue names, and the pixflow CLI run as child processes (workers killed with real signals).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pixflow/queue/address.hpp>

#include "support.hpp"

extern char** environ;

namespace pixflow::test {

/// The whole content of a text file ("" when it cannot be read).
inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The Redis URL of the fixture (tests/fixtures/redis/start.sh).
inline std::string redis_url(const std::filesystem::path& state = fixture_dir("redis")) {
  std::string url = read_text(state / "url");
  while (!url.empty() && (url.back() == '\n' || url.back() == '\r')) url.pop_back();
  if (url.empty()) throw std::runtime_error("no url in " + state.string() + ": is the redis fixture running?");
  return url;
}

/// The fixture's address, parsed.
inline pixflow::queue::RedisAddress fixture_address(const std::filesystem::path& state = fixture_dir("redis")) {
  auto address = pixflow::queue::parse_redis_url(redis_url(state));
  REQUIRE(address);
  return *address;
}

/// A queue name no other test (or earlier run) uses.
inline std::string fresh_queue(const std::string& what) {
  std::random_device rd;
  return "test-" + what + "-" + std::to_string(rd()) + std::to_string(rd());
}

/// A child process with stdout and stderr in files; killed and reaped if still running at the end.
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::filesystem::path& out, const std::filesystem::path& err) : out_(out), err_(err) {
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
  std::filesystem::path out_, err_;
};

/// Runs the CLI to the end.
struct CliRun {
  int code;
  std::string out, err;
};
inline CliRun run_cli(const std::vector<std::string>& args, const TempDir& dir) {
  static int n = 0;
  const std::string tag = std::to_string(++n);
  std::vector<std::string> argv{cli_path().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv, dir / ("cli" + tag + ".out"), dir / ("cli" + tag + ".err"));
  const int code = p.wait();
  return {code, p.out(), p.err()};
}

/// A worker process with the given name; its final JSON line is read by report().
class Worker {
 public:
  Worker(const std::string& name, const std::string& url, const std::string& queue, const std::filesystem::path& out,
         const std::filesystem::path& config, const TempDir& dir)
      : process_({cli_path().string(), "worker", "--redis", url, "--queue", queue, "--out", out.string(),
                  "--config", config.string(), "--consumer", name, "--exit-when-empty", "--threads", "1"},
                 dir / (name + ".out"), dir / (name + ".err")) {}
  int wait() { return process_.wait(); }
  void kill9() { process_.kill9(); }
  void terminate() { process_.terminate(); }
  /// The worker's own report (its last stdout line).
  nlohmann::json report() const {
    std::string text = process_.out();
    INFO("worker stdout: " << text << "\nstderr: " << process_.err());
    REQUIRE(!text.empty());
    return nlohmann::json::parse(text.substr(text.find_last_of('{', text.size() - 2)));
  }
  std::string err() const { return process_.err(); }

 private:
  Process process_;
};

/// A worker's config file: `redis` as its `/redis`, over `document` (pipeline keys such as max_in_flight).
inline std::filesystem::path write_config(const TempDir& dir, const nlohmann::json& redis,
                                          nlohmann::json document = nlohmann::json::object()) {
  const std::filesystem::path file = dir / "worker.json";
  document["redis"] = redis;
  std::ofstream(file) << document.dump();
  return file;
}

/// A URL list file, one per line.
inline std::filesystem::path write_urls(const TempDir& dir, const std::vector<std::string>& urls) {
  const std::filesystem::path file = dir / "urls.txt";
  std::ofstream out(file);
  for (const auto& u : urls) out << u << '\n';
  return file;
}

/// Polls `done` every 50 ms for at most `seconds`.
inline bool wait_until(double seconds, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

/// The thumbnails a run of `names` (photos) leaves in `out`, one 128x128 size, format same.
inline void require_thumbnails(const std::filesystem::path& out, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    const std::filesystem::path original(name);
    const std::filesystem::path thumb = out / (original.stem().string() + "_thumbnail" + original.extension().string());
    INFO(thumb);
    CHECK(std::filesystem::is_regular_file(out / name));
    CHECK(std::filesystem::is_regular_file(thumb));
    CHECK(std::filesystem::file_size(thumb) > 0);
  }
}

/// Leftover temporaries of pixflow's atomic writes in `dir`.
inline std::size_t temporaries_in(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename().string().starts_with(".pixflow-tmp-")) ++n;
  return n;
}

}  // namespace pixflow::test
