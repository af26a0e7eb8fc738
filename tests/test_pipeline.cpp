// End-to-end tests of pixflow/tasks/pipeline.hpp: run_pipeline against the real nginx fixture (gallery
// listing, URL lists, slow routes), a real folder of photos, real OpenCV decoding of what was written.
// What a gallery run must end with comes from the fixture's own $PIXFLOW_SERVER_DIR/expected.json.
#include <catch2/catch.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/output_lock.hpp"
#include "pixflow/tasks/naming.hpp"
#include "pixflow/tasks/pipeline.hpp"
#include "pixflow/tasks/report.hpp"
#include "fixtures/hostile/client.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
namespace fs = std::filesystem;
using pixflow::test::photo;
using pixflow::test::read_bytes;
using pixflow::test::server_url;
using pixflow::test::TempDir;

namespace {

/// The running fixture's state folder (server_url() first, so a fixture that is not up fails clearly).
fs::path server_dir() {
  (void)server_url();
  return fs::path(std::getenv("PIXFLOW_SERVER_DIR"));
}

/// The file nginx serves as /photos/<name> (the fixture's "-copy" files exist only there).
fs::path served_photo(const std::string& name) { return server_dir() / "www" / "photos" / name; }

/// One entry of expected.json's "items".
struct ExpectedItem {
  std::string link;
  std::string name;
  int page = 0;
  std::string album;  // "" when not in an album
  std::string type;   // the MIME type the item turns out to be (a gifv link's is video/mp4)
  std::string outcome;
  std::string reason;
  std::uintmax_t size = 0;
};

nlohmann::json expected_json() {
  const auto bytes = read_bytes(server_dir() / "expected.json");
  return nlohmann::json::parse(bytes.begin(), bytes.end());
}

/// The items a gallery report must hold, in listing order (duplicates, which are dropped, left out).
std::vector<ExpectedItem> expected_items() {
  std::vector<ExpectedItem> out;
  const nlohmann::json document = expected_json();
  for (const auto& e : document.at("items")) {
    if (e.at("outcome") == "dropped") continue;
    ExpectedItem item;
    item.link = e.at("link").get<std::string>();
    item.name = e.at("name").get<std::string>();
    item.page = e.at("page").get<int>();
    if (!e.at("album").is_null()) item.album = e.at("album").get<std::string>();
    item.type = e.at("type").get<std::string>();
    item.outcome = e.at("outcome").get<std::string>();
    if (!e.at("reason").is_null()) item.reason = e.at("reason").get<std::string>();
    item.size = e.at("size").get<std::uintmax_t>();
    out.push_back(item);
  }
  return out;
}

GallerySource fixture_gallery() {
  GalleryQuery query;
  query.api = server_url();
  query.client_id = "x";
  query.pages = 0;
  return GallerySource{query};
}

/// Every decodable photo the fixture serves, as URLs (expected.json's "urls").
std::vector<std::string> served_urls() {
  const nlohmann::json document = expected_json();
  return document.at("urls").get<std::vector<std::string>>();
}

std::string photo_url(const std::string& name) { return server_url() + "/photos/" + name; }

/// The size a picture is displayed at (EXIF orientation applied; a GIF's screen, a video's frame).
cv::Size displayed_size(const fs::path& file) {
  const auto decoded = pixflow::test::decode_file(file);
  REQUIRE(decoded);
  return {decoded->source_size.width, decoded->source_size.height};
}

/// The thumbnail name of an original with format `same`: JPEG, PNG and WebP keep theirs, a GIF's is a PNG.
std::string same_format_thumbnail(const std::string& name) {
  const std::string ext = fs::path(name).extension().string();
  // A GIF's still thumbnail is a PNG, a video's poster a JPEG (output_format).
  return fs::path(name).stem().string() + "_thumbnail" +
         (ext == ".gif" ? std::string(".png") : ext == ".mp4" ? std::string(".jpg") : ext);
}

/// A thumbnail of a `source`-sized picture fits `box` exactly on its limiting side and keeps the aspect
/// ratio within one pixel; a picture already inside the box keeps its size (no upscaling).
void check_fits(const cv::Mat& thumb, cv::Size source, Size box) {
  INFO("source " << source.width << "x" << source.height << ", box " << to_string(box) << ", thumbnail "
                 << thumb.cols << "x" << thumb.rows);
  if (source.width <= box.width && source.height <= box.height) {
    CHECK(thumb.cols == source.width);
    CHECK(thumb.rows == source.height);
    return;
  }
  const double sx = static_cast<double>(box.width) / source.width;
  const double sy = static_cast<double>(box.height) / source.height;
  CHECK(thumb.cols <= box.width);
  CHECK(thumb.rows <= box.height);
  if (sx <= sy) {
    CHECK(thumb.cols == box.width);
    CHECK(std::abs(thumb.rows - source.height * sx) <= 1.0);
  } else {
    CHECK(thumb.rows == box.height);
    CHECK(std::abs(thumb.cols - source.width * sy) <= 1.0);
  }
}

/// Decodes a written file the way a user would open it (alpha kept).
cv::Mat read_unchanged(const fs::path& file) {
  INFO(file.string());
  cv::Mat image = cv::imread(file.string(), cv::IMREAD_UNCHANGED);
  REQUIRE_FALSE(image.empty());
  return image;
}

using pixflow::test::files_in;

/// Every output the report names.
std::set<std::string> outputs_of(const PipelineReport& report) {
  std::set<std::string> names;
  for (const auto& item : report.items) names.insert(item.outputs.begin(), item.outputs.end());
  return names;
}

const ItemReport* find_item(const PipelineReport& report, const std::string& input) {
  for (const auto& item : report.items)
    if (item.input == input) return &item;
  return nullptr;
}

const pixflow::NodeReport& node(const PipelineReport& report, const std::string& name) {
  const pixflow::NodeReport* found = report.run.node(name);
  INFO("node " << name);
  REQUIRE(found != nullptr);
  return *found;
}

std::string stem_of(const std::string& name) { return fs::path(name).stem().string(); }

/// The status of every item and its reason agree with expected.json, each expected item exactly once.
void check_outcomes(const PipelineReport& report, const std::vector<ExpectedItem>& expected) {
  REQUIRE(report.items.size() == expected.size());
  for (const auto& e : expected) {
    INFO(e.link);
    const ItemReport* item = find_item(report, e.link);
    REQUIRE(item != nullptr);
    CHECK_FALSE(item->is_path);
    CHECK(name_of(item->status) == e.outcome);
    if (e.outcome == "ok")
      CHECK(item->reason.empty());
    else
      CHECK(item->reason == e.reason);
  }
}

/// The listing position of each report entry, as {page, group}, where consecutive members of one
/// album form one group (their order inside the album is free).
std::vector<std::pair<int, std::size_t>> listing_groups(const std::vector<ExpectedItem>& expected,
                                                        std::map<std::string, std::pair<int, std::size_t>>& by_link) {
  std::vector<std::pair<int, std::size_t>> groups;
  std::size_t group = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& e = expected[i];
    if (i > 0 && (e.album.empty() || e.album != expected[i - 1].album)) ++group;
    by_link[e.link] = {e.page, group};
    groups.emplace_back(e.page, group);
  }
  return groups;
}

