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
/// if (photos) for (const auto& file : *photos) thumbnail(read_file(file).value());
/// @endcode
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

/// True for the image extensions a folder source picks up: .jpg .jpeg .png .webp .gif .bmp .tif .tiff,
/// in any case.
bool has_image_extension(const std::filesystem::path& file);

/// The regular files (or symlinks to them) of a folder that look like images by extension, sorted by
/// name, not recursive; hidden files (a leading '.', which includes pixflow's ".pixflow-tmp-*" files)
/// are skipped. Errors: "no such folder: <dir>", "not a folder: <dir>", "cannot read <dir>: <reason>".
Expected<std::vector<std::filesystem::path>> list_image_folder(const std::filesystem::path& dir);

/// The whole content of a file, read in one `read` sized by its length (a byte-by-byte copy through
/// istreambuf_iterator cost 2 ms per megabyte). Error: "cannot read file".
Expected<std::vector<std::uint8_t>> read_file(const std::filesystem::path& path);

}  // namespace pixflow::tasks
