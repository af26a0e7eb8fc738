#include "pixflow/tasks/decode.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <mutex>
#include <new>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "animation_detail.hpp"
#include "byte_order.hpp"
#include "colour_detail.hpp"
#include "container_detail.hpp"
#include "decode_detail.hpp"
#include "pixflow/tasks/thumbnail.hpp"

namespace pixflow::tasks {

namespace {

using detail::Bytes;
using detail::add_sat;
using detail::mul_sat;
using detail::orientation_copy;
using detail::too_large;

bool starts_with(Bytes bytes, std::string_view magic, std::size_t at = 0) {
  return bytes.size() >= at + magic.size() && std::memcmp(bytes.data() + at, magic.data(), magic.size()) == 0;
}

using detail::be16;
using detail::be32;
using detail::le16;
using detail::le24;
using detail::le32;

/// What the header tells: the stored (not yet oriented) size and the EXIF orientation (1..8), and what
/// the budget needs to know of the format.
struct Header {
  Size stored;
  int orientation = 1;
  bool animated = false;
  bool progressive = false;  // JPEG: progressive or multi-scan
  int bit_depth = 8;         // PNG IHDR; BMP bits per pixel
  int color_type = 2;        // PNG IHDR
  bool has_trns = false;     // PNG: a tRNS chunk before IDAT
};

Size displayed(const Header& header) {
  return header.orientation >= 5 ? Size{header.stored.height, header.stored.width} : header.stored;
}

/// Orientation (tag 0x0112) from a TIFF-structured EXIF block, with or without the "Exif\0\0" prefix.
int exif_orientation(Bytes exif) {
  if (starts_with(exif, std::string_view("Exif\0\0", 6))) exif = exif.subspan(6);
  if (exif.size() < 8) return 1;
  const bool little = starts_with(exif, "II");
  if (!little && !starts_with(exif, "MM")) return 1;
  auto u16 = [&](std::size_t at) { return little ? le16(exif.data() + at) : be16(exif.data() + at); };
  auto u32 = [&](std::size_t at) { return little ? le32(exif.data() + at) : be32(exif.data() + at); };
  if (u16(2) != 42) return 1;
  const std::size_t ifd = u32(4);
  if (ifd > exif.size() || exif.size() - ifd < 2) return 1;
  const std::size_t entries = u16(ifd);
  for (std::size_t i = 0; i < entries; ++i) {
    const std::size_t entry = ifd + 2 + 12 * i;
    if (entry + 12 > exif.size()) break;
    if (u16(entry) == 0x0112 && u16(entry + 2) == 3 /* SHORT */) {
      const auto value = static_cast<int>(u16(entry + 8));
      return value >= 1 && value <= 8 ? value : 1;
    }
  }
  return 1;
}

enum class JpegState { complete, truncated, corrupt };

struct JpegScan {
  JpegState state = JpegState::corrupt;
  std::optional<Header> header;  // set once a SOF marker was seen
};

/// Walks the JPEG marker structure. With `whole`, also walks every entropy-coded scan up to EOI, which
/// tells a truncated download from a complete one (libjpeg only warns and fills the rest with grey).
JpegScan scan_jpeg(Bytes b, bool whole) {
  JpegScan scan;
  int orientation = 1;
  int frame_components = 0;
  bool saw_scan = false;
  const std::size_t n = b.size();
  std::size_t pos = 2;  // after SOI
  for (;;) {
    if (pos >= n) { scan.state = JpegState::truncated; break; }
    if (b[pos] != 0xFF) { scan.state = JpegState::corrupt; break; }  // garbage where a marker belongs
    while (pos < n && b[pos] == 0xFF) ++pos;                            // fill bytes
    if (pos >= n) { scan.state = JpegState::truncated; break; }
    const std::uint8_t marker = b[pos++];
    if (marker == 0xD9) { scan.state = saw_scan ? JpegState::complete : JpegState::corrupt; break; }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    if (marker == 0x00 || marker == 0xD8) { scan.state = JpegState::corrupt; break; }
    if (pos + 2 > n) { scan.state = JpegState::truncated; break; }
    const std::size_t length = be16(b.data() + pos);
    if (length < 2) { scan.state = JpegState::corrupt; break; }
    if (pos + length > n) { scan.state = JpegState::truncated; break; }
    const Bytes segment = b.subspan(pos + 2, length - 2);
    pos += length;
    const bool is_sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_sof && !scan.header) {
      if (segment.size() < 6) { scan.state = JpegState::corrupt; break; }
      const auto height = static_cast<int>(be16(segment.data() + 1));
      const auto width = static_cast<int>(be16(segment.data() + 3));
      if (width == 0 || height == 0) { scan.state = JpegState::corrupt; break; }
      scan.header = Header{Size{width, height}, orientation, false};
      // SOF2/6/10/14 are progressive; a first scan with fewer components than the frame is multi-scan.
      scan.header->progressive = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE;
      frame_components = segment[5];
    } else if (marker == 0xE1 && orientation == 1 && !scan.header &&
               starts_with(segment, std::string_view("Exif\0\0", 6))) {
      orientation = exif_orientation(segment);
    } else if (marker == 0xDA) {
      if (!scan.header) { scan.state = JpegState::corrupt; break; }
      if (!saw_scan && !segment.empty() && segment[0] < frame_components) scan.header->progressive = true;
      saw_scan = true;
      if (!whole) { scan.state = JpegState::complete; break; }
      // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or RSTn inside it; anything else ends it.
      bool found = false;
      while (pos < n) {
        const auto* ff = static_cast<const std::uint8_t*>(std::memchr(b.data() + pos, 0xFF, n - pos));
        if (ff == nullptr) break;
        std::size_t at = static_cast<std::size_t>(ff - b.data());
        std::size_t next = at + 1;
        while (next < n && b[next] == 0xFF) ++next;
        if (next >= n) break;
        if (b[next] == 0x00 || (b[next] >= 0xD0 && b[next] <= 0xD7)) { pos = next + 1; continue; }
        pos = next - 1;  // the 0xFF right before the marker
        found = true;
        break;
      }
      if (!found) { scan.state = JpegState::truncated; break; }
    }
  }
  return scan;
}

std::optional<Header> png_header(Bytes b) {
  // Signature (8), then IHDR: length 13, "IHDR", width, height (big-endian), ...
  if (b.size() < 8 + 8 + 13 || !starts_with(b, "IHDR", 12) || be32(b.data() + 8) != 13) return std::nullopt;
  const std::uint32_t width = be32(b.data() + 16);
  const std::uint32_t height = be32(b.data() + 20);
  if (width == 0 || height == 0 || width > INT_MAX || height > INT_MAX) return std::nullopt;
  Header header{Size{static_cast<int>(width), static_cast<int>(height)}, 1, false};
  header.bit_depth = b[24];
  header.color_type = b[25];
  // Ancillary chunks before the image data: eXIf (orientation), tRNS (alpha, for the budget); acTL
  // (animated PNG) is not looked at: the first frame decodes.
  std::size_t pos = 8;
  while (pos + 8 <= b.size()) {
    const std::size_t length = be32(b.data() + pos);
    const Bytes type = b.subspan(pos + 4, 4);
    if (starts_with(type, "IDAT") || length > b.size() - pos - 8) break;
    if (starts_with(type, "eXIf")) header.orientation = exif_orientation(b.subspan(pos + 8, length));
    if (starts_with(type, "tRNS")) header.has_trns = true;
    pos += 12 + length;
  }
  return header;
}

/// The RIFF container holds as many bytes as its header says.
bool webp_complete(Bytes b) { return b.size() >= 12 && std::size_t{le32(b.data() + 4)} + 8 <= b.size(); }

std::optional<Header> webp_header(Bytes b) {
  if (b.size() < 30) return std::nullopt;
  Header header;
  const std::uint8_t* chunk = b.data() + 12;
  const std::uint8_t* data = chunk + 8;
  if (starts_with(b, "VP8X", 12)) {
    const std::uint8_t flags = data[0];
    header.animated = (flags & 0x02) != 0;
    header.stored = Size{static_cast<int>(le24(data + 4)) + 1, static_cast<int>(le24(data + 7)) + 1};
    if ((flags & 0x08) != 0) {  // an EXIF chunk follows somewhere
      std::size_t pos = 12;
      while (pos + 8 <= b.size()) {
        const std::size_t length = le32(b.data() + pos + 4);
        if (length > b.size() - pos - 8) break;
        if (starts_with(b, "EXIF", pos)) {
          header.orientation = exif_orientation(b.subspan(pos + 8, length));
          break;
        }
        pos += 8 + length + (length & 1);
      }
    }
  } else if (starts_with(b, "VP8 ", 12)) {
    // Lossy key frame: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
    if (data[3] != 0x9D || data[4] != 0x01 || data[5] != 0x2A) return std::nullopt;
    header.stored = Size{static_cast<int>(le16(data + 6) & 0x3FFF), static_cast<int>(le16(data + 8) & 0x3FFF)};
  } else if (starts_with(b, "VP8L", 12)) {
    // Lossless: signature 0x2f, then width-1 and height-1 in 14 bits each.
    if (data[0] != 0x2F) return std::nullopt;
    const std::uint32_t bits = le32(data + 1);
    header.stored = Size{static_cast<int>(bits & 0x3FFF) + 1, static_cast<int>((bits >> 14) & 0x3FFF) + 1};
  } else {
    return std::nullopt;
  }
  if (header.stored.width <= 0 || header.stored.height <= 0) return std::nullopt;
  return header;
}

/// BMP: the DIB header after the 14-byte file header. BITMAPCOREHEADER (12 bytes: 16-bit width and
/// height) or BITMAPINFOHEADER and its successors (32-bit, a negative height meaning top-down).
std::optional<Header> bmp_header(Bytes b) {
  if (b.size() < 14 + 12) return std::nullopt;
  const std::uint32_t dib = le32(b.data() + 14);
  std::int64_t width = 0;
  std::int64_t height = 0;
  int bits = 0;
  if (dib == 12) {
    width = le16(b.data() + 18);
    height = le16(b.data() + 20);
    bits = static_cast<int>(le16(b.data() + 24));
  } else {
    if (b.size() < 14 + 16) return std::nullopt;
    width = static_cast<std::int32_t>(le32(b.data() + 18));
    height = static_cast<std::int32_t>(le32(b.data() + 22));
    bits = static_cast<int>(le16(b.data() + 28));
  }
  if (height < 0) height = -height;  // top-down rows
  if (width <= 0 || height <= 0 || width > INT_MAX || height > INT_MAX) return std::nullopt;
  Header header{Size{static_cast<int>(width), static_cast<int>(height)}, 1, false};
  header.bit_depth = bits;
  return header;
}

std::optional<Header> read_header(Bytes bytes, ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg: return scan_jpeg(bytes, false).header;
    case ImageFormat::png: return png_header(bytes);
    case ImageFormat::webp: return webp_header(bytes);
    case ImageFormat::bmp: return bmp_header(bytes);
    default: return std::nullopt;
  }
}