void check_ok_outputs(const PipelineReport& report, const std::vector<ExpectedItem>& expected, const fs::path& out) {
  const Size box{128, 128};
  for (const auto& e : expected) {
    if (e.outcome != "ok") continue;
    INFO(e.link);
    const ItemReport* item = find_item(report, e.link);
    REQUIRE(item != nullptr);
    const std::string ext = fs::path(e.name).extension().string();
    const std::string thumb = same_format_thumbnail(e.name);
    REQUIRE(item->outputs == std::vector<std::string>{e.name, thumb});
    // The original, byte for byte as served (the "-copy" files exist only on the server side).
    const fs::path served = fs::exists(photo(e.name)) ? photo(e.name) : served_photo(e.name);
    CHECK(fs::file_size(out / e.name) == e.size);
    CHECK(read_bytes(out / e.name) == read_bytes(served));
    // The thumbnail: decodable, in the box, aspect kept against the displayed picture.
    const cv::Mat image = read_unchanged(out / thumb);
    check_fits(image, displayed_size(served), box);
    if (e.name == "ladybird-alpha.png") CHECK(image.channels() == 4);
    if (ext == ".jpg") CHECK(image.channels() == 3);
  }
}

}  // namespace

TEST_CASE("a gallery run ends as expected.json says, item by item, with every output in place", "[e2e][pipeline][server]") {
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  const auto expected = expected_items();
  const PipelineReport report = run_pipeline(fixture_gallery(), options);

  CHECK_FALSE(report.run.cancelled);
  CHECK(report.listing_errors.empty());
  CHECK_FALSE(report.source_unusable());
  check_outcomes(report, expected);

  // Listing order: pages in order, plain items in order, each album's members together.
  std::map<std::string, std::pair<int, std::size_t>> position;
  listing_groups(expected, position);
  std::vector<std::string> plain_expected;
  for (const auto& e : expected)
    if (e.album.empty()) plain_expected.push_back(e.link);
  std::vector<std::string> plain_seen;
  std::map<std::string, std::vector<std::size_t>> album_slots;
  int last_page = 0;
  for (std::size_t i = 0; i < report.items.size(); ++i) {
    const auto& p = position.at(report.items[i].input);
    CHECK(p.first >= last_page);
    last_page = p.first;
    bool in_album = false;
    for (const auto& e : expected)
      if (e.link == report.items[i].input && !e.album.empty()) {
        album_slots[e.album].push_back(i);
        in_album = true;
      }
    if (!in_album) plain_seen.push_back(report.items[i].input);
  }
  CHECK(plain_seen == plain_expected);
  for (const auto& [album, slots] : album_slots) {
    INFO("album " << album);
    CHECK(slots.back() - slots.front() + 1 == slots.size());
  }

  check_ok_outputs(report, expected, out.path());
  std::set<std::string> files = files_in(out.path());
  CHECK(files == outputs_of(report));

  // The upright storm photo: portrait thumbnail; tiny.jpg not upscaled.
  const cv::Mat storm = read_unchanged(out / "storm-rotated_thumbnail.jpg");
  CHECK(storm.rows == 128);
  CHECK(std::abs(storm.cols - 85) <= 1);
  const cv::Mat tiny = read_unchanged(out / "tiny_thumbnail.jpg");
  CHECK(tiny.cols == 96);
  CHECK(tiny.rows == 60);

  // Node figures.
  std::size_t ok = 0, failed = 0, skipped = 0, videos = 0;
  for (const auto& e : expected) {
    if (e.type.starts_with("video/") && e.outcome != "skipped") ++videos;
    if (e.outcome == "ok") ++ok;
    if (e.outcome == "failed") ++failed;
    if (e.outcome == "skipped") ++skipped;
  }
  CHECK(report.count(ItemStatus::ok) == ok);
  CHECK(report.count(ItemStatus::failed) == failed);
  CHECK(report.count(ItemStatus::skipped) == skipped);
  const auto pages_with_items = expected_json().at("pages_with_items").get<std::uint64_t>();
  const auto& fetch = node(report, "fetch");
  CHECK(fetch.items >= pages_with_items + 1);  // the empty page that ends the listing
  CHECK(fetch.failed == 0);
  const auto& download = node(report, "download");
  CHECK(download.items == expected.size() - skipped);
  CHECK(download.failed == 0);
  // The kind route: the videos (an mp4, a gifv's mp4, an mp4 cut short) to `poster`, every other item
  // to `decode`; the GIF cut short and the MP4 that is only an ftyp box fail there.
  const auto& decode = node(report, "decode");
  const auto& poster = node(report, "poster");
  CHECK(decode.items + poster.items == expected.size() - skipped);
  CHECK(videos == 3);
  CHECK(poster.items == videos);
  CHECK(decode.failed + poster.failed == failed);
  const auto& thumbnail = node(report, "thumbnail");
  CHECK(thumbnail.items == ok);
  CHECK(thumbnail.failed == 0);
  const auto& write = node(report, "write");
  CHECK(write.items == ok);
  CHECK(write.failed == 0);
  CHECK(write.kind == "io");  // on the disk pool: no compute worker waits on fsync
  CHECK(node(report, "record").items == ok);
  for (const char* name : {"fetch", "download", "decode", "thumbnail", "write"}) {
    INFO(name);
    CHECK(node(report, name).busy_s >= 0.0);
    CHECK(node(report, name).peak_active >= 1);
  }
  CHECK(report.run.wall_s > 0.0);
}

