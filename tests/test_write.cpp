// write.hpp: atomic writes (exact bytes, no temporary left, no partial file ever visible), unsafe names,
// clean failures, stale temporaries; durability modes (complete files whatever the mode, even after
// kill -9), sync_output_folder, the `durability` config key.
#include <catch2/catch.hpp>

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pixflow/tasks/config.hpp"
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
    CHECK(result.error().reason == "cannot write: no such file or directory");  // no path: reasons group
    CHECK(result.error().detail == (dir / "missing" / "a.jpg").string());
    CHECK_FALSE(fs::exists(dir / "missing"));
  }
  SECTION("a folder that is a file") {
    std::ofstream(dir / "plain") << "x";
    const auto result = write_file_atomically(dir / "plain", "a.jpg", bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason == "cannot write: not a directory");
  }
  SECTION("a read-only folder") {
    const fs::path readonly = pixflow::test::unwritable_folder(dir);
    const auto result = write_file_atomically(readonly, "a.jpg", bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason.starts_with("cannot write: "));
    CHECK(result.error().reason.find(readonly.string()) == std::string::npos);
    CHECK(result.error().detail == (readonly / "a.jpg").string());
    CHECK_FALSE(fs::exists(readonly / "a.jpg"));
  }
  SECTION("the final name is taken by a folder: the rename fails and the temporary is removed") {
    fs::create_directories(dir / "taken.jpg");
    const auto result = write_file_atomically(dir.path(), "taken.jpg", bytes);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason == "cannot write: name taken by a folder");
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

TEST_CASE("a full disk is one failure reason for 2,000 files, the path in the detail", "[write]") {
  // A real full filesystem: a 64 KiB tmpfs mounted in a private mount namespace of a child process
  // (a user namespace too when not root), so nothing outlives the test. Exit code 77: not possible here.
  const TempDir dir;
  const fs::path mount_point = dir / "full";
  fs::create_directories(mount_point);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    const bool root = ::geteuid() == 0;
    const std::string uid_map = "0 " + std::to_string(::geteuid()) + " 1";
    const std::string gid_map = "0 " + std::to_string(::getegid()) + " 1";
    if (::unshare(CLONE_NEWNS | (root ? 0 : CLONE_NEWUSER)) != 0) ::_exit(77);
    if (!root) {  // be root in the new user namespace, so the tmpfs is ours
      std::ofstream("/proc/self/setgroups") << "deny";
      std::ofstream("/proc/self/uid_map") << uid_map;
      std::ofstream("/proc/self/gid_map") << gid_map;
    }
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=64k") != 0)
      ::_exit(77);
    const auto bytes = pattern(4096, 5);
    std::set<std::string> reasons;
    int failed = 0;
    bool detail_ok = true;
    for (int i = 0; i < 2000; ++i) {
      const std::string name = "item" + std::to_string(i) + ".jpg";
      const auto result = write_file_atomically(mount_point, name, bytes);
      if (result) continue;
      ++failed;
      reasons.insert(result.error().reason);
      detail_ok = detail_ok && result.error().detail == (mount_point / name).string();
    }
    std::string report = std::to_string(failed) + (detail_ok ? " detail-ok" : " detail-bad");
    for (const auto& reason : reasons) report += "\n" + reason;
    [[maybe_unused]] const ssize_t written = ::write(pipe_fds[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string report;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) report.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    WARN("no private tmpfs here (no mount namespace): full-disk case not run");
    return;
  }
  INFO(report);
  // Most of the 2,000 fail (64 KiB hold about 15 files of 4 KiB), all with one reason and their own path.
  const auto first_line = report.substr(0, report.find('\n'));
  CHECK(std::stoi(first_line) > 1900);
  CHECK(first_line.ends_with(" detail-ok"));
  CHECK(report.substr(report.find('\n') + 1) == "cannot write: no space left on device");
}

