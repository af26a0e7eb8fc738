#pragma once
// Helpers shared by the tests: where the fixtures are, the nginx fixture's URL, scratch folders.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/output_lock.hpp"
#include "pixflow/tasks/video.hpp"

namespace pixflow::test {

/// tests/fixtures in the source tree.
inline std::filesystem::path fixtures_dir() { return PIXFLOW_FIXTURES_DIR; }

/// A sample photo from tests/fixtures/photos.
inline std::filesystem::path photo(const std::string& name) { return fixtures_dir() / "photos" / name; }

/// The pixflow CLI built alongside the tests.
inline std::filesystem::path cli_path() { return PIXFLOW_CLI_PATH; }

/// Base URL of the nginx fixture ("http://127.0.0.1:PORT", no trailing slash), written by
/// fixtures/nginx/start.sh into $PIXFLOW_SERVER_DIR/base_url. Throws when the fixture is not running.
inline std::string server_url() {
  const char* dir = std::getenv("PIXFLOW_SERVER_DIR");
  if (dir == nullptr) throw std::runtime_error("PIXFLOW_SERVER_DIR is not set: run the tests through ctest");
  std::ifstream in(std::filesystem::path(dir) / "base_url");
  std::string url;
  if (!std::getline(in, url) || url.empty())
    throw std::runtime_error(std::string("no base_url in ") + dir + ": is the nginx fixture running?");
  return url;
}

/// The state folder of test server `name` (tests/fixtures/<name>/start.sh), beside the nginx one.
inline std::filesystem::path fixture_dir(const std::string& name) {
  const char* dir = std::getenv("PIXFLOW_SERVER_DIR");
  if (dir == nullptr) throw std::runtime_error("PIXFLOW_SERVER_DIR is not set: run the tests through ctest");
  return std::filesystem::path(dir).parent_path() / (name + "-fixture");
}

/// The whole content of a file.
inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Every entry of folder `dir` by name (not recursive) but OUT's lock file, which every run leaves
/// there (pixflow/tasks/output_lock.hpp): what a run wrote into OUT. Empty when `dir` does not exist.
inline std::set<std::string> files_in(const std::filesystem::path& dir) {
  std::set<std::string> names;
  if (!std::filesystem::exists(dir)) return names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name != pixflow::tasks::OutputLock::file_name) names.insert(std::move(name));
  }
  return names;
}

/// Writes `text` to `file` (created or truncated).
inline void write_text(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

/// A fresh, empty folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("pixflow-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// A folder in which creating a file fails, root included: /proc/self for root (permission bits do not
/// stop root; procfs refuses new files to anyone), else a read-only folder made in `dir` (an empty
/// folder, so TempDir still removes it).
inline std::filesystem::path unwritable_folder(const TempDir& dir) {
  if (::geteuid() == 0) return "/proc/self";
  const auto readonly = dir / "readonly";
  std::filesystem::create_directories(readonly);
  std::filesystem::permissions(readonly, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  return readonly;
}

/// Decodes a file the pipeline takes, whatever its kind: a video's poster frame, an image's first frame,
/// to fit `box`. `source_size` is the picture as displayed (EXIF orientation, a video's rotation applied).
inline pixflow::tasks::Expected<pixflow::tasks::DecodedImage> decode_file(const std::filesystem::path& file,
                                                                         pixflow::tasks::Size box = {128, 128}) {
  const auto bytes = read_bytes(file);
  const auto format = pixflow::tasks::format_of_name(file.filename().string());
  if (format == pixflow::tasks::ImageFormat::mp4 || format == pixflow::tasks::ImageFormat::webm)
    return pixflow::tasks::decode_video_poster(bytes, box);
  return pixflow::tasks::decode_image(bytes, box);
}

}  // namespace pixflow::test
