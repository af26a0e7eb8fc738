#pragma once
/// @file
/// Decoding downloaded bytes into pixels, sized for the thumbnails to come (DESIGN.md facts 5 and 6).
///
/// The format is told by magic bytes only (a server's Content-Type and a URL's extension lie). JPEGs are
/// shrunk on load (libjpeg's DCT scaling through `IMREAD_REDUCED_COLOR_2/4/8`), EXIF orientation is
/// applied so phone photos stand upright, and alpha is kept for PNG/WebP. Failures are values.
///
/// @code
/// using namespace pixflow::tasks;
/// std::vector<std::uint8_t> body = download(...);
/// auto image = decode_image(body, Size{256, 256});     // the largest box asked for
/// if (!image) report(image.error().reason);            // "corrupt jpeg", "unsupported format (gif)", ...
/// else thumbnail_from(image->pixels);                  // BGR or BGRA, upright, >= 2x the box when large
///
/// auto size = read_image_size(body);                   // std::optional<Size>, no pixel decoding
/// @endcode
#include <cstdint>
#include <optional>
#include <span>

#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks {

/// The format told by the first bytes (JPEG, PNG, WebP, GIF, BMP, TIFF); ImageFormat::unknown otherwise.
ImageFormat sniff_format(std::span<const std::uint8_t> bytes);

/// A decoded image, ready for make_thumbnail.
struct DecodedImage {
  cv::Mat pixels;             ///< 8-bit BGR, or BGRA when the source has alpha (PNG/WebP); upright.
  ImageFormat source_format = ImageFormat::unknown;  ///< from the magic bytes
  Size source_size;           ///< full size as displayed (after EXIF orientation), from the header
  int reduce_factor = 1;      ///< 1, 2, 4 or 8: the IMREAD_REDUCED_* factor used (JPEG only)
};

/// Images whose decoded pixels would exceed this are refused ("image too large"): a 100-byte PNG can
/// claim 60000x60000 pixels. Counted after shrink-on-load, so large JPEGs still pass at 1/8.
inline constexpr std::int64_t max_decoded_pixels = std::int64_t{64} * 1024 * 1024;

/// The shrink-on-load factor for a JPEG of displayed size `source` whose thumbnails fit `largest_box`:
/// the largest of {2, 4, 8} that leaves at least twice the fitted thumbnail (fit_within(source, box)) on
/// both axes, else 1. E.g. 1600x1000 into 128x128 (thumbnail 128x80): 4 (400x250 >= 256x160).
int reduce_factor_for(Size source, Size largest_box);

/// Decodes `bytes` for thumbnails that fit `largest_box` (for several boxes, their component-wise maximum).
/// JPEG: shrink-on-load with reduce_factor_for(); other formats decode at full size (OpenCV's reduced
/// modes would only resize them afterwards, with a worse filter than INTER_AREA). EXIF orientation is
/// applied (by OpenCV for JPEG, and here for PNG eXIf / WebP EXIF chunks, which OpenCV skips when keeping
/// alpha). PNG/WebP with alpha stay BGRA; 16-bit and grey sources become 8-bit BGR(A).
/// Errors: "empty body", "unsupported format (gif)", "not an image" (unknown magic), "corrupt jpeg" /
/// "corrupt png" / "corrupt webp" (also when truncated), "image too large (WxH)".
/// Does not start threads of its own beyond what cv::setNumThreads allows (the caller sets it, fact 4).
Expected<DecodedImage> decode_image(std::span<const std::uint8_t> bytes, Size largest_box);

/// Width and height as displayed (EXIF orientation applied), read from the header without decoding
/// pixels: JPEG SOF marker + APP1 EXIF, PNG IHDR + eXIf, WebP VP8/VP8L/VP8X + EXIF. std::nullopt for other
/// formats or a header that cannot be read.
std::optional<Size> read_image_size(std::span<const std::uint8_t> bytes);

}  // namespace pixflow::tasks