TEST_CASE("write_file_atomically never writes through a symlink or into a FIFO at the final name", "[write]") {
  const TempDir dir;
  const fs::path out = dir / "out";
  fs::create_directories(out);
  const auto bytes = pattern(4096, 9);
  std::ofstream(dir / "victim.txt") << "keep me";
  fs::create_symlink(dir / "victim.txt", out / "link.jpg");
  fs::create_symlink(dir / "nowhere", out / "dangling.jpg");
  REQUIRE(::mkfifo((out / "fifo.jpg").c_str(), 0600) == 0);

  // In a child, bounded: writing into the FIFO would block for ever with no reader.
  const pid_t child = ::fork();
  if (child == 0) {
    const auto link = write_file_atomically(out, "link.jpg", bytes);
    const auto dangling = write_file_atomically(out, "dangling.jpg", bytes);
    const auto fifo = write_file_atomically(out, "fifo.jpg", bytes);
    const bool ok = !link && link.error().reason == "cannot write: name taken by a symlink" && !dangling &&
                    dangling.error().reason == "cannot write: name taken by a symlink" && !fifo &&
                    fifo.error().reason == "cannot write: name taken by a fifo";
    ::_exit(ok ? 0 : 1);
  }
  int status = -1;
  for (int waited = 0; waited < 1000 && ::waitpid(child, &status, WNOHANG) == 0; ++waited) ::usleep(10'000);
  if (::waitpid(child, &status, WNOHANG) == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL("write_file_atomically blocked on a FIFO");
  }
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(read_bytes(dir / "victim.txt") == std::vector<std::uint8_t>{'k', 'e', 'e', 'p', ' ', 'm', 'e'});
  CHECK(fs::is_symlink(out / "link.jpg"));
  CHECK(fs::is_symlink(out / "dangling.jpg"));
  CHECK_FALSE(fs::exists(dir / "nowhere"));
  CHECK(fs::is_fifo(out / "fifo.jpg"));
  CHECK_FALSE(has_temporary(out));
}

TEST_CASE("output_complete counts only non-empty regular files, and opens nothing", "[write]") {
  const TempDir dir;
  std::ofstream(dir / "done.jpg") << "jpeg";
  std::ofstream(dir / "empty.jpg").close();
  std::ofstream(dir / ".pixflow.lock") << "4242 host";
  fs::create_directories(dir / "folder.jpg");
  fs::create_symlink(dir / "done.jpg", dir / "link.jpg");
  REQUIRE(::mkfifo((dir / "fifo.jpg").c_str(), 0600) == 0);
  CHECK(output_complete(dir.path(), "done.jpg"));
  for (const char* name : {"empty.jpg", ".pixflow.lock", "folder.jpg", "link.jpg", "fifo.jpg", "missing.jpg", "../done.jpg",
                           ""})
    CHECK_FALSE(output_complete(dir.path(), name));  // on main, the resume check opened the FIFO and blocked
}

TEST_CASE("remove_stale_temporaries under an exclusive hold removes every other process's temporaries",
          "[write]") {
  const TempDir dir;
  // pid 1 is running: a pid check keeps its temporary (another run could be writing it), but a run that
  // holds the folder exclusively knows nobody else writes here (pids of other machines, reused pids).
  const std::string alive = ".pixflow-tmp-1-abc-1";
  const std::string mine = ".pixflow-tmp-" + std::to_string(::getpid()) + "-abc-1";
  std::ofstream(dir / alive) << "partial";
  std::ofstream(dir / mine) << "partial";
  CHECK(remove_stale_temporaries(dir.path()) == 0);
  CHECK(remove_stale_temporaries(dir.path(), Leftovers::all_but_this_process) == 1);
  CHECK(names_in(dir.path()) == std::vector<std::string>{mine});
}

TEST_CASE("every durability writes complete files under their final names and leaves no temporary", "[write]") {
  const auto mode = GENERATE(Durability::per_item, Durability::at_end, Durability::none);
  INFO("durability " << to_string(mode));
  const TempDir dir;
  const auto durable = OutputSync::open(dir.path());
  REQUIRE(durable);
  const auto photo_bytes = read_bytes(pixflow::test::photo("aqua.jpg"));
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "photo-" + std::to_string(i) + ".jpg";
    const auto path = write_file_atomically(dir.path(), name, photo_bytes, mode);
    REQUIRE(path.has_value());
    CHECK(*path == dir / name);
    expected.push_back(name);
  }
  const auto other = pattern(5000, 9);  // replacing a file swaps the whole content in every mode
  REQUIRE(write_file_atomically(dir.path(), "photo-0.jpg", other, mode).has_value());
  std::sort(expected.begin(), expected.end());
  CHECK(names_in(dir.path()) == expected);
  CHECK(read_bytes(dir / "photo-0.jpg") == other);
  for (int i = 1; i < 20; ++i) CHECK(read_bytes(dir / ("photo-" + std::to_string(i) + ".jpg")) == photo_bytes);

  // Failures still remove the temporary, and refuse what is not a regular file.
  fs::create_directories(dir / "taken.jpg");
  const auto taken = write_file_atomically(dir.path(), "taken.jpg", other, mode);
  REQUIRE_FALSE(taken.has_value());
  CHECK(taken.error().reason == "cannot write: name taken by a folder");
  CHECK_FALSE(has_temporary(dir.path()));

  CHECK(durable->sync());
}

