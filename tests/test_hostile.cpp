// The pixflow CLI against the hostile server (tests/fixtures/hostile/server.py): servers that fail,
// throttle, lie and stall, bodies that are not images, names that try to escape the output folder.
// Each case asserts every item's status and reason, that every good image is done, that OUT holds no
// temporary file and exactly the files the report lists, that nothing appeared outside OUT, and that
// the stderr summary groups the failures by reason. Short timeouts keep each run to a few seconds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "fixtures/hostile/client.hpp"
#include "support.hpp"

namespace {

namespace fs = std::filesystem;
namespace hostile = pixflow::test::hostile;
using nlohmann::json;
using pixflow::test::TempDir;
using namespace std::chrono_literals;

/// The issue's hostile config: retries with a short backoff, Retry-After capped at 2 s, short timeouts.
constexpr const char* kRetryConfig =
    R"({"nodes":{"download":{"retries":2,"backoff_s":0.05,"max_retry_wait_s":2,"connect_timeout_s":2,)"
    R"("stall_timeout_s":1,"timeout_s":5,"max_bytes":10000000,"max_redirects":3}}})";
/// The same limits without the retry keys, for the cases that do not depend on retries.
constexpr const char* kLimitsConfig =
    R"({"nodes":{"download":{"connect_timeout_s":2,"stall_timeout_s":1,"timeout_s":5,"max_bytes":10000000,)"
    R"("max_redirects":3}}})";

constexpr const char* kTempPrefix = ".pixflow-tmp-";

/// One pixflow run in a scratch layout: ROOT/{urls.txt, config.json, report.json, work/out}, where
/// OUT = ROOT/work/out and the CLI runs in ROOT/work; its stdout/stderr go to another folder. So
/// anything written beside OUT (work/) or two levels up (ROOT/) is seen.
class Run {
 public:
  Run() { fs::create_directories(root_.path() / "work"); }

  [[nodiscard]] fs::path out() const { return root_.path() / "work" / "out"; }
  [[nodiscard]] const fs::path& root() const { return root_.path(); }

  /// `pixflow urls ROOT/urls.txt --out OUT --config ROOT/config.json --report ROOT/report.json`.
  void urls(const std::vector<std::string>& list, const std::string& config) {
    std::string text = "# hostile cases\n";
    for (const auto& u : list) text += u + "\n";
    hostile::write_text(root() / "urls.txt", text);
    inputs_ = {"config.json", "report.json", "urls.txt", "work"};
    run({"urls", (root() / "urls.txt").string()}, config);
  }

  /// `pixflow gallery --api API --pages 0 --out OUT --config ... --report ...`.
  void gallery(const std::string& api, const std::string& config) {
    inputs_ = {"config.json", "report.json", "work"};
    run({"gallery", "--api", api, "--pages", "0"}, config);
  }

  int exit_code = -1;
  json report;
  std::string stderr_text;
  double seconds = 0;

  [[nodiscard]] const json& item(const std::string& url) const { return hostile::item_for(report, url); }

  /// Everything every case asserts about the files: OUT holds exactly the outputs the report lists (no
  /// temporary file, no stray), each inside OUT with every name <= 255 bytes, and nothing else appeared
  /// in ROOT or ROOT/work.
  void check_files() const {
    INFO("stderr:\n" << stderr_text);
    CHECK(hostile::entries(root()) == inputs_);
    REQUIRE(fs::is_directory(out()));
    CHECK(hostile::entries(root() / "work") == std::vector<std::string>{"out"});

    std::set<std::string> listed;
    for (const auto& item : report.at("items")) {
      for (const auto& output : item.at("outputs")) {
        const fs::path rel = output.get<std::string>();
        INFO(item.value("url", "") << " -> " << rel.string());
        CHECK(rel.is_relative());
        CHECK(rel.lexically_normal() == rel);
        CHECK(rel.begin()->string() != "..");
        for (const auto& part : rel) CHECK(part.string().size() <= 255);
        CHECK(fs::is_regular_file(out() / rel));
        listed.insert(rel.lexically_normal().string());
      }
    }
    for (const auto& file : hostile::files_under(out())) {
      INFO("file in OUT: " << file.string());
      CHECK(file.filename().string().rfind(kTempPrefix, 0) == std::string::npos);
      CHECK(listed.count(file.string()) == 1);
    }
  }

