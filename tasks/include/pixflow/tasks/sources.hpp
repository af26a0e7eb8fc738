#pragma once
/// @file
/// The non-gallery sources of work: a list of URLs (a file or stdin) and a folder of local images.
///
/// @code
/// using namespace pixflow::tasks;
/// Expected<std::vector<std::string>> urls = read_url_list_file("urls.txt");   // "-" reads stdin
/// if (!urls) std::cerr << urls.error().reason << '\n';  // "cannot read urls.txt: No such file or directory"
///
/// Expected<std::vector<std::filesystem::path>> photos = list_image_folder("holiday");
/// if (photos) for (const auto& file : *photos) thumbnail(read_file(file, 64u << 20).value());
/// @endcode
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "pixflow/tasks/expected.hpp"

namespace pixflow::tasks {

/// A URL list: one URL per line, leading/trailing whitespace trimmed, blank lines and lines starting
/// with '#' skipped; CRLF line ends and a leading UTF-8 byte-order mark are accepted. No validation:
/// a bad URL fails later, as that item's error.
std::vector<std::string> read_url_list(std::istream& in);

/// read_url_list on a file; "-" means std::cin. Error: "cannot read <file>: <strerror>".
Expected<std::vector<std::string>> read_url_list_file(const std::string& file);

/// True for the extensions a folder source picks up, in any case: images (.jpg .jpeg .png .webp .gif .bmp
/// .tif .tiff) and videos (.mp4 .m4v .mov .webm: a poster, or skipped, as `thumbnail.video` says).
bool has_media_extension(const std::filesystem::path& file);

/// One entry of an input folder: a file to thumbnail, or one that is not taken, and why.
struct FolderEntry {
  std::filesystem::path path;  ///< dir / name
  std::string skip_reason;     ///< empty: an image to thumbnail; else why not ("not a regular file", ...)
};

/// Every file of a folder that is an input or could be mistaken for one, sorted by name (bytes), not
/// recursive. Taken (skip_reason empty): a regular file, or a symlink to one, named with an image
/// extension (has_media_extension), or without one but starting with an image's magic bytes
/// (sniff_format: a JPEG named "IMG_0001" or "photo.jpg_large"; its first 32 bytes are read, opened
/// non-blocking). Reported as skipped, so every file shows up in the report:
///  - "unsupported file (.heic)" / "unsupported file (no extension)": a regular file that is no image
///    pixflow reads;
///  - "dangling symlink": a symlink to nothing (or a loop);
///  - "not a regular file": a FIFO, socket or device (or a symlink to one), never opened;
///  - "pixflow output": a thumbnail name (is_thumbnail_name) when `out` is this same folder, so a rerun
///    into the input folder never thumbnails its own thumbnails;
///  - "cannot read file: <reason>": a file whose kind or first bytes cannot be read.
/// Not listed at all: folders (and symlinks to them) and hidden files (a leading '.', which includes
/// pixflow's ".pixflow-tmp-*" temporaries and ".pixflow.lock").
/// Errors: "no such folder: <dir>", "not a folder: <dir>", "cannot read <dir>: <reason>".
/// @code
/// auto entries = scan_image_folder("holiday", "holiday");   // thumbnails written beside the photos
/// for (const auto& e : *entries)
///   if (e.skip_reason.empty()) thumbnail(read_file(e.path).value()); else note(e.path, e.skip_reason);
/// @endcode
Expected<std::vector<FolderEntry>> scan_image_folder(const std::filesystem::path& dir,
                                                     const std::filesystem::path& out = {});

/// The taken files of scan_image_folder(dir) (those with no skip_reason), in the same order.
Expected<std::vector<std::filesystem::path>> list_image_folder(const std::filesystem::path& dir);

/// Largest file read_file returns by default: the default cap of a download ("max_bytes", 64 MiB).
inline constexpr std::size_t default_max_file_bytes = 64u << 20;

/// The whole content of a regular file, at most `max_bytes` long. Opened with O_NONBLOCK and checked
/// with fstat before anything is read, so a FIFO, socket or device standing at `path` is refused and
/// never blocks: "not a regular file". A file longer than max_bytes (or one that grows past it while
/// read): "too large (> N bytes)". Others: "cannot read file: <reason>" ("no such file or directory").
/// The reasons carry no path (they group in a report); Error::detail holds the path.
Expected<std::vector<std::uint8_t>> read_file(const std::filesystem::path& path,
                                              std::size_t max_bytes = default_max_file_bytes);

}  // namespace pixflow::tasks