// The images of an album listed by its cover only (fetched from /3/album/{id}/images) stand where the
// album is listed (fixture page 1: storm, wood, album-b = dune-copy + two-wings-copy, tiny).
TEST_CASE("a gallery report is in strict listing order, albums in place", "[e2e][pipeline][server]") {
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  const auto expected = expected_items();
  const PipelineReport report = run_pipeline(fixture_gallery(), options);
  REQUIRE(report.items.size() == expected.size());
  std::map<std::string, std::pair<int, std::size_t>> position;
  const auto groups = listing_groups(expected, position);
  std::vector<std::pair<int, std::size_t>> seen;
  for (const auto& item : report.items) seen.push_back(position.at(item.input));
  CHECK(seen == groups);
}

TEST_CASE("several sizes and a forced format name and shape every thumbnail", "[e2e][pipeline][server]") {
  const std::vector<std::string> names{"aqua.jpg", "storm-rotated.jpg", "tiny.jpg", "ladybird-alpha.png", "wood.webp"};
  std::vector<std::string> urls;
  for (const auto& name : names) urls.push_back(photo_url(name));
  const std::vector<Size> boxes{{128, 128}, {300, 200}};

  SECTION("same format: each thumbnail keeps its source's format") {
    TempDir out;
    PipelineOptions options;
    options.out = out.path();
    options.config.thumbnail.sizes = boxes;
    const PipelineReport report = run_pipeline(UrlListSource{urls}, options);
    REQUIRE(report.count(ItemStatus::ok) == names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
      INFO(names[i]);
      const std::string ext = fs::path(names[i]).extension().string();
      const std::string small = stem_of(names[i]) + "_thumbnail_128x128" + ext;
      const std::string large = stem_of(names[i]) + "_thumbnail_300x200" + ext;
      CHECK(report.items[i].outputs == std::vector<std::string>{names[i], small, large});
      const cv::Size source = displayed_size(photo(names[i]));
      check_fits(read_unchanged(out / small), source, boxes[0]);
      check_fits(read_unchanged(out / large), source, boxes[1]);
    }
    CHECK(read_unchanged(out / "ladybird-alpha_thumbnail_300x200.png").channels() == 4);
    CHECK(files_in(out.path()) == outputs_of(report));
  }

  SECTION("webp: every thumbnail is a .webp, originals are kept as they are") {
    TempDir out;
    PipelineOptions options;
    options.out = out.path();
    options.config.thumbnail.sizes = boxes;
    options.config.thumbnail.format = ImageFormat::webp;
    const PipelineReport report = run_pipeline(UrlListSource{urls}, options);
    REQUIRE(report.count(ItemStatus::ok) == names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
      INFO(names[i]);
      const std::string small = stem_of(names[i]) + "_thumbnail_128x128.webp";
      const std::string large = stem_of(names[i]) + "_thumbnail_300x200.webp";
      CHECK(report.items[i].outputs == std::vector<std::string>{names[i], small, large});
      CHECK(read_bytes(out / names[i]) == read_bytes(photo(names[i])));
      const auto head = read_bytes(out / small);
      REQUIRE(head.size() > 12);
      CHECK(std::string(head.begin() + 8, head.begin() + 12) == "WEBP");
      const cv::Size source = displayed_size(photo(names[i]));
      check_fits(read_unchanged(out / small), source, boxes[0]);
      check_fits(read_unchanged(out / large), source, boxes[1]);
    }
    CHECK(read_unchanged(out / "ladybird-alpha_thumbnail_128x128.webp").channels() == 4);
  }
}