  /// Every ok item: its outputs decode with OpenCV.
  void check_outputs_decode() const {
    for (const auto& item : report.at("items")) {
      if (item.value("status", "") != "ok") continue;
      CHECK_FALSE(item.at("outputs").empty());
      for (const auto& output : item.at("outputs")) {
        INFO(output.get<std::string>());
        CHECK_FALSE(cv::imread((out() / output.get<std::string>()).string(), cv::IMREAD_UNCHANGED).empty());
      }
    }
  }

  /// The stderr summary groups failures by reason: one line per reason with its count ("failed ×2: ...").
  void check_summary() const {
    std::map<std::string, std::size_t> by_reason;
    for (const auto& item : report.at("items"))
      if (item.value("status", "") == "failed") ++by_reason[item.value("reason", "")];
    for (const auto& [reason, n] : by_reason) {
      INFO("reason: " << reason << " ×" << n << "\nstderr:\n" << stderr_text);
      std::size_t lines = 0;
      std::size_t pos = 0;
      while (pos < stderr_text.size()) {
        const std::size_t end = std::min(stderr_text.find('\n', pos), stderr_text.size());
        const std::string line = stderr_text.substr(pos, end - pos);
        if (line.find(reason) != std::string::npos && line.find("×" + std::to_string(n)) != std::string::npos) ++lines;
        pos = end + 1;
      }
      CHECK(lines == 1);
    }
  }

 private:
  void run(std::vector<std::string> args, const std::string& config) {
    hostile::write_text(root() / "config.json", config);
    std::vector<std::string> argv{pixflow::test::cli_path().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const char* a : {"--out", "", "--config", "", "--report", ""}) argv.emplace_back(a);
    argv[argv.size() - 5] = out().string();
    argv[argv.size() - 3] = (root() / "config.json").string();
    argv[argv.size() - 1] = (root() / "report.json").string();
    const auto start = std::chrono::steady_clock::now();
    hostile::Child cli(argv, root() / "work", logs_ / "stdout.txt", logs_ / "stderr.txt");
    exit_code = cli.wait(90s);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    stderr_text = hostile::read_text(logs_ / "stderr.txt");
    INFO("stderr:\n" << stderr_text);
    REQUIRE(fs::is_regular_file(root() / "report.json"));
    report = json::parse(hostile::read_text(root() / "report.json"));
  }

  TempDir root_;
  TempDir logs_;
  std::vector<std::string> inputs_;
};

enum class Match { exact, starts_with, contains };

/// Checks one item's status and reason.
void expect(const Run& run, const std::string& url, const std::string& status, const std::string& reason = "",
            Match match = Match::exact) {
  const json& item = run.item(url);
  INFO(url << ": " << item.dump());
  CHECK(item.value("status", "") == status);
  if (status == "ok") return;
  const std::string got = item.value("reason", "");
  switch (match) {
    case Match::exact: CHECK(got == reason); break;
    case Match::starts_with: CHECK(got.rfind(reason, 0) == 0); break;
    case Match::contains: CHECK(got.find(reason) != std::string::npos); break;
  }
}

/// The report's attempts for `url` (-1 when absent).
long attempts(const Run& run, const std::string& url) { return run.item(url).value("attempts", -1L); }

/// Seconds between consecutive requests of `url` on the server.
std::vector<double> gaps(const json& stats, const std::string& url) {
  std::vector<double> out;
  const auto& times = stats.at("times");
  const auto it = times.find(hostile::path_of(url));
  if (it == times.end()) return out;
  for (std::size_t i = 1; i < it->size(); ++i) out.push_back((*it)[i].get<double>() - (*it)[i - 1].get<double>());
  return out;
}

/// The one output of an ok item whose bytes equal `source` (its original); "" when none or several.
std::string original_of(const Run& run, const std::string& url, const fs::path& source) {
  const auto expected = pixflow::test::read_bytes(source);
  std::string found;
  int matches = 0;
  for (const auto& output : run.item(url).at("outputs")) {
    const auto rel = output.get<std::string>();
    if (pixflow::test::read_bytes(run.out() / rel) == expected) {
      found = rel;
      ++matches;
    }
  }
  return matches == 1 ? found : "";
}

}  // namespace