/// The same transforms as OpenCV's own EXIF handling (loadsave.cpp ExifTransform).
void apply_orientation(cv::Mat& image, int orientation) {
  if (orientation >= 5 && orientation <= 8) cv::transpose(image, image);
  switch (orientation) {
    case 2: case 6: cv::flip(image, image, 1); break;
    case 3: case 7: cv::flip(image, image, -1); break;
    case 4: case 8: cv::flip(image, image, 0); break;
    default: break;
  }
}

/// 8-bit BGR, or BGRA when there is an alpha channel.
void normalize(cv::Mat& image) {
  if (image.depth() == CV_16U) {
    image.convertTo(image, CV_8U, 1.0 / 257.0);
  } else if (image.depth() == CV_32F || image.depth() == CV_64F) {
    image.convertTo(image, CV_8U, 255.0);
  } else if (image.depth() != CV_8U) {
    image.convertTo(image, CV_8U);
  }
  switch (image.channels()) {
    case 1: cv::cvtColor(image, image, cv::COLOR_GRAY2BGR); break;
    case 2: {  // grey + alpha
      cv::Mat bgra(image.size(), CV_8UC4);
      const int from_to[] = {0, 0, 0, 1, 0, 2, 1, 3};
      cv::mixChannels(&image, 1, &bgra, 1, from_to, 4);
      image = bgra;
      break;
    }
    default: break;
  }
}