TEST_CASE("a URL list with bad entries reports each failure with its reason and does the rest", "[e2e][pipeline][server]") {
  const std::string base = server_url();
  const std::vector<std::string> urls{
      base + "/photos/aqua.jpg",
      base + "/photos/no-such-photo.jpg",
      base + "/text/page.html",
      base + "/photos/garden.png",
      base + "/corrupt/truncated.jpg",
      "file:///etc/passwd",
      base + "/redirect/dune.jpg",
      base + "/photos/wood.webp",
  };
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  const PipelineReport report = run_pipeline(UrlListSource{urls}, options);
  CHECK_FALSE(report.run.cancelled);
  REQUIRE(report.items.size() == urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i) CHECK(report.items[i].input == urls[i]);

  const auto status = [&](std::size_t i) { return report.items[i].status; };
  CHECK(status(1) == ItemStatus::failed);
  CHECK(report.items[1].reason == "http 404");
  CHECK(status(2) == ItemStatus::failed);
  CHECK(report.items[2].reason == "not an image (text/html)");
  CHECK(status(4) == ItemStatus::failed);
  CHECK(report.items[4].reason == "truncated jpeg");
  CHECK(status(5) == ItemStatus::failed);
  CHECK(report.items[5].reason == "unsupported scheme (file)");
  for (std::size_t i : {1u, 2u, 4u, 5u}) {
    INFO(urls[i]);
    CHECK_FALSE(report.items[i].stage.empty());
    CHECK(report.items[i].outputs.empty());
  }

  const std::vector<std::pair<std::size_t, std::string>> good{
      {0, "aqua.jpg"}, {3, "garden.png"}, {6, "dune.jpg"}, {7, "wood.webp"}};
  for (const auto& [i, name] : good) {
    INFO(urls[i]);
    REQUIRE(status(i) == ItemStatus::ok);
    const std::string thumb = stem_of(name) + "_thumbnail" + fs::path(name).extension().string();
    CHECK(report.items[i].outputs == std::vector<std::string>{name, thumb});
    CHECK(read_bytes(out / name) == read_bytes(photo(name)));  // the redirect delivered dune.jpg
    check_fits(read_unchanged(out / thumb), displayed_size(photo(name)), {128, 128});
  }
  CHECK(report.count(ItemStatus::ok) == good.size());
  CHECK(report.count(ItemStatus::failed) == 4);
  CHECK(files_in(out.path()) == outputs_of(report));
  const auto by_reason = report.failures_by_reason();
  CHECK(by_reason.size() == 4);
}

TEST_CASE("a folder source makes thumbnails only, reports the cut GIF as truncated and the README as skipped",
          "[e2e][pipeline]") {
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  options.save_originals = false;
  const fs::path dir = pixflow::test::fixtures_dir() / "photos";
  const PipelineReport report = run_pipeline(FolderSource{dir}, options);

  std::vector<std::string> images;  // every file of the folder is an item of the report
  for (const auto& entry : fs::directory_iterator(dir)) images.push_back(entry.path().filename().string());
  std::sort(images.begin(), images.end());
  REQUIRE(report.items.size() == images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const ItemReport& item = report.items[i];
    INFO(item.input);
    CHECK(item.is_path);
    CHECK(fs::path(item.input).filename().string() == images[i]);
    if (images[i] == "README.md") {
      CHECK(item.status == ItemStatus::skipped);
      CHECK(item.reason == "unsupported file (.md)");
      continue;
    }
    if (images[i] == "broken.gif") {
      CHECK(item.status == ItemStatus::failed);
      CHECK(item.reason == "truncated gif");
      CHECK(item.outputs.empty());
      continue;
    }
    REQUIRE(item.status == ItemStatus::ok);
    const std::string thumb = same_format_thumbnail(images[i]);
    CHECK(item.outputs == std::vector<std::string>{thumb});
    check_fits(read_unchanged(out / thumb), displayed_size(dir / images[i]), {128, 128});
  }
  const auto files = files_in(out.path());
  CHECK(files == outputs_of(report));
  for (const auto& name : images) CHECK(files.count(name) == 0);  // no originals
  CHECK(report.run.node("download") == nullptr);                  // nothing downloaded
  CHECK(node(report, "write").items == images.size() - 2);        // all but the cut GIF and the README
}

