#include "pixflow/tasks/image_types.hpp"

#include <cctype>
#include <charconv>

namespace pixflow::tasks {

namespace {
std::optional<int> parse_positive(std::string_view text) {
  int value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || value <= 0) return std::nullopt;
  return value;
}
}  // namespace

std::optional<Size> parse_size(std::string_view text) {
  const auto x = text.find_first_of("xX");
  if (x == std::string_view::npos) return std::nullopt;
  auto w = parse_positive(text.substr(0, x));
  auto h = parse_positive(text.substr(x + 1));
  if (!w || !h) return std::nullopt;
  return Size{*w, *h};
}

std::string to_string(Size size) {
  return std::to_string(size.width) + "x" + std::to_string(size.height);
}

std::optional<ThumbnailMode> parse_mode(std::string_view text) {
  if (text == "fit") return ThumbnailMode::fit;
  if (text == "fill") return ThumbnailMode::fill;
  if (text == "fill-attention") return ThumbnailMode::fill_attention;
  return std::nullopt;
}

std::string_view name_of(ThumbnailMode mode) {
  switch (mode) {
    case ThumbnailMode::fill: return "fill";
    case ThumbnailMode::fill_attention: return "fill-attention";
    case ThumbnailMode::fit: break;
  }
  return "fit";
}

std::optional<ImageFormat> parse_format(std::string_view text) {
  if (text == "same") return ImageFormat::same;
  if (text == "jpg" || text == "jpeg") return ImageFormat::jpeg;
  if (text == "png") return ImageFormat::png;
  if (text == "webp") return ImageFormat::webp;
  return std::nullopt;
}

std::string_view name_of(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg: return "jpeg";
    case ImageFormat::png: return "png";
    case ImageFormat::webp: return "webp";
    case ImageFormat::gif: return "gif";
    case ImageFormat::bmp: return "bmp";
    case ImageFormat::tiff: return "tiff";
    case ImageFormat::mp4: return "mp4";
    case ImageFormat::webm: return "webm";
    case ImageFormat::same: return "same";
    case ImageFormat::unknown: break;
  }
  return "unknown";
}

std::string_view name_of(MediaKind kind) {
  switch (kind) {
    case MediaKind::animated: return "animated";
    case MediaKind::video: return "video";
    case MediaKind::still: break;
  }
  return "still";
}

std::string_view extension_of(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg: return ".jpg";
    case ImageFormat::png: return ".png";
    case ImageFormat::webp: return ".webp";
    case ImageFormat::gif: return ".gif";
    case ImageFormat::bmp: return ".bmp";
    case ImageFormat::tiff: return ".tif";
    case ImageFormat::mp4: return ".mp4";
    case ImageFormat::webm: return ".webm";
    case ImageFormat::same:
    case ImageFormat::unknown: break;
  }
  return "";
}

ImageFormat format_of_name(std::string_view file_name) {
  const auto dot = file_name.rfind('.');
  if (dot == std::string_view::npos) return ImageFormat::unknown;
  std::string ext;
  for (const char c : file_name.substr(dot + 1)) ext += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "jpg" || ext == "jpeg") return ImageFormat::jpeg;
  if (ext == "png") return ImageFormat::png;
  if (ext == "webp") return ImageFormat::webp;
  if (ext == "gif") return ImageFormat::gif;
  if (ext == "bmp") return ImageFormat::bmp;
  if (ext == "tif" || ext == "tiff") return ImageFormat::tiff;
  if (ext == "mp4" || ext == "mov" || ext == "m4v") return ImageFormat::mp4;
  if (ext == "webm") return ImageFormat::webm;
  return ImageFormat::unknown;
}

}  // namespace pixflow::tasks