/// OpenCV's own log lines (a decoder's complaint about a file) are for developers; a failed decode is
/// reported by its reason. Silenced once, process-wide, the first time anything is decoded.
void silence_opencv() {
  static std::once_flag once;
  std::call_once(once, [] { cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT); });
}

/// WebP and BMP through OpenCV's decoders (libwebp, OpenCV's own BMP reader), after the header was
/// budgeted. `flags`: IMREAD_UNCHANGED keeps WebP's alpha; IMREAD_COLOR for BMP.
Expected<cv::Mat> decode_with_opencv(Bytes bytes, int flags, const Error& corrupt) {
  // imdecode only reads the buffer; cv::Mat has no const view, hence the cast.
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                       const_cast<std::uint8_t*>(bytes.data()));  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  cv::Mat pixels = cv::imdecode(buffer, flags);
  if (pixels.empty()) return corrupt;
  return pixels;
}

/// An ISO base media file (MP4, MOV, 3GP, M4V): a first box of type `ftyp` whose major brand is not one
/// of a still-image format built on the same boxes (HEIF/HEIC, AVIF), which are not videos.
bool is_iso_video(Bytes b) {
  if (b.size() < 16 || !starts_with(b, "ftyp", 4)) return false;
  const std::uint32_t size = be32(b.data());
  if (size != 0 && size != 1 && size < 16) return false;  // 0: to the end of the file; 1: a 64-bit size follows
  static constexpr std::string_view kStillBrands[] = {"heic", "heix", "heim", "heis", "hevc", "hevx",
                                                      "mif1", "mif2", "msf1", "avif", "avis", "avio"};
  const std::string_view brand(reinterpret_cast<const char*>(b.data() + 8), 4);  // NOLINT: bytes as text
  return std::find(std::begin(kStillBrands), std::end(kStillBrands), brand) == std::end(kStillBrands);
}