TEST_CASE("OutputSync holds OUT for a run and syncs its filesystem as often as asked", "[write]") {
  const TempDir dir;
  auto durable = OutputSync::open(dir.path());  // at the start, before anything is written
  REQUIRE(durable);
  const auto bytes = pattern(64 * 1024, 5);
  for (const char* name : {"a.bin", "b.bin", "c.bin", "d.bin", "e.bin", "f.bin", "g.bin", "h.bin", "i.bin", "j.bin"})
    REQUIRE(write_file_atomically(dir.path(), name, bytes, Durability::at_end));
  CHECK(durable->sync());
  REQUIRE(write_file_atomically(dir.path(), "late.bin", bytes, Durability::at_end));
  CHECK(durable->sync());  // a worker syncs once per batch of acknowledgements
  OutputSync moved = std::move(*durable);  // move-only; the moved-to one owns the folder
  CHECK(moved.sync());
  durable = OutputSync::open(dir.path());
  REQUIRE(durable);
  CHECK(durable->sync());
  CHECK(names_in(dir.path()).size() == 11);
  CHECK_FALSE(has_temporary(dir.path()));

  const auto missing = OutputSync::open(dir / "missing");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().reason == "cannot sync: no such file or directory");
  CHECK(missing.error().detail == (dir / "missing").string());
}

TEST_CASE("sync_output_folder syncs OUT's filesystem, and names a folder it cannot open", "[write]") {
  const TempDir dir;
  SECTION("an empty folder, twice") {
    CHECK(sync_output_folder(dir.path()));
    CHECK(sync_output_folder(dir.path()));
  }
  SECTION("a folder that does not exist") {
    const auto result = sync_output_folder(dir / "missing");
    REQUIRE_FALSE(result);
    CHECK(result.failure().reason == "cannot sync: no such file or directory");
    CHECK(result.failure().detail == (dir / "missing").string());
  }
  SECTION("a file, not a folder") {
    std::ofstream(dir / "plain") << "x";
    const auto result = sync_output_folder(dir / "plain");
    REQUIRE_FALSE(result);
    CHECK(result.failure().reason == "cannot sync: not a directory");
  }
}

TEST_CASE("kill -9 in the middle of unsynced writes leaves only complete files under final names", "[write]") {
  // A child writes files of known content in a loop, without any fsync, telling the parent after each
  // one; the parent kills it with SIGKILL after some of them, wherever it is in its write.
  const auto mode = GENERATE(Durability::at_end, Durability::none);
  INFO("durability " << to_string(mode));
  const TempDir dir;
  constexpr std::size_t size = 512 * 1024;
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    for (int i = 0;; ++i) {
      const auto bytes = pattern(size, static_cast<std::uint8_t>(i));
      std::string name = std::to_string(i);
      name.insert(name.begin(), 'f');  // not "f" + ...: GCC 12's -Wrestrict false positive
      name += ".bin";
      if (!write_file_atomically(dir.path(), name, bytes, mode)) ::_exit(1);
      const char tick = 'x';
      if (::write(pipe_fds[1], &tick, 1) != 1) ::_exit(2);
    }
  }
  ::close(pipe_fds[1]);
  char ticks[16];
  std::size_t got = 0;
  while (got < sizeof ticks) {
    const ssize_t n = ::read(pipe_fds[0], ticks + got, sizeof ticks - got);
    REQUIRE(n > 0);
    got += static_cast<std::size_t>(n);
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(pipe_fds[0]);
  REQUIRE(WIFSIGNALED(status));

  std::size_t complete = 0;
  for (const auto& name : names_in(dir.path())) {
    if (name.starts_with(temporary_prefix)) continue;  // the one being written, if any: a leftover
    INFO(name);
    REQUIRE(name.starts_with("f"));
    const int index = std::stoi(name.substr(1));
    CHECK(read_bytes(dir / name) == pattern(size, static_cast<std::uint8_t>(index)));
    ++complete;
  }
  CHECK(complete >= sizeof ticks);
  remove_stale_temporaries(dir.path());  // what the next run does first
  CHECK_FALSE(has_temporary(dir.path()));
  CHECK(sync_output_folder(dir.path()));
}

TEST_CASE("durability: the config key and its names", "[write][config]") {
  for (const Durability d : {Durability::per_item, Durability::at_end, Durability::none})
    CHECK(parse_durability(to_string(d)) == d);
  CHECK(to_string(Durability::at_end) == "at-end");
  CHECK_FALSE(parse_durability("at_end").has_value());
  CHECK_FALSE(parse_durability("").has_value());

  CHECK(PipelineConfig{}.durability == Durability::at_end);
  CHECK(parse_config(nlohmann::json::parse(R"({"durability": "per-item"})")).durability == Durability::per_item);
  CHECK(parse_config(nlohmann::json::parse(R"({"durability": "none"})")).durability == Durability::none);
  PipelineConfig c;
  c.durability = Durability::none;
  CHECK(to_json(c).at("durability") == "none");
  CHECK(parse_config(to_json(c)) == c);
  for (const char* bad : {R"({"durability": "always"})", R"({"durability": true})", R"({"durability": 1})"}) {
    INFO(bad);
    try {
      parse_config(nlohmann::json::parse(bad));
      FAIL("accepted");
    } catch (const ConfigError& e) {
      CHECK(e.path() == "/durability");
      CHECK(e.message().find(R"(one of "per-item", "at-end", "none")") != std::string::npos);
    }
  }
}
