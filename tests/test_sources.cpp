// Tests for pixflow/tasks/sources.hpp: URL lists (comments, blanks, CRLF) and image folders (order,
// filters, errors), on real files in a scratch folder.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <sstream>
#include <string>
#include <vector>

#include "pixflow/tasks/sources.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<std::string> names(const std::vector<fs::path>& files) {
  std::vector<std::string> out;
  for (const auto& file : files) out.push_back(file.filename().string());
  return out;
}

}  // namespace

TEST_CASE("a URL list skips comments and blank lines and trims whitespace and CRLF", "[sources]") {
  std::istringstream in(
      "\xEF\xBB\xBF# photos to thumbnail\r\n"
      "https://example.org/a.jpg\r\n"
      "\r\n"
      "   \t\n"
      "  http://127.0.0.1:8080/photos/dune.jpg  \n"
      "   # an indented comment\n"
      "https://example.org/path with space.png\r\n"
      "https://example.org/last.webp");  // no final newline
  CHECK(read_url_list(in) == std::vector<std::string>{"https://example.org/a.jpg",
                                                      "http://127.0.0.1:8080/photos/dune.jpg",
                                                      "https://example.org/path with space.png",
                                                      "https://example.org/last.webp"});
  std::istringstream empty("");
  CHECK(read_url_list(empty).empty());
}

TEST_CASE("a URL list file is read, and a missing one is a clear error", "[sources]") {
  pixflow::test::TempDir dir;
  write_file(dir / "urls.txt", "# list\nhttps://example.org/1.jpg\nhttps://example.org/2.jpg\n");
  const auto urls = read_url_list_file((dir / "urls.txt").string());
  REQUIRE(urls);
  CHECK(*urls == std::vector<std::string>{"https://example.org/1.jpg", "https://example.org/2.jpg"});

  const std::string missing = (dir / "absent.txt").string();
  const auto none = read_url_list_file(missing);
  REQUIRE_FALSE(none);
  CHECK(none.error().reason == "cannot read " + missing + ": No such file or directory");

  const auto folder = read_url_list_file(dir.path().string());
  REQUIRE_FALSE(folder);
  CHECK(folder.error().reason == "cannot read " + dir.path().string() + ": Is a directory");
}

TEST_CASE("image and video extensions are recognised in any case", "[sources]") {
  for (const char* name : {"a.jpg", "a.JPEG", "a.png", "a.WebP", "a.gif", "a.bmp", "a.tif", "a.TIFF", "x.y.jpg",
                           "a.mp4", "a.MOV", "a.m4v", "a.webm"})
    CHECK(has_media_extension(name));
  for (const char* name : {"a.txt", "a", "jpg", ".jpg", "a.jpg.part", "a.mkv", "a.jp", "a.gifv"})
    CHECK_FALSE(has_media_extension(name));
}

TEST_CASE("an image folder lists its image files by name, not recursively", "[sources]") {
  pixflow::test::TempDir dir;
  for (const char* name : {"b.jpg", "A.PNG", "c.webp", "a.jpeg", "notes.txt", ".hidden.jpg",
                           ".pixflow-tmp-123-b.jpg", "d.TIFF", "e.gif", "f.bmp", "movie.mp4", "noext"})
    write_file(dir / name, "x");
  fs::create_directory(dir / "sub.jpg");  // a folder with an image-like name is not a file
  write_file(dir / "sub.jpg" / "inner.jpg", "x");
  fs::create_symlink(pixflow::test::photo("tiny.jpg"), dir / "link.jpg");    // a link to a file counts
  fs::create_symlink(dir / "nowhere.jpg", dir / "dangling.jpg");             // a dangling link does not

  const auto files = list_image_folder(dir.path());
  REQUIRE(files);
  CHECK(names(*files) == std::vector<std::string>{"A.PNG", "a.jpeg", "b.jpg", "c.webp", "d.TIFF", "e.gif",
                                                  "f.bmp", "link.jpg", "movie.mp4"});
  for (const auto& file : *files) CHECK(file.parent_path() == dir.path());
}