/// A WebM file: the EBML header (ID 1A 45 DF A3) whose DocType (ID 42 82) is "webm". Matroska files
/// with another DocType are not taken: galleries serve WebM, and every format let in is attack surface.
bool is_webm(Bytes b) {
  if (!starts_with(b, "\x1A\x45\xDF\xA3")) return false;
  std::size_t pos = 4;
  const auto header_size = detail::ebml_vint(b, pos, false);
  if (!header_size) return false;
  const std::size_t end = std::min(b.size(), pos + static_cast<std::size_t>(std::min<std::uint64_t>(*header_size, 4096)));
  while (pos < end) {
    const auto id = detail::ebml_vint(b, pos, true);
    const auto size = detail::ebml_vint(b, pos, false);
    if (!id || !size || *size > end - pos) return false;
    if (*id == 0x4282) return std::string_view(reinterpret_cast<const char*>(b.data() + pos), *size) == "webm";  // NOLINT
    pos += static_cast<std::size_t>(*size);
  }
  return false;
}

}  // namespace

ImageFormat sniff_format(std::span<const std::uint8_t> bytes) {
  if (starts_with(bytes, "\xFF\xD8\xFF")) return ImageFormat::jpeg;
  if (starts_with(bytes, "\x89PNG\r\n\x1A\n")) return ImageFormat::png;
  if (starts_with(bytes, "RIFF") && starts_with(bytes, "WEBP", 8)) return ImageFormat::webp;
  if (starts_with(bytes, "GIF87a") || starts_with(bytes, "GIF89a")) return ImageFormat::gif;
  if (starts_with(bytes, std::string_view("II*\0", 4)) || starts_with(bytes, std::string_view("MM\0*", 4)))
    return ImageFormat::tiff;
  if (is_iso_video(bytes)) return ImageFormat::mp4;
  if (is_webm(bytes)) return ImageFormat::webm;
  if (starts_with(bytes, "BM") && bytes.size() >= 18) {
    // "BM" alone is too weak (text can start with it): also require a known DIB header size.
    switch (le32(bytes.data() + 14)) {
      case 12: case 40: case 52: case 56: case 64: case 108: case 124: return ImageFormat::bmp;
      default: break;
    }
  }
  return ImageFormat::unknown;
}

