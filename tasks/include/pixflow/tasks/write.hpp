#pragma once
/// @file
/// Atomic file writes (DESIGN.md fact 8): no partial file ever stands under its final name, and nothing is
/// written outside the output folder.
///
/// @code
/// using namespace pixflow::tasks;
/// remove_stale_temporaries(out_dir);                      // leftovers of a crashed run, before starting
/// auto path = write_file_atomically(out_dir, "aqua_thumbnail.jpg", bytes);
/// if (!path) report(path.error().reason);                 // "unsafe name", "cannot write ...: ..."
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
/// temporary_prefix + random suffix, created exclusively, mode 0666 minus umask), written fully, fsync'ed,
/// then renamed over dir/name (replacing an older file of that name), and the directory fsync'ed. The
/// temporary file is removed on any failure. `name` must be a plain file name: not empty, no '/' or NUL,
/// not "." or "..", not starting with temporary_prefix; otherwise Error "unsafe name". Other errors:
/// "cannot write <dir>/<name>: <reason>" (e.g. "...: no such file or directory"). Thread-safe.
Expected<std::filesystem::path> write_file_atomically(const std::filesystem::path& dir, std::string_view name,
                                                      std::span<const std::uint8_t> bytes);

/// Removes leftover temporary_prefix* regular files in `dir` (after a crash or kill -9) whose writing
/// process is gone (the pid is part of the name), so runs and workers sharing a folder never remove
/// each other's files in progress; returns how many were removed. A missing dir counts 0.
std::size_t remove_stale_temporaries(const std::filesystem::path& dir);

}  // namespace pixflow::tasks
