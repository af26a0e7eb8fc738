#include "pixflow/tasks/write.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <system_error>
#include <utility>

#include "errno_reason.hpp"

namespace pixflow::tasks {

namespace {

bool is_plain_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos && !name.starts_with(temporary_prefix);
}

/// A suffix unique within this process (counter) and unlikely to clash with other processes (random).
std::string temporary_name() {
  static std::atomic<unsigned long long> counter{0};
  static const unsigned long long seed = [] {
    std::random_device device;
    return (static_cast<unsigned long long>(device()) << 32) ^ device();
  }();
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, "%d-%016llx-%llu", static_cast<int>(::getpid()), seed,
                counter.fetch_add(1, std::memory_order_relaxed));
  return std::string(temporary_prefix) + suffix;
}

/// What stands at a name that is not a regular file, for "cannot write: name taken by a <kind>".
const char* kind_of(mode_t mode) {
  if (S_ISLNK(mode)) return "symlink";
  if (S_ISDIR(mode)) return "folder";
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "device";
  return "special file";
}

/// Closes the descriptor and removes the temporary file unless released.
class TemporaryFile {
 public:
  TemporaryFile(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!released_) ::unlink(path_.c_str());
  }
  [[nodiscard]] int fd() const { return fd_; }
  /// Closes the descriptor, reporting errno on failure (close can report delayed write errors).
  int close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result == 0 ? 0 : errno;
  }
  void release() { released_ = true; }

 private:
  int fd_;
  std::filesystem::path path_;
  bool released_ = false;
};

void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // durability only: the rename itself already happened
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string_view to_string(Durability d) {
  switch (d) {
    case Durability::per_item: return "per-item";
    case Durability::at_end: return "at-end";
    case Durability::none: return "none";
  }
  return "per-item";
}

std::optional<Durability> parse_durability(std::string_view text) {
  for (const Durability d : {Durability::per_item, Durability::at_end, Durability::none})
    if (text == to_string(d)) return d;
  return std::nullopt;
}

Expected<std::filesystem::path> write_file_atomically(const std::filesystem::path& dir, std::string_view name,
                                                      std::span<const std::uint8_t> bytes, Durability durability) {
  if (!is_plain_name(name)) return Error{"unsafe name"};
  const std::filesystem::path target = dir / std::filesystem::path(std::string(name));
  // The reason has no path (a full disk is one line in "failures by reason"); the path is the detail.
  // Every reason starts with "cannot write" (the queue worker retries those on this machine).
  auto failure = [&](int error) { return Error{"cannot write: " + detail::errno_reason(error), target.string()}; };

  std::filesystem::path temporary;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    temporary = dir / temporary_name();
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) return failure(errno);
  }
  if (fd < 0) return failure(EEXIST);
  TemporaryFile file(fd, temporary);

  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(file.fd(), bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failure(errno);
    }
    written += static_cast<std::size_t>(n);
  }
  // Only power-loss durability needs the fsyncs: without them the rename still shows the file complete
  // or not at all to every process, a killed one's successor included (docs/design.md §11).
  const bool sync_each = durability == Durability::per_item;
  if (sync_each && ::fsync(file.fd()) != 0) return failure(errno);
  // at_end: start the file's write-back now, without waiting for it, so that it proceeds while the run
  // goes on and the one syncfs at the end has little left to write (118 MB of originals: the final
  // syncfs took 3-10 ms instead of 80-150 ms on the development machine's disk, and scales with the
  // disk's speed). Advisory: an error here shows at that syncfs.
  if (durability == Durability::at_end) ::sync_file_range(file.fd(), 0, 0, SYNC_FILE_RANGE_WRITE);
  if (const int error = file.close(); error != 0) return failure(error);
  // rename replaces the directory entry: it never writes through a symlink, nor opens a FIFO or device
  // standing at the name. Such a thing was not written by pixflow (it writes regular files only), so it
  // is left alone and reported rather than replaced.
  if (struct stat existing {}; ::lstat(target.c_str(), &existing) == 0 && !S_ISREG(existing.st_mode))
    return Error{std::string("cannot write: name taken by a ") + kind_of(existing.st_mode), target.string()};
  if (::rename(temporary.c_str(), target.c_str()) != 0) return failure(errno);
  file.release();
  if (sync_each) sync_directory(dir);
  return target;
}

namespace {
Error sync_failure(int error, const std::filesystem::path& out) {
  return Error{"cannot sync: " + detail::errno_reason(error), out.string()};
}
}  // namespace

Expected<OutputSync> OutputSync::open(const std::filesystem::path& out) {
  const int fd = ::open(out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sync_failure(errno, out);
  return OutputSync(fd, out);
}

Expected<void> OutputSync::sync() const {
  // One syncfs writes back every dirty page and inode of the filesystem and commits its journal: the
  // files written since the last sync, their renames and the folder's entries, at the cost of one call.
  if (::syncfs(fd_) != 0) return sync_failure(errno, out_);
  return pixflow::ok();
}

OutputSync::OutputSync(OutputSync&& other) noexcept : fd_(std::exchange(other.fd_, -1)), out_(std::move(other.out_)) {}

OutputSync& OutputSync::operator=(OutputSync&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    out_ = std::move(other.out_);
  }
  return *this;
}

OutputSync::~OutputSync() {
  if (fd_ >= 0) ::close(fd_);
}

Expected<void> sync_output_folder(const std::filesystem::path& out) {
  auto durable = OutputSync::open(out);
  if (!durable) return std::move(durable).error();
  return durable->sync();
}

bool output_complete(const std::filesystem::path& out, std::string_view name) {
  if (!is_plain_name(name) || name.front() == '.') return false;  // outputs are never hidden files
  const std::filesystem::path path = out / std::filesystem::path(std::string(name));
  struct stat info {};
  // lstat: a symlink is not followed (nor anything opened), whatever it points to.
  return ::lstat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0;
}

namespace {
/// The pid a temporary's name carries ("<prefix><pid>-..."), or 0 when it carries none.
int writer_pid(std::string_view name) {
  name.remove_prefix(temporary_prefix.size());
  int pid = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  if (ec != std::errc{} || end == name.data() + name.size() || *end != '-' || pid <= 0) return 0;
  return pid;
}

/// True unless `name` is a temporary of a process that is still running (another run may be writing
/// into the same folder: a second worker, or a second pipeline in this process).
bool writer_is_gone(std::string_view name) {
  const int pid = writer_pid(name);
  if (pid == 0) return true;
  if (pid == ::getpid()) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}
}  // namespace

std::size_t remove_stale_temporaries(const std::filesystem::path& dir, Leftovers which) {
  std::size_t removed = 0;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return 0;
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::filesystem::directory_entry& entry = *it;
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(temporary_prefix)) continue;
    const bool stale =
        which == Leftovers::all_but_this_process ? writer_pid(name) != ::getpid() : writer_is_gone(name);
    if (!stale) continue;
    std::error_code entry_ec;
    if (!entry.is_regular_file(entry_ec) && !entry.is_symlink(entry_ec)) continue;
    if (std::filesystem::remove(entry.path(), entry_ec)) ++removed;
  }
  return removed;
}

}  // namespace pixflow::tasks
