#include "pixflow/tasks/sources.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <system_error>

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

bool has_image_extension(const std::filesystem::path& file) {
  static constexpr std::array<std::string_view, 8> kExtensions{".jpg", ".jpeg", ".png", ".webp",
                                                               ".gif", ".bmp",  ".tif", ".tiff"};
  const std::string extension = lower(file.extension().string());
  return std::find(kExtensions.begin(), kExtensions.end(), extension) != kExtensions.end();
}

Expected<std::vector<std::filesystem::path>> list_image_folder(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) return Error{"no such folder: " + dir.string()};
  if (ec) return Error{"cannot read " + dir.string() + ": " + ec.message()};
  if (!fs::is_directory(status)) return Error{"not a folder: " + dir.string()};

  std::vector<fs::path> files;
  fs::directory_iterator it(dir, ec);
  if (ec) return Error{"cannot read " + dir.string() + ": " + ec.message()};
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (name.empty() || name.front() == '.') continue;  // hidden, and .pixflow-tmp-* partial outputs
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || !has_image_extension(path)) continue;
    files.push_back(path);
  }
  if (ec) return Error{"cannot read " + dir.string() + ": " + ec.message()};
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().native() < b.filename().native(); });
  return files;
}

Expected<std::vector<std::uint8_t>> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Error{"cannot read file"};
  const std::streamoff size = in.tellg();
  if (size < 0) return Error{"cannot read file"};
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) return Error{"cannot read file"};
  return bytes;
}

}  // namespace pixflow::tasks