TEST_CASE("hostile: failing, throttled, lying and endless transfers", "[hostile][server]") {
  const std::string base = hostile::run_prefix();
  const std::string not_found = base + "/status/404/missing.jpg";
  const std::string flaky = base + "/flaky/flaky-aqua.jpg";
  const std::string throttled = base + "/throttle/throttled-dune.jpg";
  const std::string unavailable = base + "/unavailable/busy.jpg";
  const std::string lying = base + "/lie/lying-aqua.jpg";
  const std::string huge = base + "/huge/huge.jpg";
  const std::string endless = base + "/endless/endless.jpg";
  const std::string loop = base + "/loop/loop.jpg";
  const std::string redirect = base + "/redirect/garden.png";
  const std::string good_jpeg = base + "/photos/aqua.jpg";
  const std::string good_webp = base + "/photos/wood.webp";
  const std::string file_url = "file:///etc/passwd";

  Run run;
  run.urls({not_found, flaky, throttled, unavailable, lying, huge, endless, loop, redirect, good_jpeg, good_webp,
            file_url},
           kRetryConfig);
  const json stats = hostile::stats(base);
  INFO("stderr:\n" << run.stderr_text << "\nserver: " << stats.dump());
  CHECK(run.exit_code == 1);
  CHECK(run.seconds < 60);
  REQUIRE(run.report.at("items").size() == 12);

  // Final 4xx: one attempt, never retried.
  expect(run, not_found, "failed", "http 404");
  CHECK(attempts(run, not_found) == 1);
  CHECK(hostile::count_of(stats, "requests", not_found) == 1);
  // A 5xx is retried: the second attempt works.
  expect(run, flaky, "ok");
  CHECK(attempts(run, flaky) == 2);
  CHECK(hostile::count_of(stats, "requests", flaky) == 2);
  // 429 honours Retry-After: 1 before trying again.
  expect(run, throttled, "ok");
  CHECK(attempts(run, throttled) == 2);
  CHECK(hostile::count_of(stats, "requests", throttled) == 2);
  for (double gap : gaps(stats, throttled)) CHECK(gap >= 0.9);
  // 503 forever: 1 + retries attempts, each after Retry-After (1 s, under the 2 s cap).
  expect(run, unavailable, "failed", "http 503");
  CHECK(attempts(run, unavailable) == 3);
  CHECK(hostile::count_of(stats, "requests", unavailable) == 3);
  for (double gap : gaps(stats, unavailable)) CHECK(gap >= 0.9);
  // Bodies that lie or never end (a body that stalls: the next test case).
  expect(run, lying, "failed", "truncated body");
  expect(run, huge, "failed", "too large", Match::starts_with);
  expect(run, endless, "failed", "too large", Match::starts_with);
  // Redirects: a loop is cut at max_redirects, a redirect to a good image is followed.
  expect(run, loop, "failed", "too many redirects");
  expect(run, redirect, "ok");
  CHECK(original_of(run, redirect, pixflow::test::photo("garden.png")) == "garden.png");
  // Only http/https: a file:// URL is never opened.
  expect(run, file_url, "failed", "unsupported scheme (file)");
  for (const auto& [path, n] : stats.at("requests").items()) CHECK(path.find("passwd") == std::string::npos);

  // Every good image is done, its original byte-identical to the photo served.
  expect(run, good_jpeg, "ok");
  expect(run, good_webp, "ok");
  CHECK_FALSE(original_of(run, good_jpeg, pixflow::test::photo("aqua.jpg")).empty());
  CHECK_FALSE(original_of(run, good_webp, pixflow::test::photo("wood.webp")).empty());
  CHECK_FALSE(original_of(run, flaky, pixflow::test::photo("aqua.jpg")).empty());
  CHECK_FALSE(original_of(run, throttled, pixflow::test::photo("dune.jpg")).empty());
  // Failed items leave nothing behind.
  for (const auto& item : run.report.at("items"))
    if (item.value("status", "") == "failed") CHECK(item.at("outputs").empty());

  run.check_files();
  run.check_outputs_decode();
  run.check_summary();
}

// Stall detection counts from the last byte received (libcurl's LOW_SPEED check averages over ~5 s, so
// with stall_timeout_s 1 and timeout_s 5 it used to end "timed out" instead).
TEST_CASE("hostile: a body that stalls halfway", "[hostile][server]") {
  const std::string base = hostile::run_prefix();
  const std::string stalled = base + "/stall/stalled-two-wings.jpg";  // half, then 8 s of nothing
  const std::string good = base + "/photos/tiny.jpg";

  Run run;
  run.urls({stalled, good}, kRetryConfig);
  const json stats = hostile::stats(base);
  INFO("stderr:\n" << run.stderr_text << "\nserver: " << stats.dump());
  CHECK(run.exit_code == 1);
  REQUIRE(run.report.at("items").size() == 2);
  expect(run, stalled, "failed", "stalled", Match::starts_with);
  CHECK(run.item(stalled).at("outputs").empty());
  // A stall is retried like a timeout: 1 + retries attempts at most, each cut after ~1 s of silence.
  CHECK(hostile::count_of(stats, "requests", stalled) >= 1);
  CHECK(hostile::count_of(stats, "requests", stalled) <= 3);
  for (double gap : gaps(stats, stalled)) CHECK(gap < 4.0);
  expect(run, good, "ok");
  CHECK(original_of(run, good, pixflow::test::photo("tiny.jpg")) == "tiny.jpg");
  run.check_files();
  run.check_outputs_decode();
  run.check_summary();
}

