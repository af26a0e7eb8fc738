#pragma once
/// @file
/// One output folder, one run at a time: a lock on OUT taken before anything is written into it.
///
/// Two local runs (gallery, urls, thumbs) into one OUT would claim the same names for different items
/// and overwrite each other's files, so each takes OUT exclusively and a second one fails at once with
/// the folder and the pid holding it. Redis workers share OUT by design (output names are deterministic,
/// two workers racing on one item write the same file atomically), so they take it shared: any number
/// of workers, but no local run at the same time.
///
/// The lock is flock(2) on OUT/.pixflow.lock (hidden: never an input, never an output; created once and
/// never removed, since removing a lock file races with its next user). It holds the pid and host of the
/// last exclusive holder, for the message. flock locks belong to an open file description: two
/// OutputLock objects conflict even within one process, and the lock ends when the object is destroyed
/// or the process exits, however it exits (no stale lock after kill -9). On NFS, Linux emulates flock
/// with byte-range locks, which the server arbitrates between machines.
///
/// Acquiring OUT also removes the temporaries left by crashed runs when nobody else is using the folder
/// (see remove_stale_temporaries: with the folder held exclusively, every temporary but this process's is
/// a leftover, even one whose pid was reused or belongs to another machine).
///
/// @code
/// using namespace pixflow::tasks;
/// auto lock = OutputLock::acquire("thumbs", OutputLock::Mode::exclusive);
/// if (!lock) { std::cerr << lock.error().reason << '\n'; return 2; }
///   // "output folder thumbs is in use by another pixflow run (pid 4242)"
/// run_pipeline(source, options);   // lock held until it goes out of scope
/// @endcode
#include <cstddef>
#include <filesystem>
#include <string_view>

#include "pixflow/tasks/expected.hpp"

namespace pixflow::tasks {

/// A held lock on an output folder; released when destroyed. Movable, not copyable.
class OutputLock {
 public:
  enum class Mode {
    exclusive,  ///< local runs: no other run, no worker
    shared,     ///< Redis workers: any number of workers, no local run
  };

  /// The lock file inside the output folder.
  static constexpr std::string_view file_name = ".pixflow.lock";

  /// Creates `out` if missing, then takes its lock without waiting (shared: retries for up to
  /// `shared_wait_s` while another worker briefly holds it exclusively to clean up). Errors (the reason
  /// names the folder: it is about the run, not an item):
  ///  "output folder OUT is in use by another pixflow run (pid N)" — held exclusively;
  ///  "output folder OUT is in use by pixflow workers (pid N, M)" — held shared, asked exclusively;
  ///  "cannot create output folder OUT: <reason>", "cannot lock output folder OUT: <reason>" (e.g. a
  ///  read-only folder: "permission denied").
  static Expected<OutputLock> acquire(const std::filesystem::path& out, Mode mode, double shared_wait_s = 5.0);

  OutputLock(OutputLock&& other) noexcept;
  OutputLock& operator=(OutputLock&& other) noexcept;
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  ~OutputLock();

  [[nodiscard]] Mode mode() const { return mode_; }
  [[nodiscard]] const std::filesystem::path& folder() const { return folder_; }
  /// Leftover temporaries removed when the lock was acquired.
  [[nodiscard]] std::size_t removed_temporaries() const { return removed_temporaries_; }

 private:
  OutputLock(int fd, Mode mode, std::filesystem::path folder, std::size_t removed);
  int fd_ = -1;
  Mode mode_ = Mode::exclusive;
  std::filesystem::path folder_;
  std::size_t removed_temporaries_ = 0;
};

}  // namespace pixflow::tasks