int reduce_factor_for(Size source, Size largest_box, ThumbnailMode mode) {
  if (source.width <= 0 || source.height <= 0 || largest_box.width <= 0 || largest_box.height <= 0) return 1;
  const Size target = fills_box(mode) ? cover_size(source, largest_box) : fit_within(source, largest_box);
  for (int factor : {8, 4, 2}) {
    if (source.width / factor >= 2 * target.width && source.height / factor >= 2 * target.height) return factor;
  }
  return 1;
}

MediaKind media_kind(std::span<const std::uint8_t> bytes) {
  switch (sniff_format(bytes)) {
    case ImageFormat::gif: {
      const auto layout = detail::inspect_gif(bytes);
      return layout && layout->frames > 1 ? MediaKind::animated : MediaKind::still;
    }
    case ImageFormat::webp: return detail::webp_is_animated(bytes) ? MediaKind::animated : MediaKind::still;
    case ImageFormat::mp4:
    case ImageFormat::webm: return MediaKind::video;
    default: return MediaKind::still;
  }
}

std::optional<Size> read_image_size(std::span<const std::uint8_t> bytes) {
  auto header = read_header(bytes, sniff_format(bytes));
  if (!header) return std::nullopt;
  return displayed(*header);
}

std::optional<ImageHeader> read_image_header(std::span<const std::uint8_t> bytes) {
  const ImageFormat format = sniff_format(bytes);
  const auto header = read_header(bytes, format);
  if (!header) return std::nullopt;
  ImageHeader out;
  out.format = format;
  out.size = displayed(*header);
  out.orientation = header->orientation;
  out.progressive = header->progressive;
  out.animated = header->animated;
  return out;
}

namespace {

Expected<DecodedImage> decode_checked(Bytes bytes, Size largest_box, std::size_t budget, ThumbnailMode mode) {
  const ImageFormat format = sniff_format(bytes);
  if (format == ImageFormat::unknown) return Error{"not an image"};
  if (format == ImageFormat::tiff) return Error{"unsupported format (tiff)"};
  const std::string name(name_of(format));
  // Videos have their own decoder and limits (video.hpp: decode_video_poster).
  if (format == ImageFormat::mp4 || format == ImageFormat::webm) return Error{"unsupported format (" + name + ")"};
  // GIF and animated WebP: the first frame, composed (animation.cpp).
  if (format == ImageFormat::gif || (format == ImageFormat::webp && detail::webp_is_animated(bytes))) {
    auto first = detail::decode_first_frame(bytes, format, budget);
    if (first && format == ImageFormat::webp) first->icc_profile = detail::webp_icc_profile(bytes);
    return first;
  }
  const Error corrupt{"corrupt " + name};
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) return Error{"image too large"};