// A server that accepts and never answers used to hold each attempt for the whole timeout_s (the stall
// timer started with the first response byte), and a body of one byte a second never stalled: both ran
// to timeout_s, 120 s x 4 attempts with the defaults. Now the header timeout and the minimum speed end
// each attempt after a second or two here, with reasons of their own, and they are retried like a stall.
TEST_CASE("hostile: a server that never answers, and one that trickles a byte a second", "[hostile][server]") {
  const std::string base = hostile::run_prefix();
  const std::string mute = base + "/mute/mute-aqua.jpg";          // reads the request, then silence
  const std::string trickle = base + "/trickle/trickle-dune.jpg";  // headers, then 1 byte/s
  const std::string good = base + "/photos/tiny.jpg";
  // kRetryConfig (2 retries, timeout_s 8) with a 1 s header timeout; min_speed_bytes_s stays 1024. The
  // speed window (stall_timeout_s) is 2 s: with 1 s, a byte a second would race the stall check.
  const std::string config =
      R"({"nodes":{"download":{"retries":2,"backoff_s":0.05,"max_retry_wait_s":2,"connect_timeout_s":2,)"
      R"("header_timeout_s":1,"stall_timeout_s":2,"timeout_s":8,"max_bytes":10000000,"max_redirects":3}}})";

  Run run;
  run.urls({mute, trickle, good}, config);
  const json stats = hostile::stats(base);
  INFO("stderr:\n" << run.stderr_text << "\nserver: " << stats.dump());
  CHECK(run.exit_code == 1);
  REQUIRE(run.report.at("items").size() == 3);
  expect(run, mute, "failed", "no response (header timeout 1 s)");
  expect(run, trickle, "failed", "too slow (under 1024 B/s for 2 s)");
  for (const std::string& url : {mute, trickle}) {
    INFO(url);
    CHECK(attempts(run, url) == 3);
    CHECK(hostile::count_of(stats, "requests", url) == 3);
    CHECK(hostile::count_of(stats, "completed", url) == 0);
    // Each attempt ends after ~1 s (no response) or one to two windows of 2 s (too slow), before timeout_s.
    for (double gap : gaps(stats, url)) CHECK(gap < 6.0);
    CHECK(run.item(url).at("outputs").empty());
  }
  expect(run, good, "ok");
  CHECK(original_of(run, good, pixflow::test::photo("tiny.jpg")) == "tiny.jpg");
  run.check_files();
  run.check_outputs_decode();
  run.check_summary();
}

TEST_CASE("hostile: 200 answers whose body is not an image", "[hostile][server]") {
  const std::string base = hostile::run_prefix();
  const std::string html = base + "/html/page.jpg";
  const std::string empty = base + "/empty/nothing.jpg";
  const std::string garbage = base + "/garbage/garbage.jpg";
  const std::string good = base + "/photos/dune.jpg";

  Run run;
  run.urls({html, empty, garbage, good}, kLimitsConfig);
  INFO("stderr:\n" << run.stderr_text);
  CHECK(run.exit_code == 1);
  REQUIRE(run.report.at("items").size() == 4);
  expect(run, html, "failed", "not an image (text/html)");
  expect(run, empty, "failed", "empty body");
  expect(run, garbage, "failed", "corrupt", Match::contains);
  expect(run, good, "ok");
  CHECK(original_of(run, good, pixflow::test::photo("dune.jpg")) == "dune.jpg");
  for (const auto& item : run.report.at("items"))
    if (item.value("status", "") == "failed") CHECK(item.at("outputs").empty());
  run.check_files();
  run.check_outputs_decode();
  run.check_summary();
}

