#pragma once
/// @file
/// Atomic file writes: no partial file ever stands under its final name, and nothing is
/// written outside the output folder; how durable each file is against power loss is a choice
/// (Durability), paid per file or once at the end of the run.
///
/// @code
/// using namespace pixflow::tasks;
/// remove_stale_temporaries(out_dir);                      // leftovers of a crashed run, before starting
/// auto path = write_file_atomically(out_dir, "aqua_thumbnail.jpg", bytes, Durability::at_end);
/// if (!path) report(path.error().reason, path.error().detail);  // "cannot write: no space left on device", path
/// auto durable = OutputSync::open(out_dir);              // at the start: reports write-back errors from now on
/// // ... every write of the run ...
/// if (auto synced = durable->sync(); !synced) warn(synced.failure().reason);  // "cannot sync: ..."
/// @endcode
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "pixflow/tasks/expected.hpp"

namespace pixflow::tasks {

/// Every temporary file written by write_file_atomically starts with this. sanitize_name never produces
/// a name that does (names never start with a dot).
constexpr std::string_view temporary_prefix = ".pixflow-tmp-";

/// How hard a written file is pushed to stable storage, i.e. what survives a power loss or a kernel
/// crash. Every mode keeps what survives `kill -9`, which needs no sync at all: a file only ever appears
/// under its final name complete (temporary + rename; the page cache holds it whatever happens to the
/// process), and a rerun removes the leftover temporaries (docs/design.md §11).
///
/// @code
/// Durability d = parse_durability("at-end").value();   // the config's spelling; to_string(d) == "at-end"
/// @endcode
enum class Durability {
  /// fsync the file before the rename and the folder after it: on disk when write_file_atomically
  /// returns. Two fsyncs per file (1,600 for 400 photos and their thumbnails: 1.7 s of the disk threads).
  per_item,
  /// No fsync per file (its write-back is started, not waited for: sync_file_range(2)); the caller
  /// syncs OUT once at the end of the run (OutputSync: one syncfs(2)), and a Redis worker before it
  /// acknowledges a batch. A power loss (not a kill) before that sync may leave the files written
  /// since the last sync missing, empty or cut short, as the filesystem had written them back: after
  /// one, rerun with --force (a resume trusts what stands).
  at_end,
  /// Never synced by pixflow: the kernel writes the files back on its own (ext4 and XFS: within ~30 s).
  none,
};

/// The config's spelling of `d`: "per-item", "at-end", "none".
std::string_view to_string(Durability d);
/// The Durability spelled `text` ("per-item", "at-end", "none"), or nullopt.
std::optional<Durability> parse_durability(std::string_view text);

/// Writes `bytes` to dir/name atomically: a temporary file in the same directory (named
/// temporary_prefix + pid + random suffix, created exclusively and never through a symlink, mode 0666
/// minus umask), written fully, then renamed over dir/name (replacing an older regular file of that
/// name). With Durability::per_item (the default here) the temporary is fsync'ed before the rename and
/// the directory after it; at_end starts the file's write-back, none does nothing more (see
/// Durability). The temporary file is removed on any failure. `name` must be a plain file name: not
/// empty, no '/' or NUL, not "." or "..", not starting with temporary_prefix; otherwise Error "unsafe name". Nothing is ever written through a symlink or into a FIFO: the rename
/// replaces a directory entry and opens nothing, and a name already taken by something that is not a
/// regular file (pixflow writes nothing else) is left alone: "cannot write: name taken by a symlink"
/// (or "a fifo", "a folder", "a socket", "a device"). Other errors: "cannot write: <strerror>"
/// ("cannot write: no space left on device", "cannot write: permission denied"). Every reason starts
/// with "cannot write" and holds no path, so a full disk is one line of failures by reason; the path is
/// in Error::detail. Thread-safe.
Expected<std::filesystem::path> write_file_atomically(const std::filesystem::path& dir, std::string_view name,
                                                      std::span<const std::uint8_t> bytes,
                                                      Durability durability = Durability::per_item);

/// OUT held open for a run, to make what the run wrote durable (Durability::at_end) with syncfs(2): file
/// data, the renames and the folder itself, in one call. syncfs reports the write-back errors of the
/// filesystem since the descriptor was opened (Linux >= 5.8: EIO, ENOSPC, EDQUOT), so open it when the
/// run starts: an error of a write-back the kernel did on its own mid-run is then reported too, once.
/// A sync also writes back other dirty files of that filesystem: one per run, or per batch of a Redis
/// worker's acknowledgements, never per file. Move-only; sync() is thread-safe.
/// @code
/// auto durable = OutputSync::open(out);          // at the start of the run, once OUT exists
/// // ... write_file_atomically(out, name, bytes, Durability::at_end) for every file ...
/// if (auto synced = durable->sync(); !synced)   // "cannot sync: input/output error", OUT in the detail
///   std::cerr << "pixflow: " << synced.failure().reason << " (" << synced.failure().detail << ")\n";
/// @endcode
class OutputSync {
 public:
  /// Opens `out` (a folder); Error "cannot sync: <strerror>" with `out` in the detail when it cannot.
  static Expected<OutputSync> open(const std::filesystem::path& out);
  /// One syncfs of OUT's filesystem; Error "cannot sync: <strerror>" (OUT in the detail) when the kernel
  /// reports a write-back error since open() or the previous sync().
  [[nodiscard]] Expected<void> sync() const;

  OutputSync(OutputSync&& other) noexcept;
  OutputSync& operator=(OutputSync&& other) noexcept;
  OutputSync(const OutputSync&) = delete;
  OutputSync& operator=(const OutputSync&) = delete;
  ~OutputSync();

 private:
  OutputSync(int fd, std::filesystem::path out) : fd_(fd), out_(std::move(out)) {}
  int fd_ = -1;
  std::filesystem::path out_;
};

/// OutputSync::open(out) then sync(): everything written into `out` so far made durable, in one call;
/// write-back errors are reported only from the moment it opens `out` (hold an OutputSync for a run).
/// @code
/// if (auto synced = sync_output_folder(out); !synced) std::cerr << synced.failure().reason << '\n';
/// @endcode
Expected<void> sync_output_folder(const std::filesystem::path& out);

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
