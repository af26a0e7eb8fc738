#pragma once
// Internals shared by decode.cpp (sniffing, headers, dispatch, WebP/BMP through OpenCV), decode_jpeg.cpp
// (libjpeg-turbo) and decode_png.cpp (libpng). Not installed: the public API is pixflow/tasks/decode.hpp.
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <string>
#include <vector>

#include <opencv2/core.hpp>  // cv::Exception
#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/expected.hpp"

namespace pixflow::tasks::detail {

using Bytes = std::span<const std::uint8_t>;

/// a * b, or SIZE_MAX when it does not fit: budgets of hostile headers must not wrap around.
inline std::size_t mul_sat(std::size_t a, std::size_t b) {
  std::size_t out = 0;
  return __builtin_mul_overflow(a, b, &out) ? SIZE_MAX : out;
}
inline std::size_t add_sat(std::size_t a, std::size_t b) {
  std::size_t out = 0;
  return __builtin_add_overflow(a, b, &out) ? SIZE_MAX : out;
}

/// The stored (file) size turned as displayed for an EXIF orientation (5..8 swap the axes).
inline Size oriented(Size stored, int orientation) {
  return orientation >= 5 ? Size{stored.height, stored.width} : stored;
}

/// Bytes that apply_orientation() allocates for an image of `bytes`: a transpose (orientations 5..8)
/// makes a new matrix; flips work in place.
inline std::size_t orientation_copy(std::size_t bytes, int orientation) { return orientation >= 5 ? bytes : 0; }

/// The stable failure reasons of decode_image.
inline Error too_large(Size displayed) { return Error{"image too large (" + to_string(displayed) + ")"}; }
inline Error out_of_memory() { return Error{"out of memory"}; }

/// Runs `decode` (returning Expected<DecodedImage>) and turns what it throws into a reason: an
/// allocation that failed (std::bad_alloc, OpenCV's StsNoMem) is "out of memory", any other OpenCV
/// error "corrupt <format>". Shared by decode_image and decode_video_poster.
template <class Decode>
Expected<DecodedImage> reasons_of_exceptions(ImageFormat format, Decode&& decode) {
  try {
    return decode();
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  } catch (const cv::Exception& e) {
    if (e.code == cv::Error::StsNoMem) return out_of_memory();
    return Error{"corrupt " + std::string(name_of(format))};
  }
}

/// A JPEG decoded by libjpeg-turbo: 8-bit BGR in stored orientation (the caller orients it).
struct JpegPixels {
  cv::Mat pixels;
  Size stored;            ///< the frame size libjpeg read (before shrink-on-load)
  int reduce_factor = 1;  ///< the scale_denom used
  std::vector<std::uint8_t> icc_profile;  ///< APP2 ICC_PROFILE, empty for CMYK (converted here) or none
};

/// Decodes a JPEG with shrink-on-load for thumbnails fitting (`mode`) `largest_box`, refusing above
/// `budget` bytes (counting the copy that `orientation` will make). CMYK/YCCK become sRGB BGR (through
/// their ICC profile when usable). Reasons: "truncated jpeg", "corrupt jpeg", "image too large (WxH)",
/// "out of memory". Never writes to stderr.
Expected<JpegPixels> decode_jpeg(Bytes bytes, int orientation, Size largest_box, std::size_t budget,
                                 ThumbnailMode mode = ThumbnailMode::fit);

/// Decodes a PNG to 8-bit BGR or BGRA (alpha from an alpha channel or tRNS) in stored orientation; its
/// iCCP profile, if any and libpng accepts it, into `icc_profile` when given.
/// Reasons: "truncated png", "corrupt png", "image too large (WxH)", "out of memory".
Expected<cv::Mat> decode_png(Bytes bytes, int orientation, std::size_t budget,
                             std::vector<std::uint8_t>* icc_profile = nullptr);

/// Bytes a PNG decode needs at most: libpng's rows at the file's sample depth, our 8-bit BGR(A) copy
/// when a conversion is needed (16-bit or grey), and the orientation copy. Used before libpng starts
/// (from our IHDR parse) and again with libpng's own reading of IHDR.
std::size_t png_memory_needed(Size stored, int bit_depth, int color_type, bool has_trns, int orientation);

}  // namespace pixflow::tasks::detail
