#include "pixflow/tasks/output_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "errno_reason.hpp"
#include "pixflow/tasks/write.hpp"

namespace pixflow::tasks {

namespace {

/// flock without waiting, retried on EINTR; 0 or errno.
int try_flock(int fd, int operation) {
  for (;;) {
    if (::flock(fd, operation | LOCK_NB) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

/// The pids of this machine's processes holding a flock on the file of `fd`, from /proc/locks
/// ("1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF"; waiters, marked "->", are left out).
std::vector<long> local_holders(int fd) {
  std::vector<long> pids;
  struct stat info {};
  if (::fstat(fd, &info) != 0) return pids;
  char device[64];
  std::snprintf(device, sizeof device, "%02x:%02x:%llu", major(info.st_dev), minor(info.st_dev),
                static_cast<unsigned long long>(info.st_ino));
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    std::istringstream fields(line);
    std::string number, type, advisory, access, where;
    long pid = 0;
    if (!(fields >> number >> type) || type != "FLOCK") continue;
    if (!(fields >> advisory >> access >> pid >> where) || where != device) continue;
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

/// "pid 4242" or "pid 4242, 4243": the holders /proc/locks names, else the pid the last exclusive
/// holder wrote into the lock file ("4242 host"), else "".
std::string holders(int fd) {
  std::string text;
  for (const long pid : local_holders(fd)) text += (text.empty() ? "pid " : ", ") + std::to_string(pid);
  if (!text.empty()) return text;
  char buffer[256] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  if (n <= 0) return text;
  std::istringstream content(std::string(buffer, static_cast<std::size_t>(n)));
  long pid = 0;
  std::string host;
  if (!(content >> pid) || pid <= 0) return text;
  text = "pid " + std::to_string(pid);
  char here[256] = {};
  if ((content >> host) && ::gethostname(here, sizeof here - 1) == 0 && host != here) text += " on " + host;
  return text;
}

/// Records this process as the holder: "<pid> <host>\n". Best effort (only for the message).
void write_holder(int fd) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  const std::string text = std::to_string(::getpid()) + " " + host + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t written = ::pwrite(fd, text.data(), text.size(), 0);
  }
}

std::string in_use(const std::filesystem::path& out, int fd, bool by_workers) {
  const std::string who = holders(fd);
  std::string text = "output folder " + out.string() + " is in use by " +
                     (by_workers ? "pixflow workers" : "another pixflow run");
  if (!who.empty()) text += " (" + who + ")";
  return text;
}

}  // namespace

Expected<OutputLock> OutputLock::acquire(const std::filesystem::path& out, Mode mode, double shared_wait_s) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) return Error{"cannot create output folder " + out.string() + ": " + detail::errno_reason(ec.value())};
  const std::filesystem::path file = out / std::string(file_name);
  const auto cannot_lock = [&](const std::string& why) {
    return Error{"cannot lock output folder " + out.string() + ": " + why};
  };
  // O_NOFOLLOW: never a lock (or the pid) written through a symlink; O_NONBLOCK: a FIFO there never blocks.
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
  if (fd < 0) return cannot_lock(detail::errno_reason(errno));
  OutputLock lock(fd, mode, out, 0);  // closes fd on every early return
  struct stat info {};
  if (::fstat(fd, &info) != 0) return cannot_lock(detail::errno_reason(errno));
  if (!S_ISREG(info.st_mode)) return cannot_lock(std::string(file_name) + " is not a regular file");

  // Exclusive first, in both modes: holding it, nobody else is writing here, so every leftover
  // temporary can go. A worker then steps down to shared.
  int error = try_flock(fd, LOCK_EX);
  if (error == 0) {
    write_holder(fd);
    lock.removed_temporaries_ = remove_stale_temporaries(out, Leftovers::all_but_this_process);
    if (mode == Mode::exclusive) return lock;
    // Not atomic (flock drops, then takes): a local run may slip in between, then this fails below.
    error = try_flock(fd, LOCK_SH);
    if (error == 0) return lock;
  }
  if (error != EWOULDBLOCK) return cannot_lock(detail::errno_reason(error));
  if (mode == Mode::exclusive) {
    // Busy: shared holders (workers) if a shared lock would be granted, else one exclusive run.
    const bool workers = try_flock(fd, LOCK_SH) == 0;
    if (workers) ::flock(fd, LOCK_UN);
    return Error{in_use(out, fd, workers)};
  }
  // Shared: other workers are here (then this succeeds at once), or someone holds it exclusively: a
  // worker cleaning up for a moment (wait), or a local run (give up after shared_wait_s).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(shared_wait_s);
  for (;;) {
    error = try_flock(fd, LOCK_SH);
    if (error == 0) return lock;
    if (error != EWOULDBLOCK) return cannot_lock(detail::errno_reason(error));
    if (std::chrono::steady_clock::now() >= deadline) return Error{in_use(out, fd, false)};
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

OutputLock::OutputLock(int fd, Mode mode, std::filesystem::path folder, std::size_t removed)
    : fd_(fd), mode_(mode), folder_(std::move(folder)), removed_temporaries_(removed) {}

OutputLock::OutputLock(OutputLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      mode_(other.mode_),
      folder_(std::move(other.folder_)),
      removed_temporaries_(other.removed_temporaries_) {}

OutputLock& OutputLock::operator=(OutputLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    mode_ = other.mode_;
    folder_ = std::move(other.folder_);
    removed_temporaries_ = other.removed_temporaries_;
  }
  return *this;
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor of the open file description unlocks
}

}  // namespace pixflow::tasks
