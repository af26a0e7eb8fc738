// Kill-and-resume: `pixflow urls` over ~30 slowed-down images (the hostile server's /slow/ route) is
// killed with SIGKILL part way, then rerun into the same OUT. The rerun must finish every item, download
// only what is missing (counted on the server), leave no temporary file and no corrupt file; `--force`
// then redoes everything.
#include <catch2/catch.hpp>

#include <cstdio>

#include <signal.h>  // SIGKILL

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "fixtures/hostile/client.hpp"
#include "pixflow/tasks/image_types.hpp"
#include "pixflow/tasks/naming.hpp"
#include "support.hpp"

namespace {

namespace fs = std::filesystem;
namespace hostile = pixflow::test::hostile;
using nlohmann::json;
using pixflow::test::TempDir;
using namespace std::chrono_literals;

constexpr std::size_t kItems = 30;
constexpr std::size_t kTransfers = 4;  // download concurrency: bounds what is mid-transfer at the kill

/// Few transfers at once, so the kill lands part way through a run of ~2-3 s.
const std::string kConfig = R"({"nodes":{"download":{"concurrency":)" + std::to_string(kTransfers) +
                            R"(,"per_host":)" + std::to_string(kTransfers) +
                            R"(,"connect_timeout_s":2,"stall_timeout_s":2,"timeout_s":10}}})";

const std::vector<std::string> kPhotos{"aqua.jpg",      "dune.jpg",          "fresh-flower.jpg",
                                       "two-wings.jpg", "storm-rotated.jpg", "garden.png",
                                       "ladybird-alpha.png", "wood.webp",    "tiny.jpg"};

struct Item {
  std::string url;
  std::string original;   ///< its file name in OUT ("07-aqua.jpg")
  std::string thumbnail;  ///< its 128x128 thumbnail's name
  fs::path source;        ///< the photo the server sends for it
};

std::vector<Item> make_items(const std::string& base) {
  std::vector<Item> items;
  for (std::size_t i = 0; i < kItems; ++i) {
    const std::string& photo = kPhotos[i % kPhotos.size()];
    char number[8];
    std::snprintf(number, sizeof number, "%02zu-", i);  // not "0" + ...: GCC 12 -O2 -Wrestrict (PR105651)
    const std::string name = number + photo;
    const auto format = pixflow::tasks::parse_format(fs::path(photo).extension().string().substr(1));
    REQUIRE(format.has_value());
    items.push_back({base + "/slow/" + name, name,
                     pixflow::tasks::thumbnail_name(name, pixflow::tasks::Size{128, 128}, false, *format),
                     pixflow::test::photo(photo)});
  }
  return items;
}

/// The OUT folder has no temporary file, and every file in it decodes.
void check_out_folder(const fs::path& out) {
  for (const auto& file : hostile::files_under(out)) {
    INFO(file.string());
    CHECK(file.filename().string().rfind(".pixflow-tmp-", 0) == std::string::npos);
    CHECK_FALSE(cv::imread((out / file).string(), cv::IMREAD_UNCHANGED).empty());
  }
}

/// Every item is done: its original byte-identical to the photo, its thumbnail present.
void check_all_done(const fs::path& out, const std::vector<Item>& items) {
  for (const auto& item : items) {
    INFO(item.url);
    REQUIRE(fs::is_regular_file(out / item.original));
    const bool identical = pixflow::test::read_bytes(out / item.original) == pixflow::test::read_bytes(item.source);
    CHECK(identical);
    CHECK(fs::is_regular_file(out / item.thumbnail));
  }
}

}  // namespace