  DecodedImage result;
  result.source_format = format;
  std::optional<Header> header;
  if (format == ImageFormat::jpeg) {
    // The marker structure first (cheap): garbage where a marker belongs is corrupt, a file that ends
    // inside a segment or scan is truncated. libjpeg then checks the entropy-coded data itself.
    auto scan = scan_jpeg(bytes, true);
    if (scan.state == JpegState::truncated) return Error{"truncated jpeg"};
    if (scan.state != JpegState::complete || !scan.header) return corrupt;
    auto jpeg = detail::decode_jpeg(bytes, scan.header->orientation, largest_box, budget, mode);
    if (!jpeg) return jpeg.error();
    result.pixels = std::move(jpeg->pixels);
    result.icc_profile = std::move(jpeg->icc_profile);
    result.reduce_factor = jpeg->reduce_factor;
    header = scan.header;
    header->stored = jpeg->stored;  // libjpeg's reading of the frame is the one decoded
  } else {
    header = read_header(bytes, format);
    if (!header) {
      // Cut before the header's end (PNG: signature + IHDR, 33 bytes; BMP: the DIB header's size
      // fields; WebP: the RIFF size) is a truncated download, anything else a corrupt file.
      const bool cut_short = format == ImageFormat::png ? bytes.size() < 33
                             : format == ImageFormat::bmp ? bytes.size() < 30
                                                          : !webp_complete(bytes);
      return cut_short ? Error{"truncated " + name} : corrupt;
    }
    const Size size = displayed(*header);
    const std::size_t pixels = mul_sat(static_cast<std::size_t>(size.width), static_cast<std::size_t>(size.height));
    if (format == ImageFormat::png) {
      if (detail::png_memory_needed(header->stored, header->bit_depth, header->color_type, header->has_trns,
                                    header->orientation) > budget)
        return too_large(size);
      auto png = detail::decode_png(bytes, header->orientation, budget, &result.icc_profile);
      if (!png) return png.error();
      result.pixels = std::move(*png);
    } else {  // webp, bmp: OpenCV decodes into one matrix (BGRA at most; BMP as BGR) plus small rows
      if (format == ImageFormat::webp && !webp_complete(bytes)) return Error{"truncated webp"};
      const std::size_t output = mul_sat(pixels, format == ImageFormat::webp ? 4 : 3);
      const std::size_t rows = mul_sat(static_cast<std::size_t>(header->stored.width), 8);
      if (add_sat(add_sat(output, orientation_copy(output, header->orientation)), rows) > budget)
        return too_large(size);
      auto decoded = decode_with_opencv(bytes, format == ImageFormat::webp ? cv::IMREAD_UNCHANGED : cv::IMREAD_COLOR,
                                        corrupt);
      if (!decoded) return decoded.error();
      result.pixels = std::move(*decoded);
      if (format == ImageFormat::webp) result.icc_profile = detail::webp_icc_profile(bytes);
      if (result.pixels.cols != header->stored.width || result.pixels.rows != header->stored.height) return corrupt;
    }
    normalize(result.pixels);
  }
  // OpenCV never orients here: PNG/JPEG are ours, WebP is read IMREAD_UNCHANGED, BMP has no EXIF.
  apply_orientation(result.pixels, header->orientation);
  result.source_size = displayed(*header);
  return result;
}

}  // namespace

Expected<DecodedImage> decode_image(std::span<const std::uint8_t> bytes, Size largest_box, DecodeLimits limits,
                                    ThumbnailMode mode) {
  if (bytes.empty()) return Error{"empty body"};
  silence_opencv();
  const ImageFormat format = sniff_format(bytes);
  return detail::reasons_of_exceptions(format, [&] { return decode_checked(bytes, largest_box, limits.max_memory_bytes, mode); });
}

}  // namespace pixflow::tasks
