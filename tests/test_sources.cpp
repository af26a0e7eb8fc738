// Tests for pixflow/tasks/sources.hpp: URL lists (comments, blanks, CRLF) and image folders (order,
// filters, errors), on real files in a scratch folder.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
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

TEST_CASE("image extensions are recognised in any case", "[sources]") {
  for (const char* name : {"a.jpg", "a.JPEG", "a.png", "a.WebP", "a.gif", "a.bmp", "a.tif", "a.TIFF", "x.y.jpg"})
    CHECK(has_image_extension(name));
  for (const char* name : {"a.txt", "a", "jpg", ".jpg", "a.jpg.part", "a.mp4", "a.jp"})
    CHECK_FALSE(has_image_extension(name));
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
                                                  "f.bmp", "link.jpg"});
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
  CHECK(missing.error().reason == "cannot read file");
}