TEST_CASE("one worker thread and two give the same report and the same files", "[e2e][pipeline][server]") {
  std::vector<std::string> urls = served_urls();
  urls.push_back(server_url() + "/photos/no-such-photo.jpg");
  REQUIRE(urls.size() > 5);

  TempDir one, two;
  PipelineOptions options;
  options.out = one.path();
  options.config.threads = 1;
  const PipelineReport a = run_pipeline(UrlListSource{urls}, options);
  options.out = two.path();
  options.config.threads = 2;
  const PipelineReport b = run_pipeline(UrlListSource{urls}, options);

  REQUIRE(a.items.size() == urls.size());
  REQUIRE(b.items.size() == urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i) {
    INFO(urls[i]);
    CHECK(a.items[i].input == b.items[i].input);
    CHECK(a.items[i].status == b.items[i].status);
    CHECK(a.items[i].reason == b.items[i].reason);
    CHECK(a.items[i].outputs == b.items[i].outputs);
  }
  CHECK(a.count(ItemStatus::ok) == urls.size() - 1);
  const auto files = files_in(one.path());
  REQUIRE(files == files_in(two.path()));
  CHECK(files.size() == 2 * (urls.size() - 1));
  for (const auto& name : files) {
    INFO(name);
    CHECK(read_bytes(one / name) == read_bytes(two / name));
  }
}

TEST_CASE("on_item is called once per item, with its final status", "[e2e][pipeline][server]") {
  TempDir out;
  std::mutex mutex;
  std::map<std::string, std::vector<ItemStatus>> calls;
  PipelineOptions options;
  options.out = out.path();
  options.on_item = [&](const ItemReport& item) {
    std::lock_guard lock(mutex);
    calls[item.input].push_back(item.status);
  };
  const PipelineReport report = run_pipeline(fixture_gallery(), options);
  REQUIRE_FALSE(report.items.empty());
  std::lock_guard lock(mutex);
  CHECK(calls.size() == report.items.size());
  for (const auto& item : report.items) {
    INFO(item.input);
    REQUIRE(calls.count(item.input) == 1);
    CHECK(calls[item.input] == std::vector<ItemStatus>{item.status});
  }
}

TEST_CASE("a run timeout cancels promptly, fails the unfinished items and leaves no partial file",
          "[e2e][pipeline][server]") {
  // 20 kB/s each: most of these take seconds to arrive, far past the 0.5 s budget.
  std::vector<std::string> urls;
  const std::vector<std::string> names{"aqua.jpg", "dune.jpg", "two-wings.jpg", "garden.png", "fresh-flower.jpg",
                                       "storm-rotated.jpg", "wood.webp", "ladybird-alpha.png", "tiny.jpg", "dune-copy.jpg"};
  for (int round = 0; round < 2; ++round)
    for (const auto& name : names) urls.push_back(server_url() + "/slow/" + name);
  REQUIRE(urls.size() == 20);

  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  options.config.timeout_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const PipelineReport report = run_pipeline(UrlListSource{urls}, options);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  CHECK(elapsed < 5.0);
  CHECK(report.run.cancelled);
  CHECK(report.run.cancel_reason == "timed out after 0.5 s");
  REQUIRE(report.items.size() == urls.size());
  std::size_t cancelled = 0;
  for (const auto& item : report.items) {
    INFO(item.input);
    if (item.status == ItemStatus::ok) continue;
    CHECK(item.status == ItemStatus::failed);
    CHECK(item.reason == "timed out after 0.5 s");
    CHECK(item.outputs.empty());
    ++cancelled;
  }
  CHECK(cancelled >= 10);

  // Only whole files stand in the folder: nothing temporary, everything decodes, all of it reported.
  const auto files = files_in(out.path());
  for (const auto& name : files) {
    INFO(name);
    CHECK(name.rfind(".pixflow-tmp-", 0) == std::string::npos);
    CHECK_FALSE(cv::imread((out / name).string(), cv::IMREAD_UNCHANGED).empty());
  }
  CHECK(files == outputs_of(report));
}

TEST_CASE("max_in_flight bounds the items alive in the graph", "[e2e][pipeline][server]") {
  const std::vector<std::string> urls = served_urls();
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  options.config.max_in_flight = 2;
  const PipelineReport report = run_pipeline(UrlListSource{urls}, options);
  CHECK(report.count(ItemStatus::ok) == urls.size());
  CHECK(report.run.peak_live >= 1);
  CHECK(report.run.peak_live <= 2);
  CHECK(node(report, "download").peak_active <= 2);
  CHECK(node(report, "write").items == urls.size());
}