TEST_CASE("the sample photos folder lists every sample photo", "[sources]") {
  const auto files = list_image_folder(pixflow::test::fixtures_dir() / "photos");
  REQUIRE(files);
  const auto listed = names(*files);
  CHECK(std::is_sorted(listed.begin(), listed.end()));
  for (const char* name : {"aqua.jpg", "dune.jpg", "garden.png", "wood.webp", "animation.gif", "tiny.jpg"})
    CHECK(std::find(listed.begin(), listed.end(), name) != listed.end());
  CHECK(std::find(listed.begin(), listed.end(), "README.md") == listed.end());
}

TEST_CASE("a missing folder, a file and an empty folder", "[sources]") {
  pixflow::test::TempDir dir;
  const auto missing = list_image_folder(dir / "absent");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().reason == "no such folder: " + (dir / "absent").string());

  write_file(dir / "file.jpg", "x");
  const auto file = list_image_folder(dir / "file.jpg");
  REQUIRE_FALSE(file);
  CHECK(file.error().reason == "not a folder: " + (dir / "file.jpg").string());

  fs::create_directory(dir / "empty");
  const auto empty = list_image_folder(dir / "empty");
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("read_file returns a file's exact bytes, and a missing file is a clear error", "[sources]") {
  const auto photo = pixflow::test::photo("garden.png");
  const auto bytes = read_file(photo);
  REQUIRE(bytes);
  CHECK(*bytes == pixflow::test::read_bytes(photo));
  CHECK(bytes->size() == std::filesystem::file_size(photo));

  pixflow::test::TempDir dir;
  std::ofstream(dir.path() / "empty.jpg").close();
  const auto empty = read_file(dir.path() / "empty.jpg");
  REQUIRE(empty);
  CHECK(empty->empty());

  const auto missing = read_file(dir.path() / "missing.jpg");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().reason == "cannot read file: no such file or directory");  // no path: reasons group
  CHECK(missing.error().detail == (dir.path() / "missing.jpg").string());
}

