#pragma once
/// @file
/// Atomic file writes: no partial file ever stands under its final name, and nothing is
/// written outside the output folder.
///
/// @code
/// using namespace pixflow::tasks;
/// remove_stale_temporaries(out_dir);                      // leftovers of a crashed run, before starting
/// auto path = write_file_atomically(out_dir, "aqua_thumbnail.jpg", bytes);
/// if (!path) report(path.error().reason, path.error().detail);  // "cannot write: no space left on device", path
/// @endcode
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "pixflow/tasks/expected.hpp"

namespace pixflow::tasks {

/// Every temporary file written by write_file_atomically starts with this. sanitize_name never produces
/// a name that does (names never start with a dot).
constexpr std::string_view temporary_prefix = ".pixflow-tmp-";

/// Writes `bytes` to dir/name atomically: a temporary file in the same directory (named
/// temporary_prefix + pid + random suffix, created exclusively and never through a symlink, mode 0666
/// minus umask), written fully, fsync'ed, then renamed over dir/name (replacing an older regular file of
/// that name), and the directory fsync'ed. The temporary file is removed on any failure. `name` must be a
/// plain file name: not empty, no '/' or NUL, not "." or "..", not starting with temporary_prefix;
/// otherwise Error "unsafe name". Nothing is ever written through a symlink or into a FIFO: the rename
/// replaces a directory entry and opens nothing, and a name already taken by something that is not a
/// regular file (pixflow writes nothing else) is left alone: "cannot write: name taken by a symlink"
/// (or "a fifo", "a folder", "a socket", "a device"). Other errors: "cannot write: <strerror>"
/// ("cannot write: no space left on device", "cannot write: permission denied"). Every reason starts
/// with "cannot write" and holds no path, so a full disk is one line of failures by reason; the path is
/// in Error::detail. Thread-safe.
Expected<std::filesystem::path> write_file_atomically(const std::filesystem::path& dir, std::string_view name,
                                                      std::span<const std::uint8_t> bytes);

/// True when out/name is a complete output of an earlier run: a non-empty regular file. Decided with
/// lstat, so a symlink (wherever it points), a FIFO, a folder or a socket named like an output is not
/// "done", and nothing is opened (a FIFO can never block the resume check). Files appear under their
/// final name only complete (write_file_atomically), so existing is enough. False for an unsafe name and
/// for a hidden one (a leading '.': no output is named so, e.g. ".pixflow.lock").
/// @code
/// if (!force && output_complete(out, "aqua_thumbnail.jpg")) skip("already done");
/// @endcode
bool output_complete(const std::filesystem::path& out, std::string_view name);

/// Which leftover temporaries remove_stale_temporaries removes.
enum class Leftovers {
  /// Those whose writer (the pid in the name) is no longer running on this machine. Safe without a
  /// lock among processes of one machine; NOT among machines sharing a network folder (a pid of another
  /// machine looks ended here).
  of_ended_processes,
  /// Every one but this process's: only while nobody else can be writing into the folder, i.e. while
  /// holding its OutputLock exclusively (output_lock.hpp does this when it acquires the folder).
  all_but_this_process,
};

/// Removes leftover temporary_prefix* regular files (or symlinks) in `dir` (after a crash or kill -9),
/// as `which` says; returns how many were removed. A missing dir counts 0.
std::size_t remove_stale_temporaries(const std::filesystem::path& dir,
                                     Leftovers which = Leftovers::of_ended_processes);

}  // namespace pixflow::tasks