TEST_CASE("resume: a run killed with SIGKILL, rerun, finishes with only the missing downloads", "[resume][server]") {
  const std::string base = hostile::run_prefix();
  const std::vector<Item> items = make_items(base);
  TempDir root;
  TempDir logs;
  const fs::path out = root / "out";
  const fs::path list = root / "urls.txt";
  const fs::path config = root / "config.json";
  const fs::path report_file = root / "report.json";
  std::string text;
  for (const auto& item : items) text += item.url + "\n";
  hostile::write_text(list, text);
  hostile::write_text(config, kConfig);
  const std::vector<std::string> command{pixflow::test::cli_path().string(), "urls",       list.string(),
                                         "--out",                           out.string(), "--config",
                                         config.string(),                   "--report",   report_file.string()};

  // 1. Start, and kill -9 once the server has sent ~10 images.
  {
    hostile::Child first(command, root.path(), logs / "first.out", logs / "first.err");
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    long completed = 0;
    while (completed < 10 && !first.exited() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      completed = hostile::total_of(hostile::stats(base), "completed");
    }
    INFO("stderr of the first run:\n" << hostile::read_text(logs / "first.err"));
    REQUIRE_FALSE(first.exited());  // it must still be running: the kill has to land part way
    REQUIRE(completed >= 10);
    first.kill_now();  // kill(pid, SIGKILL), then reap
    CHECK(first.exit_code() == 128 + SIGKILL);
  }
  const json after_kill = hostile::stats(base);
  std::map<std::string, bool> had_original;
  std::size_t originals = 0;
  for (const auto& item : items) {
    had_original[item.url] = fs::is_regular_file(out / item.original);
    if (had_original[item.url]) ++originals;
  }
  INFO("originals on disk after the kill: " << originals);
  CHECK(originals < kItems);  // the kill really interrupted the run

  // 2. The same command again: exit 0, every item ok or skipped as already done.
  hostile::Child second(command, root.path(), logs / "second.out", logs / "second.err");
  const int code = second.wait(90s);
  const std::string second_err = hostile::read_text(logs / "second.err");
  INFO("stderr of the rerun:\n" << second_err);
  CHECK(code == 0);
  REQUIRE(fs::is_regular_file(report_file));
  const json report = json::parse(hostile::read_text(report_file));
  REQUIRE(report.at("items").size() == kItems);
  std::size_t skipped = 0;
  for (const auto& item : items) {
    const json& entry = hostile::item_for(report, item.url);
    INFO(entry.dump());
    const std::string status = entry.value("status", "");
    CHECK((status == "ok" || status == "skipped"));
    if (status == "skipped") {
      CHECK(entry.value("reason", "") == "already done");
      ++skipped;
    }
  }
  CHECK(skipped > 0);

  // The server saw only the missing downloads: an image whose original was on disk is not downloaded
  // again (its thumbnails, if missing, come from the file), one whose original was missing exactly once.
  const json after_rerun = hostile::stats(base);
  std::size_t twice = 0;
  for (const auto& item : items) {
    INFO(item.url << (had_original[item.url] ? " (original on disk)" : " (original missing)"));
    const long before = hostile::count_of(after_kill, "requests", item.url);
    const long rerun = hostile::count_of(after_rerun, "requests", item.url) - before;
    CHECK(rerun == (had_original[item.url] ? 0 : 1));
    CHECK(before + rerun >= 1);
    if (before + rerun > 1) ++twice;
  }
  // Downloaded twice across both runs: only those mid-transfer (or sent but not yet written) at the kill.
  CHECK(twice <= 2 * kTransfers);

  check_all_done(out, items);
  check_out_folder(out);

  // 3. --force redoes everything: every image downloaded once more, every item ok.
  std::vector<std::string> forced = command;
  forced.emplace_back("--force");
  hostile::Child third(forced, root.path(), logs / "third.out", logs / "third.err");
  const int forced_code = third.wait(90s);
  INFO("stderr of the --force run:\n" << hostile::read_text(logs / "third.err"));
  CHECK(forced_code == 0);
  const json forced_report = json::parse(hostile::read_text(report_file));
  REQUIRE(forced_report.at("items").size() == kItems);
  for (const auto& entry : forced_report.at("items")) {
    INFO(entry.dump());
    CHECK(entry.value("status", "") == "ok");
  }
  const json after_force = hostile::stats(base);
  for (const auto& item : items) {
    INFO(item.url);
    CHECK(hostile::count_of(after_force, "requests", item.url) - hostile::count_of(after_rerun, "requests", item.url) == 1);
  }
  check_all_done(out, items);
  check_out_folder(out);
  // Nothing but OUT and the inputs appeared beside OUT.
  CHECK(hostile::entries(root.path()) == std::vector<std::string>{"config.json", "out", "report.json", "urls.txt"});
}