namespace {

/// Runs `body` in a child process and reports whether it finished, successfully, within `seconds` (a
/// child that blocks, e.g. opening a FIFO, is killed: the test fails instead of hanging).
template <class F>
bool finishes_within(double seconds, F body) {
  const pid_t child = ::fork();
  if (child == 0) {
    body();
    ::_exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

TEST_CASE("read_file never opens a FIFO or a device as a file, and caps the size", "[sources]") {
  pixflow::test::TempDir dir;
  REQUIRE(::mkfifo((dir / "pipe.jpg").c_str(), 0600) == 0);
  fs::create_symlink(dir / "pipe.jpg", dir / "link-to-pipe.jpg");
  // In a child, bounded: on main, opening the FIFO blocked for ever.
  CHECK(finishes_within(10, [&] {
    const auto fifo = read_file(dir / "pipe.jpg");
    const auto link = read_file(dir / "link-to-pipe.jpg");
    const auto device = read_file("/dev/zero");
    const bool ok = !fifo && fifo.error().reason == "not a regular file" && !link &&
                    link.error().reason == "not a regular file" && !device &&
                    device.error().reason == "not a regular file";
    if (!ok) ::_exit(1);
  }));
  const auto folder = read_file(dir.path());
  REQUIRE_FALSE(folder);
  CHECK(folder.error().reason == "not a regular file");

  write_file(dir / "big.jpg", std::string(1000, 'x'));
  CHECK(read_file(dir / "big.jpg", 1000).has_value());
  const auto big = read_file(dir / "big.jpg", 999);
  REQUIRE_FALSE(big);
  CHECK(big.error().reason == "too large (> 999 bytes)");
  CHECK(big.error().detail == (dir / "big.jpg").string());
  // A file whose size says 0 but that has content (procfs) is read to its end, within the cap.
  const auto proc = read_file("/proc/self/status");
  REQUIRE(proc);
  CHECK(proc->size() > 0);
  const auto capped = read_file("/proc/self/status", 10);
  REQUIRE_FALSE(capped);
  CHECK(capped.error().reason == "too large (> 10 bytes)");
}

namespace {

using Scanned = std::vector<std::pair<std::string, std::string>>;  // name, skip reason

Scanned scanned(const fs::path& dir, const fs::path& out = {}) {
  const auto entries = scan_image_folder(dir, out);
  if (!entries) throw std::runtime_error(entries.error().reason);
  Scanned result;
  for (const auto& entry : *entries) {
    CHECK(entry.path.parent_path() == dir);
    result.emplace_back(entry.path.filename().string(), entry.skip_reason);
  }
  return result;
}

}  // namespace

TEST_CASE("scan_image_folder reports every file it does not take, with its reason", "[sources]") {
  pixflow::test::TempDir dir;
  for (const char* name : {"b.jpg", "photo.heic", "drawing.svg", "notes.txt", ".hidden.jpg", ".pixflow-tmp-1-b.jpg",
                           ".pixflow.lock"})
    write_file(dir / name, "not really an image");
  const auto jpeg = pixflow::test::read_bytes(pixflow::test::photo("tiny.jpg"));
  write_file(dir / "noext", std::string(jpeg.begin(), jpeg.end()));  // a JPEG, told by its magic bytes
  write_file(dir / "IMG_0001.jpg_large", std::string(jpeg.begin(), jpeg.end()));
  write_file(dir / "plain", "hello");
  write_file(dir / "empty", "");
  fs::create_directory(dir / "sub.jpg");                                   // folders are not inputs
  fs::create_symlink(pixflow::test::photo("tiny.jpg"), dir / "link.jpg");  // a link to a photo is taken
  fs::create_symlink(dir / "nowhere.jpg", dir / "dangling.jpg");
  fs::create_symlink(dir / "loop", dir / "loop");
  fs::create_symlink(dir / "sub.jpg", dir / "folder-link.jpg");
  REQUIRE(::mkfifo((dir / "fifo.jpg").c_str(), 0600) == 0);
  REQUIRE(::mkfifo((dir / "fifo-noext").c_str(), 0600) == 0);
  fs::create_symlink(dir / "fifo.jpg", dir / "link-to-fifo.png");

  // Bounded: nothing may open the FIFOs (a blocking open would hang the scan).
  CHECK(finishes_within(10, [&] { (void)scan_image_folder(dir.path()); }));
  const Scanned expected = {
      {"IMG_0001.jpg_large", ""},
      {"b.jpg", ""},
      {"dangling.jpg", "dangling symlink"},
      {"drawing.svg", "unsupported file (.svg)"},
      {"empty", "unsupported file (no extension)"},
      {"fifo-noext", "not a regular file"},
      {"fifo.jpg", "not a regular file"},
      {"link-to-fifo.png", "not a regular file"},
      {"link.jpg", ""},
      {"loop", "dangling symlink"},
      {"noext", ""},
      {"notes.txt", "unsupported file (.txt)"},
      {"photo.heic", "unsupported file (.heic)"},
      {"plain", "unsupported file (no extension)"},
  };
  CHECK(scanned(dir.path()) == expected);

  const auto taken = list_image_folder(dir.path());
  REQUIRE(taken);
  CHECK(names(*taken) == std::vector<std::string>{"IMG_0001.jpg_large", "b.jpg", "link.jpg", "noext"});
}

TEST_CASE("scan_image_folder leaves out pixflow's own thumbnails when OUT is the input folder", "[sources]") {
  pixflow::test::TempDir dir;
  for (const char* name : {"a.jpg", "a_thumbnail.jpg", "a_thumbnail-2.jpg", "a_thumbnail_64x64.png",
                           "beach_thumbnail_x.jpg"})
    write_file(dir / name, "x");
  // OUT elsewhere: the same files are ordinary inputs.
  CHECK(scanned(dir.path(), dir / "elsewhere") == Scanned{{"a.jpg", ""},
                                                         {"a_thumbnail-2.jpg", ""},
                                                         {"a_thumbnail.jpg", ""},
                                                         {"a_thumbnail_64x64.png", ""},
                                                         {"beach_thumbnail_x.jpg", ""}});
  const Scanned same = {{"a.jpg", ""},
                        {"a_thumbnail-2.jpg", "pixflow output"},
                        {"a_thumbnail.jpg", "pixflow output"},
                        {"a_thumbnail_64x64.png", "pixflow output"},
                        {"beach_thumbnail_x.jpg", ""}};
  CHECK(scanned(dir.path(), dir.path()) == same);
  // The same folder spelled another way (a trailing "/.", a symlink to it) is still the same folder.
  CHECK(scanned(dir.path(), dir.path() / ".") == same);
  pixflow::test::TempDir other;
  fs::create_symlink(dir.path(), other / "alias");
  CHECK(scanned(dir.path(), other / "alias") == same);
}
