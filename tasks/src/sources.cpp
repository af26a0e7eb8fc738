#include "pixflow/tasks/sources.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <system_error>

#include "errno_reason.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/naming.hpp"

namespace pixflow::tasks {

namespace {

std::string_view trim(std::string_view text) {
  const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return text;
}

}  // namespace

std::vector<std::string> read_url_list(std::istream& in) {
  std::vector<std::string> urls;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    std::string_view text = line;
    if (first && text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte-order mark
    first = false;
    text = trim(text);  // also drops the '\r' of CRLF
    if (text.empty() || text.front() == '#') continue;
    urls.emplace_back(text);
  }
  return urls;
}

Expected<std::vector<std::string>> read_url_list_file(const std::string& file) {
  if (file == "-") {
    auto urls = read_url_list(std::cin);
    if (std::cin.bad()) return Error{"cannot read standard input: " + std::string(std::strerror(errno))};
    return urls;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) return Error{"cannot read " + file + ": " + std::strerror(EISDIR)};
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{"cannot read " + file + ": " + std::strerror(errno)};
  auto urls = read_url_list(in);
  if (in.bad()) return Error{"cannot read " + file + ": " + std::strerror(errno)};
  return urls;
}

bool has_media_extension(const std::filesystem::path& file) {
  static constexpr std::array<std::string_view, 12> kExtensions{".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp",
                                                                ".tif", ".tiff", ".mp4", ".m4v", ".mov", ".webm"};
  const std::string extension = lower(file.extension().string());
  return std::find(kExtensions.begin(), kExtensions.end(), extension) != kExtensions.end();
}

namespace {

/// Why a regular file without an image extension is not taken, or "" when its first bytes are an image's.
std::string sniff_skip_reason(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "cannot read file: " + detail::errno_reason(errno);
  struct stat info {};
  std::array<std::uint8_t, 32> head{};
  ssize_t got = -1;
  std::string reason;
  if (::fstat(fd, &info) != 0) {
    reason = "cannot read file: " + detail::errno_reason(errno);
  } else if (!S_ISREG(info.st_mode)) {
    reason = "not a regular file";  // replaced since it was listed: never read
  } else {
    do {
      got = ::read(fd, head.data(), head.size());
    } while (got < 0 && errno == EINTR);
    if (got < 0) reason = "cannot read file: " + detail::errno_reason(errno);
  }
  ::close(fd);
  if (!reason.empty()) return reason;
  if (sniff_format(std::span<const std::uint8_t>(head.data(), static_cast<std::size_t>(got))) != ImageFormat::unknown)
    return {};
  const std::string extension = path.extension().string();
  return "unsupported file (" + (extension.empty() ? std::string("no extension") : lower(extension)) + ")";
}

/// The skip reason of one directory entry, or "" to take it; nullopt when it is not listed at all.
std::optional<std::string> classify(const std::filesystem::directory_entry& entry, bool out_is_dir) {
  namespace fs = std::filesystem;
  const std::string name = entry.path().filename().string();
  if (name.empty() || name.front() == '.') return std::nullopt;  // hidden, .pixflow-tmp-*, .pixflow.lock
  std::error_code ec;
  const fs::file_status own = entry.symlink_status(ec);
  if (ec) return "cannot read file: " + detail::errno_reason(ec.value());
  fs::file_status target = own;
  if (fs::is_symlink(own)) {
    target = fs::status(entry.path(), ec);  // follows the link
    if (target.type() == fs::file_type::not_found || (ec && ec.value() == ELOOP)) return "dangling symlink";
    if (ec) return "cannot read file: " + detail::errno_reason(ec.value());
  }
  if (fs::is_directory(target)) return std::nullopt;  // not an input, not recursive
  if (!fs::is_regular_file(target)) return "not a regular file";
  if (out_is_dir && is_thumbnail_name(name)) return "pixflow output";
  if (has_media_extension(entry.path())) return std::string();
  return sniff_skip_reason(entry.path());
}

}  // namespace

Expected<std::vector<FolderEntry>> scan_image_folder(const std::filesystem::path& dir,
                                                     const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) return Error{"no such folder: " + dir.string()};
  if (ec) return Error{"cannot read " + dir.string() + ": " + ec.message()};
  if (!fs::is_directory(status)) return Error{"not a folder: " + dir.string()};
  std::error_code same_ec;
  const bool out_is_dir = !out.empty() && fs::equivalent(dir, out, same_ec);

  std::vector<FolderEntry> entries;
  fs::directory_iterator it(dir, ec);
  if (ec) return Error{"cannot read " + dir.string() + ": " + ec.message()};
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (auto reason = classify(*it, out_is_dir)) entries.push_back({it->path(), std::move(*reason)});
  }
  if (ec) return Error{"cannot read " + dir.string() + ": " + ec.message()};
  std::sort(entries.begin(), entries.end(), [](const FolderEntry& a, const FolderEntry& b) {
    return a.path.filename().native() < b.path.filename().native();
  });
  return entries;
}

Expected<std::vector<std::filesystem::path>> list_image_folder(const std::filesystem::path& dir) {
  auto entries = scan_image_folder(dir);
  if (!entries) return std::move(entries).error();
  std::vector<std::filesystem::path> files;
  for (auto& entry : *entries)
    if (entry.skip_reason.empty()) files.push_back(std::move(entry.path));
  return files;
}

Expected<std::vector<std::uint8_t>> read_file(const std::filesystem::path& path, std::size_t max_bytes) {
  auto failure = [&](std::string reason) { return Error{std::move(reason), path.string()}; };
  // Not even opened when it is no regular file (opening a device can do things); checked again on the
  // descriptor below, in case it was replaced in between.
  struct stat before {};
  if (::stat(path.c_str(), &before) != 0) return failure("cannot read file: " + detail::errno_reason(errno));
  if (!S_ISREG(before.st_mode)) return failure("not a regular file");
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return failure("cannot read file: " + detail::errno_reason(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) return failure("cannot read file: " + detail::errno_reason(errno));
  if (!S_ISREG(info.st_mode)) return failure("not a regular file");
  const auto too_large = [&] { return failure("too large (> " + std::to_string(max_bytes) + " bytes)"); };
  const auto size = static_cast<std::uint64_t>(info.st_size);
  if (size > max_bytes) return too_large();
  const auto read_some = [fd](std::uint8_t* to, std::size_t count) {
    ssize_t n = 0;
    do {
      n = ::read(fd, to, count);
    } while (n < 0 && errno == EINTR);
    return n;
  };
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::size_t filled = 0;
  for (;;) {
    if (filled < bytes.size()) {
      const ssize_t n = read_some(bytes.data() + filled, bytes.size() - filled);
      if (n < 0) return failure("cannot read file: " + detail::errno_reason(errno));
      if (n == 0) break;  // shorter than fstat said: it shrank meanwhile
      filled += static_cast<std::size_t>(n);
      continue;
    }
    // At the size fstat gave: is there more? (The file grew meanwhile, or it is a /proc file saying 0.)
    std::array<std::uint8_t, 4096> more{};
    const ssize_t n = read_some(more.data(), more.size());
    if (n < 0) return failure("cannot read file: " + detail::errno_reason(errno));
    if (n == 0) break;
    if (static_cast<std::size_t>(n) > max_bytes - filled) return too_large();
    bytes.insert(bytes.end(), more.begin(), more.begin() + n);
    filled += static_cast<std::size_t>(n);
  }
  bytes.resize(filled);
  return bytes;
}

}  // namespace pixflow::tasks