TEST_CASE("a custom stage between thumbnail and encode changes every thumbnail and can fail an item",
          "[e2e][pipeline][api][server]") {
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  options.config.thumbnail.sizes = {{64, 64}, {128, 128}};
  std::atomic<int> calls{0};
  options.stages.push_back({"grayscale", pixflow::Concurrency::unlimited(), [&](ThumbnailSet& set) -> pixflow::Result<void> {
                              ++calls;
                              if (set.input.find("dune.jpg") != std::string::npos) return pixflow::Failure{"dunes are not wanted"};
                              for (auto& t : set.thumbnails) {
                                cv::Mat gray;
                                cv::cvtColor(t.pixels, gray, t.pixels.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
                                cv::cvtColor(gray, t.pixels, cv::COLOR_GRAY2BGR);
                              }
                              return pixflow::ok();
                            }});
  const auto report = run_pipeline(UrlListSource{{photo_url("aqua.jpg"), photo_url("dune.jpg")}}, options);
  CHECK(calls == 2);
  REQUIRE(report.items.size() == 2);
  CHECK(report.items[0].status == ItemStatus::ok);
  CHECK(report.items[1].status == ItemStatus::failed);
  CHECK(report.items[1].stage == "grayscale");
  CHECK(report.items[1].reason == "dunes are not wanted");
  CHECK(node(report, "grayscale").items == 2);
  for (const char* name : {"aqua_thumbnail_64x64.jpg", "aqua_thumbnail_128x128.jpg"}) {
    const cv::Mat thumb = cv::imread((out.path() / name).string(), cv::IMREAD_COLOR);
    REQUIRE_FALSE(thumb.empty());
    std::vector<cv::Mat> channels;
    cv::split(thumb, channels);
    // JPEG keeps gray pixels gray within a few levels.
    CHECK(cv::norm(channels[0], channels[2], cv::NORM_INF) <= 8);
  }
}

TEST_CASE("a stop request from another thread ends the run cleanly", "[e2e][pipeline][api][server]") {
  TempDir out;
  std::vector<std::string> urls;
  for (int i = 0; i < 20; ++i) urls.push_back(server_url() + "/slow/aqua.jpg?copy=" + std::to_string(i));
  std::stop_source stop;
  PipelineOptions options;
  options.out = out.path();
  options.stop = stop.get_token();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop.request_stop();
  });
  const auto started = std::chrono::steady_clock::now();
  const auto report = run_pipeline(UrlListSource{urls}, options);
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
  CHECK(report.run.cancelled);
  CHECK(report.run.cancel_reason == "cancelled");
  CHECK(report.count(ItemStatus::failed) == urls.size());
  for (const auto& entry : fs::directory_iterator(out.path()))
    CHECK(entry.path().filename().string().rfind(".pixflow-tmp-", 0) != 0);
}

TEST_CASE("a rerun into the same folder skips what is done and thumbnails kept originals from disk",
          "[e2e][pipeline][resume][server]") {
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  const UrlListSource source{{photo_url("aqua.jpg"), photo_url("garden.png"), photo_url("wood.webp")}};
  const auto first = run_pipeline(source, options);
  REQUIRE(first.count(ItemStatus::ok) == 3);

  // garden's thumbnail is lost: only it is redone, from the original on disk.
  fs::remove(out.path() / "garden_thumbnail.png");
  const auto second = run_pipeline(source, options);
  REQUIRE(second.items.size() == 3);
  CHECK(second.items[0].status == ItemStatus::skipped);
  CHECK(second.items[0].reason == "already done");
  CHECK(second.items[1].status == ItemStatus::ok);
  CHECK(second.items[1].attempts == 0);  // not downloaded again
  CHECK(second.items[2].status == ItemStatus::skipped);
  CHECK(fs::exists(out.path() / "garden_thumbnail.png"));
  CHECK(read_bytes(out.path() / "garden.png") == read_bytes(photo("garden.png")));

  options.force = true;
  const auto forced = run_pipeline(source, options);
  CHECK(forced.count(ItemStatus::ok) == 3);
  for (const auto& item : forced.items) CHECK(item.attempts == 1);
}

TEST_CASE("a stop requested while a long list is planned ends the run before it starts, every item reported",
          "[e2e][pipeline][api]") {
  // 200,000 URLs sharing one basename: planning them was quadratic, and a stop was not looked at
  // before the graph started. Nothing is fetched (port 1 refuses anyway).
  std::vector<std::string> urls;
  constexpr std::size_t count = 200'000;
  urls.reserve(count);
  for (std::size_t i = 0; i < count; ++i) urls.push_back("http://127.0.0.1:1/a.jpg?i=" + std::to_string(i));
  TempDir out;
  std::stop_source stop;
  stop.request_stop();
  PipelineOptions options;
  options.out = out.path();
  options.stop = stop.get_token();
  const auto report = run_pipeline(UrlListSource{urls}, options);
  CHECK(report.run.cancelled);
  CHECK(report.run.cancel_reason == "cancelled");
  REQUIRE(report.items.size() == count);
  CHECK(report.count(ItemStatus::failed) == count);
  CHECK(report.items.front().input == urls.front());
  CHECK(report.items.back().input == urls.back());
  CHECK(report.items.back().reason == "cancelled");
  CHECK(report.run.wall_s > 0);
  CHECK(files_in(out.path()).empty());
}

