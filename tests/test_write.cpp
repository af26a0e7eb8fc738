// write.hpp: atomic writes (exact bytes, no temporary left, no partial file ever visible), unsafe names,
// clean failures, stale temporaries.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "pixflow/tasks/write.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::read_bytes;
using pixflow::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::uint8_t> pattern(std::size_t size, std::uint8_t seed) {
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>((i * 31 + seed) & 0xFF);
  return bytes;
}

bool has_temporary(const fs::path& dir) {
  for (const auto& name : names_in(dir)) {
    if (name.starts_with(temporary_prefix)) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("write_file_atomically writes the exact bytes and leaves no temporary", "[write]") {
  const TempDir dir;
  const auto photo_bytes = read_bytes(pixflow::test::photo("aqua.jpg"));
  const auto path = write_file_atomically(dir.path(), "aqua_thumbnail.jpg", photo_bytes);
  REQUIRE(path.has_value());
  CHECK(*path == dir / "aqua_thumbnail.jpg");
  CHECK(read_bytes(*path) == photo_bytes);
  CHECK(names_in(dir.path()) == std::vector<std::string>{"aqua_thumbnail.jpg"});

  SECTION("an empty body is a valid, empty file") {
    const auto empty = write_file_atomically(dir.path(), "empty.bin", {});
    REQUIRE(empty.has_value());
    CHECK(fs::file_size(*empty) == 0);
  }
  SECTION("replacing a file swaps the whole content") {
    const auto other = pattern(1000, 7);
    REQUIRE(write_file_atomically(dir.path(), "aqua_thumbnail.jpg", other).has_value());
    CHECK(read_bytes(dir / "aqua_thumbnail.jpg") == other);
    CHECK(names_in(dir.path()).size() == 1);
  }
  SECTION("unicode names") {
    const auto written = write_file_atomically(dir.path(), "café_thumbnail.jpg", photo_bytes);
    REQUIRE(written.has_value());
    CHECK(fs::exists(dir / "café_thumbnail.jpg"));
  }
}

TEST_CASE("write_file_atomically refuses names that are not plain file names", "[write]") {
  const TempDir dir;
  const fs::path inner = dir / "out";
  fs::create_directories(inner);
  const auto bytes = pattern(64, 1);
  const std::vector<std::string> unsafe = {"../x", "a/b", "/etc/passwd", "", ".", "..", "x/../../y",
                                          ".pixflow-tmp-123", std::string("a\0b", 3)};
  for (const std::string& name : unsafe) {
    INFO("name: " << name);
    const auto result = write_file_atomically(inner, name, bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason == "unsafe name");
  }
  CHECK(names_in(inner).empty());
  CHECK(names_in(dir.path()) == std::vector<std::string>{"out"});
}

TEST_CASE("write_file_atomically fails cleanly where it cannot write", "[write]") {
  const TempDir dir;
  const auto bytes = pattern(4096, 3);

  SECTION("a folder that does not exist") {
    const auto result = write_file_atomically(dir / "missing", "a.jpg", bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason.starts_with("cannot write "));
    CHECK(result.error().reason.find("no such file or directory") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "missing"));
  }
  SECTION("a folder that is a file") {
    std::ofstream(dir / "plain") << "x";
    const auto result = write_file_atomically(dir / "plain", "a.jpg", bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason.starts_with("cannot write "));
  }
  SECTION("a read-only folder") {
    fs::path readonly = dir / "readonly";
    if (::geteuid() == 0) {
      readonly = "/proc/self";  // root ignores permission bits; procfs refuses new files even to root
    } else {
      fs::create_directories(readonly);
      fs::permissions(readonly, fs::perms::owner_read | fs::perms::owner_exec);
    }
    const auto result = write_file_atomically(readonly, "a.jpg", bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason.starts_with("cannot write "));
    CHECK_FALSE(fs::exists(readonly / "a.jpg"));
    if (readonly != "/proc/self") fs::permissions(readonly, fs::perms::owner_all);
  }
  SECTION("the final name is taken by a folder: the rename fails and the temporary is removed") {
    fs::create_directories(dir / "taken.jpg");
    const auto result = write_file_atomically(dir.path(), "taken.jpg", bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason.starts_with("cannot write "));
    CHECK(fs::is_directory(dir / "taken.jpg"));
    CHECK_FALSE(has_temporary(dir.path()));
  }
}

TEST_CASE("write_file_atomically never shows a partial file under the final name", "[write]") {
  const TempDir dir;
  constexpr std::size_t size = 256 * 1024;
  const std::vector<std::vector<std::uint8_t>> contents = {pattern(size, 1), pattern(size, 2), pattern(size, 3)};
  REQUIRE(write_file_atomically(dir.path(), "shared.bin", contents[0]).has_value());

  std::atomic<bool> stop{false};
  std::atomic<int> bad_reads{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop.load()) {
      const auto seen = read_bytes(dir / "shared.bin");
      bool whole = false;
      for (const auto& content : contents) whole = whole || seen == content;
      if (!whole) ++bad_reads;
      ++reads;
    }
  });
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (std::size_t w = 0; w < contents.size(); ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 30; ++i) {
        if (!write_file_atomically(dir.path(), "shared.bin", contents[w])) ++failures;
      }
    });
  }
  for (auto& writer : writers) writer.join();
  stop = true;
  reader.join();
  CHECK(failures == 0);
  CHECK(reads > 0);
  CHECK(bad_reads == 0);
  CHECK(names_in(dir.path()) == std::vector<std::string>{"shared.bin"});
}

TEST_CASE("remove_stale_temporaries removes only leftover temporaries", "[write]") {
  const TempDir dir;
  // A process that has ended: its temporaries are leftovers.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);
  const std::string dead = ".pixflow-tmp-" + std::to_string(child) + "-abc-1";
  const std::string mine = ".pixflow-tmp-" + std::to_string(::getpid()) + "-abc-1";
  for (const std::string& name : {std::string(".pixflow-tmp-1"), dead, std::string(".pixflow-tmp-"), mine})
    std::ofstream(dir / name) << "partial";
  std::ofstream(dir / "keep.jpg") << "done";
  std::ofstream(dir / ".pixflow-other") << "not ours";
  fs::create_directories(dir / ".pixflow-tmp-folder");
  CHECK(remove_stale_temporaries(dir.path()) == 3);
  // A temporary of a running writer (here this process) is left alone.
  CHECK(names_in(dir.path()) == std::vector<std::string>{".pixflow-other", mine, ".pixflow-tmp-folder", "keep.jpg"});
  CHECK(remove_stale_temporaries(dir.path()) == 0);
  CHECK(remove_stale_temporaries(dir / "missing") == 0);
}
