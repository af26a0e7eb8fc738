// output_lock.hpp: one local run per output folder, any number of workers, never both; a clear message
// with the folder and the pid; leftovers of crashed runs removed when the folder is acquired.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "pixflow/tasks/output_lock.hpp"
#include "pixflow/tasks/sources.hpp"
#include "pixflow/tasks/write.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::TempDir;
namespace fs = std::filesystem;

namespace {

/// A child process that takes OUT in `mode`, tells the parent through a pipe whether it got it, and
/// holds it until killed (the lock must go with the process, however it ends).
class Holder {
 public:
  Holder(const fs::path& out, OutputLock::Mode mode) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(ready[0]);
      auto lock = OutputLock::acquire(out, mode, 0.0);
      const char answer = lock ? 'y' : 'n';
      [[maybe_unused]] auto written = ::write(ready[1], &answer, 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char answer = 0;
    const auto got = ::read(ready[0], &answer, 1);
    ::close(ready[0]);
    got_it_ = got == 1 && answer == 'y';
  }
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;
  ~Holder() { let_go(); }
  /// Kills the holder (SIGKILL: no destructor runs) and reaps it.
  void let_go() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -pid_;
  }
  [[nodiscard]] pid_t pid() const { return pid_ > 0 ? pid_ : -pid_; }
  [[nodiscard]] bool got_it() const { return got_it_; }

 private:
  pid_t pid_ = 0;
  bool got_it_ = false;
};

}  // namespace

TEST_CASE("a second local run into the same OUT fails at once, naming OUT and the pid holding it",
          "[output_lock]") {
  const TempDir dir;
  const fs::path out = dir / "out";
  Holder first(out, OutputLock::Mode::exclusive);  // another process: a first `pixflow thumbs`
  REQUIRE(first.got_it());
  CHECK(fs::is_regular_file(out / ".pixflow.lock"));

  const auto second = OutputLock::acquire(out, OutputLock::Mode::exclusive);
  REQUIRE_FALSE(second);
  CHECK(second.error().reason ==
        "output folder " + out.string() + " is in use by another pixflow run (pid " + std::to_string(first.pid()) + ")");
  // A worker may not join a local run either.
  const auto worker = OutputLock::acquire(out, OutputLock::Mode::shared, 0.1);
  REQUIRE_FALSE(worker);
  CHECK(worker.error().reason.starts_with("output folder " + out.string() + " is in use by another pixflow run"));

  first.let_go();  // the first run ends (however it ends: the kernel drops the lock with the process)
  const auto third = OutputLock::acquire(out, OutputLock::Mode::exclusive);
  REQUIRE(third);
  CHECK(third->mode() == OutputLock::Mode::exclusive);
  CHECK(third->folder() == out);
}

TEST_CASE("workers share OUT with each other, and a local run is refused while they hold it", "[output_lock]") {
  const TempDir dir;
  const fs::path out = dir / "shared";
  Holder worker_a(out, OutputLock::Mode::shared);
  Holder worker_b(out, OutputLock::Mode::shared);
  CHECK(worker_a.got_it());
  CHECK(worker_b.got_it());
  auto worker_c = OutputLock::acquire(out, OutputLock::Mode::shared);  // and one in this process
  REQUIRE(worker_c);

  const auto local = OutputLock::acquire(out, OutputLock::Mode::exclusive);
  REQUIRE_FALSE(local);
  CHECK(local.error().reason.starts_with("output folder " + out.string() + " is in use by pixflow workers"));

  worker_a.let_go();
  worker_b.let_go();
  CHECK_FALSE(OutputLock::acquire(out, OutputLock::Mode::exclusive));  // worker_c still holds it
  {
    const OutputLock gone = std::move(*worker_c);  // moved-from: only `gone` releases it
  }
  CHECK(OutputLock::acquire(out, OutputLock::Mode::exclusive));
}

TEST_CASE("two OutputLock objects in one process conflict (one open file description each)", "[output_lock]") {
  const TempDir dir;
  auto first = OutputLock::acquire(dir.path(), OutputLock::Mode::exclusive);
  REQUIRE(first);
  const auto second = OutputLock::acquire(dir.path(), OutputLock::Mode::exclusive);
  REQUIRE_FALSE(second);
  CHECK(second.error().reason.find("(pid " + std::to_string(::getpid()) + ")") != std::string::npos);
}

TEST_CASE("acquiring OUT alone removes leftover temporaries; the lock file is never an input or an output",
          "[output_lock]") {
  const TempDir dir;
  // Leftovers of crashed runs, even with a pid that is running now (1) or belongs to another machine.
  for (const char* name : {".pixflow-tmp-1-abc-3", ".pixflow-tmp-999999-abc-1"}) std::ofstream(dir / name) << "partial";
  std::ofstream(dir / "a.jpg") << "x";
  {
    const auto lock = OutputLock::acquire(dir.path(), OutputLock::Mode::shared);  // alone: cleans, then shares
    REQUIRE(lock);
    CHECK(lock->removed_temporaries() == 2);
    CHECK(lock->mode() == OutputLock::Mode::shared);
  }
  std::ofstream(dir / ".pixflow-tmp-1-abc-4") << "partial";
  {
    const auto first = OutputLock::acquire(dir.path(), OutputLock::Mode::shared);
    REQUIRE(first);
    CHECK(first->removed_temporaries() == 1);
    std::ofstream(dir / ".pixflow-tmp-1-abc-5") << "another worker's file in progress";
    const auto second = OutputLock::acquire(dir.path(), OutputLock::Mode::shared);  // not alone: keeps it
    REQUIRE(second);
    CHECK(second->removed_temporaries() == 0);
    CHECK(fs::exists(dir / ".pixflow-tmp-1-abc-5"));
  }
  const auto listed = scan_image_folder(dir.path(), dir.path());
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().path.filename() == "a.jpg");
  CHECK_FALSE(output_complete(dir.path(), OutputLock::file_name));
  CHECK(fs::exists(dir / ".pixflow.lock"));  // never removed (removing a lock file races with its next user)
}

TEST_CASE("an OUT that cannot hold the lock file fails clearly, before anything runs", "[output_lock]") {
  const TempDir dir;
  std::ofstream(dir / "file") << "x";
  const auto not_folder = OutputLock::acquire(dir / "file", OutputLock::Mode::exclusive);
  REQUIRE_FALSE(not_folder);
  CHECK(not_folder.error().reason.starts_with("cannot create output folder " + (dir / "file").string() + ": "));

  fs::create_directories(dir / "fifo-lock");
  REQUIRE(::mkfifo((dir / "fifo-lock" / ".pixflow.lock").c_str(), 0600) == 0);
  const auto fifo = OutputLock::acquire(dir / "fifo-lock", OutputLock::Mode::exclusive);
  REQUIRE_FALSE(fifo);
  CHECK(fifo.error().reason == "cannot lock output folder " + (dir / "fifo-lock").string() +
                                   ": .pixflow.lock is not a regular file");

  const fs::path readonly = pixflow::test::unwritable_folder(dir);
  const auto denied = OutputLock::acquire(readonly, OutputLock::Mode::exclusive);
  REQUIRE_FALSE(denied);
  CHECK(denied.error().reason.starts_with("cannot lock output folder " + readonly.string() + ": "));
}