TEST_CASE("items whose outputs are complete when the run is stopped are reported ok, not failed",
          "[e2e][pipeline][api]") {
  // 24 copies of one photo; the run is stopped once the third is done. Items whose writes ended
  // between the stop and their record step have every output on disk: they are done.
  TempDir in;
  for (int i = 0; i < 24; ++i) fs::copy_file(photo("aqua.jpg"), in / ("copy-" + std::to_string(100 + i) + ".jpg"));
  TempDir out;
  std::stop_source stop;
  std::atomic<int> done{0};
  PipelineOptions options;
  options.out = out.path();
  options.save_originals = false;
  options.stop = stop.get_token();
  options.on_item = [&](const ItemReport& item) {
    if (item.status == ItemStatus::ok && ++done == 3) stop.request_stop();
  };
  const auto report = run_pipeline(FolderSource{in.path()}, options);
  REQUIRE(report.items.size() == 24);
  const auto files = files_in(out.path());
  CHECK(files == outputs_of(report));  // every thumbnail on disk belongs to an item reported ok
  for (const auto& item : report.items) {
    INFO(item.input);
    if (item.status == ItemStatus::ok) {
      REQUIRE(item.outputs.size() == 1);
      CHECK(files.count(item.outputs[0]) == 1);
    } else {
      CHECK(item.status == ItemStatus::failed);
      CHECK(item.reason == "cancelled");
      CHECK(item.outputs.empty());
    }
  }
  CHECK(report.count(ItemStatus::ok) >= 3);
}

TEST_CASE("a folder run reports every file it does not take, and never thumbnails its own thumbnails",
          "[e2e][pipeline]") {
  TempDir dir;
  fs::copy_file(photo("aqua.jpg"), dir / "aqua.jpg");
  fs::copy_file(photo("dune.jpg"), dir / "noext");  // a JPEG without an extension: taken by its bytes
  pixflow::test::write_text(dir / "photo.heic", "not decoded here");
  pixflow::test::write_text(dir / "drawing.svg", "<svg/>");
  fs::create_symlink(dir / "gone.jpg", dir / "dangling.jpg");
  REQUIRE(::mkfifo((dir / "fifo.jpg").c_str(), 0600) == 0);
  fs::create_directory(dir / "sub");  // not an input: the listing is not recursive

  PipelineOptions options;
  options.out = dir.path();  // thumbnails beside the originals
  options.save_originals = false;
  for (int run = 0; run < 2; ++run) {
    INFO("run " << run);
    const PipelineReport report = run_pipeline(FolderSource{dir.path()}, options);
    std::map<std::string, const ItemReport*> by_name;
    for (const auto& item : report.items) by_name[fs::path(item.input).filename().string()] = &item;
    const auto reason = [&](const std::string& name) { return by_name.count(name) ? by_name[name]->reason : "(absent)"; };
    CHECK(reason("photo.heic") == "unsupported file (.heic)");
    CHECK(reason("drawing.svg") == "unsupported file (.svg)");
    CHECK(reason("dangling.jpg") == "dangling symlink");
    CHECK(reason("fifo.jpg") == "not a regular file");
    CHECK(by_name.count("sub") == 0);
    REQUIRE(by_name.count("noext") == 1);
    REQUIRE(by_name.count("aqua.jpg") == 1);
    if (run == 0) {
      CHECK(report.items.size() == 6);
      CHECK(by_name["noext"]->status == ItemStatus::ok);
      CHECK(by_name["aqua.jpg"]->status == ItemStatus::ok);
    } else {
      // The rerun finds its own outputs in the folder: they are reported, never taken as inputs.
      CHECK(report.items.size() == 8);
      CHECK(by_name["aqua.jpg"]->reason == "already done");
      CHECK(reason("aqua_thumbnail.jpg") == "pixflow output");
      CHECK(reason("noext_thumbnail.png") == "pixflow output");
    }
  }
  for (const auto& entry : fs::directory_iterator(dir.path()))
    CHECK(entry.path().filename().string().find("_thumbnail_thumbnail") == std::string::npos);
  CHECK_FALSE(fs::exists(dir / "aqua_thumbnail-2.jpg"));
}

TEST_CASE("a FIFO in OUT named like an output is never opened: the item fails with a clear reason",
          "[e2e][pipeline][server]") {
  TempDir out;
  REQUIRE(::mkfifo((out / "aqua.jpg").c_str(), 0600) == 0);
  PipelineOptions options;
  options.out = out.path();
  const auto report = run_pipeline(UrlListSource{{server_url() + "/photos/aqua.jpg"}}, options);
  REQUIRE(report.items.size() == 1);
  CHECK(report.items[0].status == ItemStatus::failed);
  CHECK(report.items[0].reason == "cannot write: name taken by a fifo");
  CHECK_THAT(report.items[0].detail, Catch::EndsWith("/aqua.jpg"));
  CHECK(fs::is_fifo(out / "aqua.jpg"));
}

