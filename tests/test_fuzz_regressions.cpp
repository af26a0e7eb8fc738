// Every input under tests/fuzz/regressions (crashes the fuzzers found, kept once fixed) and
// tests/fuzz/corpus (the fuzzers' seeds) through both fuzzed parsers, in the normal suite: each must give
// a value or an error, never crash. The same checks as tests/fuzz/fuzz_listing.cpp and fuzz_config.cpp.
// The regressions and the sample photos (fuzz_decode's seeds) also go through decode_image, as
// tests/fuzz/fuzz_decode.cpp does.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pixflow/tasks/config.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/imgur.hpp"
#include "support.hpp"

namespace {

namespace fs = std::filesystem;

/// Every regular file under tests/fuzz/<folder>, recursively, sorted (not hidden ones, not README.md).
std::vector<fs::path> inputs(const std::string& folder) {
  const fs::path dir = pixflow::test::fixtures_dir().parent_path() / "fuzz" / folder;
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().filename().string().front() != '.' &&
        entry.path().filename() != "README.md")
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

void check_images(const std::vector<pixflow::tasks::ListedImage>& images) {
  for (const auto& image : images) {
    CHECK_FALSE(image.link.empty());
    if (!image.skip_reason.empty()) CHECK(image.skip_reason.rfind("not an image (", 0) == 0);
  }
}

void check_listing(std::string_view text) {
  const auto page = pixflow::tasks::parse_gallery_page(text);
  if (page) {
    check_images(page->images);
    for (const auto& album : page->albums_to_expand) CHECK_FALSE(album.empty());
    if (page->end) CHECK((page->images.empty() && page->albums_to_expand.empty()));
  } else {
    CHECK_FALSE(page.error().reason.empty());
  }
  const auto album = pixflow::tasks::parse_album_images(text);
  if (album)
    check_images(*album);
  else
    CHECK_FALSE(album.error().reason.empty());
}

/// Returns true when the input parsed as a config (false: not JSON, or a ConfigError).
bool check_config(std::string_view text) {
  const nlohmann::json document = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (document.is_discarded()) return false;
  try {
    const auto config = pixflow::tasks::parse_config(document);
    CHECK(pixflow::tasks::parse_config(pixflow::tasks::to_json(config)) == config);
    return true;
  } catch (const pixflow::tasks::ConfigError& e) {
    CHECK_FALSE(e.message().empty());
    return false;
  }
}

/// The same file through load_config (what --config does): a config or a ConfigError naming the file.
void check_config_file(const fs::path& file) {
  try {
    (void)pixflow::tasks::load_config(file);
  } catch (const pixflow::tasks::ConfigError& e) {
    CHECK(e.file() == file);
    CHECK_FALSE(e.message().empty());
  }
}

/// Every file through both parsers; an exception escaping a parser fails the check for that file only.
std::size_t check_files(const std::vector<fs::path>& files) {
  std::size_t configs_ok = 0;
  for (const auto& file : files) {
    INFO(file.string());
    const auto bytes = pixflow::test::read_bytes(file);
    const std::string text(bytes.begin(), bytes.end());
    CHECK_NOTHROW(check_listing(text));
    bool ok = false;
    CHECK_NOTHROW(ok = check_config(text));
    if (ok) ++configs_ok;
    CHECK_NOTHROW(check_config_file(file));
  }
  return configs_ok;
}

}  // namespace

TEST_CASE("fuzz seeds: the listing and config parsers return a value or an error", "[fuzz]") {
  const std::vector<fs::path> files = inputs("corpus");
  // The committed seeds cover both parsers' good and bad inputs.
  REQUIRE(inputs("corpus/listing").size() >= 5);
  REQUIRE(inputs("corpus/config").size() >= 5);
  // The valid config seeds do parse, so both outcomes are exercised.
  CHECK(check_files(files) >= 2);
}

// The first crash fuzz_listing found: a number too large for a double ("1e400") throws out_of_range 406,
// which escaped parse_gallery_page/parse_album_images and load_config when only parse_error was caught.
TEST_CASE("fuzz regressions: inputs that once crashed a parser give a value or an error", "[fuzz]") {
  const std::vector<fs::path> files = inputs("regressions");
  REQUIRE_FALSE(files.empty());
  check_files(files);
}

TEST_CASE("fuzz regressions and seeds: decode_image returns pixels or a reason", "[fuzz][decode]") {
  std::vector<fs::path> files = inputs("regressions");
  const fs::path photos = pixflow::test::fixtures_dir() / "photos";
  for (const auto& entry : fs::directory_iterator(photos))
    if (entry.is_regular_file() && entry.path().extension() != ".md") files.push_back(entry.path());
  std::size_t decoded_count = 0;
  for (const auto& file : files) {
    INFO(file.string());
    const auto bytes = pixflow::test::read_bytes(file);
    const auto decoded = pixflow::tasks::decode_image(bytes, pixflow::tasks::Size{64, 64},
                                                      pixflow::tasks::DecodeLimits{std::size_t{64} << 20});
    if (decoded) {
      ++decoded_count;
      CHECK(decoded->pixels.depth() == CV_8U);
      CHECK((decoded->pixels.channels() == 3 || decoded->pixels.channels() == 4));
    } else {
      CHECK_FALSE(decoded.error().reason.empty());
    }
  }
  CHECK(decoded_count >= 8);  // the sample photos but the GIF
}