TEST_CASE("hostile: names from URLs stay inside OUT, bounded and distinct", "[hostile][server]") {
  const std::string base = hostile::run_prefix();
  const std::string climb = base + "/x/%2e%2e%2f%2e%2e%2fevil.jpg";  // "../../evil.jpg" once decoded
  const std::string slashes = base + "/x/..%2F..%2Fwork%2Fescape.jpg";
  const std::string control = base + "/x/bad%00nul%0a%01name.jpg";
  const std::string long_name = base + "/long/" + std::string(296, 'n') + ".jpg";  // 300 characters
  const std::string same_a = base + "/a/same.jpg";                                // aqua.jpg
  const std::string same_b = base + "/b/same.jpg";                                // dune.jpg
  const std::string case_a = base + "/a/Case.jpg";                                // aqua.jpg
  const std::string case_b = base + "/b/case.jpg";                                // dune.jpg
  const std::string query = base + "/photos/tiny.jpg?name=../../q.jpg&x=1";

  Run run;
  run.urls({climb, slashes, control, long_name, same_a, same_b, case_a, case_b, query}, kLimitsConfig);
  INFO("stderr:\n" << run.stderr_text);
  CHECK(run.exit_code == 0);
  REQUIRE(run.report.at("items").size() == 9);
  for (const auto& item : run.report.at("items")) {
    INFO(item.dump());
    CHECK(item.value("status", "") == "ok");
  }

  const fs::path aqua = pixflow::test::photo("aqua.jpg");
  const fs::path dune = pixflow::test::photo("dune.jpg");
  // Each original, byte-identical to its source, under a name of its own.
  const std::vector<std::pair<std::string, fs::path>> sources{
      {climb, aqua}, {slashes, aqua}, {control, aqua}, {long_name, aqua}, {same_a, aqua},
      {same_b, dune}, {case_a, aqua}, {case_b, dune}, {query, pixflow::test::photo("tiny.jpg")}};
  std::set<std::string> originals;
  for (const auto& [url, source] : sources) {
    INFO(url);
    const std::string original = original_of(run, url, source);
    CHECK_FALSE(original.empty());
    CHECK(original.find('/') == std::string::npos);
    CHECK(original.find('\n') == std::string::npos);
    CHECK(original.find('\x01') == std::string::npos);
    CHECK(original.rfind('.', 0) == std::string::npos);  // no hidden file, no ".."
    CHECK(original.size() <= 255);
    originals.insert(original);
  }
  CHECK(originals.size() == sources.size());
  CHECK(original_of(run, query, pixflow::test::photo("tiny.jpg")) == "tiny.jpg");

  // Distinct even on a case-insensitive filesystem: no two outputs differ only by case.
  std::set<std::string> folded;
  std::size_t outputs = 0;
  for (const auto& item : run.report.at("items"))
    for (const auto& output : item.at("outputs")) {
      std::string name = output.get<std::string>();
      std::transform(name.begin(), name.end(), name.begin(),
                     [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
      folded.insert(name);
      ++outputs;
    }
  CHECK(folded.size() == outputs);

  // Nothing reached the folders above OUT (checked by check_files) nor the system temp folder.
  CHECK_FALSE(fs::exists(run.root() / "evil.jpg"));
  CHECK_FALSE(fs::exists(run.root() / "work" / "escape.jpg"));
  run.check_files();
  run.check_outputs_decode();
  run.check_summary();
}

TEST_CASE("hostile: a gallery whose first page answers 429 first", "[hostile][server]") {
  const std::string base = hostile::run_prefix();
  Run run;
  run.gallery(base, kRetryConfig);
  const json stats = hostile::stats(base);
  INFO("stderr:\n" << run.stderr_text << "\nserver: " << stats.dump());
  CHECK(run.exit_code == 0);
  CHECK(run.report.at("listing_errors").empty());
  // Page 0 asked twice, the second time after Retry-After; then pages 1 and 2 (empty: the end).
  const std::string page0 = base + "/3/gallery/hot/viral/0.json";
  CHECK(hostile::count_of(stats, "requests", page0) == 2);
  for (double gap : gaps(stats, page0)) CHECK(gap >= 0.9);

  // Every listed image is done, each original byte-identical to the photo.
  const std::vector<std::string> listed{"aqua.jpg",     "dune.jpg",          "garden.png", "ladybird-alpha.png",
                                        "fresh-flower.jpg", "two-wings.jpg", "storm-rotated.jpg", "wood.webp",
                                        "tiny.jpg"};
  REQUIRE(run.report.at("items").size() == listed.size());
  for (const auto& name : listed) {
    const std::string url = base + "/photos/" + name;
    expect(run, url, "ok");
    CHECK(original_of(run, url, pixflow::test::photo(name)) == name);
    CHECK(hostile::count_of(stats, "requests", url) == 1);
  }
  run.check_files();
  run.check_outputs_decode();
  run.check_summary();
}