TEST_CASE("a second run into an OUT in use fails at once, before anything ran", "[e2e][pipeline][server]") {
  TempDir out;
  auto held = OutputLock::acquire(out.path(), OutputLock::Mode::exclusive);
  REQUIRE(held);
  PipelineOptions options;
  options.out = out.path();
  CHECK_THROWS_WITH(run_pipeline(UrlListSource{{server_url() + "/photos/aqua.jpg"}}, options),
                    Catch::Contains("is in use by another pixflow run (pid " + std::to_string(::getpid()) + ")"));
  CHECK(files_in(out.path()).empty());
}

TEST_CASE("a stream source runs items pushed while the run goes on, reports each through on_item, keeps none",
          "[e2e][pipeline][server]") {
  TempDir out;
  const std::vector<std::string> urls = served_urls();
  REQUIRE(urls.size() >= 4);
  std::mutex mutex;
  std::map<std::string, ItemStatus> finished;
  PipelineOptions options;
  options.out = out.path();
  options.config.max_in_flight = 2;  // pushes wait for room: the producer is held back by the run
  options.on_item = [&](const ItemReport& item) {
    std::lock_guard lock(mutex);
    CHECK(finished.emplace(item.input, item.status).second);  // once per item
  };
  std::size_t most_room = 0;
  const PipelineReport report = run_pipeline(StreamSource{[&](ItemFeed& feed) {
                                               for (const auto& url : urls) {
                                                 most_room = std::max(most_room, feed.room());
                                                 CHECK(feed.push(url));
                                               }
                                               CHECK(feed.push(photo_url("missing.jpg")));
                                             }},
                                             options);
  CHECK(report.items.empty());  // a stream keeps nothing: on_item had every item
  CHECK(most_room <= 2);
  {
    std::lock_guard lock(mutex);  // not held across the run below (its on_item runs under the ledger's lock)
    CHECK(finished.size() == urls.size() + 1);
    for (const auto& url : urls) {
      INFO(url);
      CHECK(finished[url] == ItemStatus::ok);
    }
    CHECK(finished[photo_url("missing.jpg")] == ItemStatus::failed);
  }
  for (const auto& url : urls) CHECK(fs::exists(out.path() / name_from_url(url)));

  SECTION("pushed again into the same OUT, done items are skipped by the resume route") {
    std::size_t skipped = 0;
    options.on_item = [&](const ItemReport& item) { skipped += item.status == ItemStatus::skipped ? 1 : 0; };
    run_pipeline(StreamSource{[&](ItemFeed& feed) {
                   for (const auto& url : urls) feed.push(url);
                 }},
                 options);
    CHECK(skipped == urls.size());
  }
}

TEST_CASE("a stream source whose producer throws cancels the run; run_pipeline rethrows; pushes then fail",
          "[e2e][pipeline][server]") {
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  bool refused = false;
  std::stop_source stop;
  options.stop = stop.get_token();
  SECTION("a producer that throws") {
    CHECK_THROWS_WITH(run_pipeline(StreamSource{[&](ItemFeed& feed) {
                                     feed.push(photo_url("aqua.jpg"));
                                     throw std::runtime_error("queue gone");
                                   }},
                                   options),
                      "queue gone");
  }
  SECTION("a stop request: the next push is refused and the producer returns") {
    const PipelineReport report = run_pipeline(StreamSource{[&](ItemFeed& feed) {
                                                 stop.request_stop();
                                                 for (int i = 0; i < 1000 && !refused; ++i) refused = !feed.push(photo_url("aqua.jpg"));
                                               }},
                                               options);
    CHECK(refused);
    CHECK(report.run.cancelled);
  }
}

TEST_CASE("a long gallery is listed only a little ahead of the items that run: memory flat in its length", "[e2e][pipeline][server]") {
  // The hostile fixture's "long" section: 40 pages of 10 distinct links, answered at once. Listing
  // all of it takes a few ms; running 400 items takes far longer, so without back-pressure nearly
  // every item would wait listed (its Job in memory) before it runs.
  GalleryQuery query;
  query.api = pixflow::test::hostile::run_prefix();
  query.section = "long";
  query.pages = 0;
  query.client_id = "x";
  TempDir out;
  PipelineOptions options;
  options.out = out.path();
  options.config.max_in_flight = 4;
  options.config.fetch_concurrency = pixflow::Concurrency(2);
  std::mutex mutex;
  std::size_t most_ahead = 0;
  std::size_t ticks = 0;
  options.progress_interval_s = 0.005;
  options.on_progress = [&](const Progress& p) {
    std::lock_guard lock(mutex);
    most_ahead = std::max(most_ahead, p.listed - (p.ok + p.failed + p.skipped));
    ++ticks;
  };
  const PipelineReport report = run_pipeline(GallerySource{query}, options);
  CHECK(report.count(ItemStatus::ok) == 400);
  CHECK(report.listing_errors.empty());
  std::lock_guard lock(mutex);
  INFO(ticks << " progress ticks");
  // A page is asked for only while fewer than 2 x max_in_flight listed items are unfinished; then the
  // pages in flight (fetch concurrency 2) and a page the listing holds back to keep page order add
  // theirs (10 links each): a bound set by the configuration, not by the gallery's 400 items.
  CHECK(most_ahead <= 2 * 4 + 4 * 10);
  CHECK(most_ahead >= 4);  // the ticks saw the run going (all four places taken)
}
