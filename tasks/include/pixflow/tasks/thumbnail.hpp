#pragma once
/// @file
/// Thumbnails: fit a decoded image inside a box (keeping its aspect, never upscaling), then encode it.
///
/// @code
/// using namespace pixflow::tasks;
/// auto image = decode_image(body, Size{128, 128});
/// if (!image) return image.error();
/// cv::Mat small = make_thumbnail(image->pixels, Size{128, 128});       // INTER_AREA, alpha kept
/// ImageFormat format = output_format(image->source_format, ImageFormat::same);
/// auto bytes = encode_image(small, format, EncodeOptions{.jpeg_quality = 90});
/// if (!bytes) return bytes.error();                                    // "cannot encode as webp"
/// @endcode
#include <cstdint>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks {

/// The size that fits inside `box` keeping the aspect ratio of `source`: the limiting side equals the
/// box, the other is rounded and at least 1. Never larger than `source` (no upscale).
/// Throws std::invalid_argument when a width or height is not positive (a programming error).
Size fit_within(Size source, Size box);

/// A copy of `image` (BGR or BGRA, 8-bit) resized to fit_within(its size, box) with cv::INTER_AREA, or a
/// clone when it already fits. BGRA is resized with premultiplied alpha, so transparent pixels do not
/// bleed their (meaningless) colour into the edges.
cv::Mat make_thumbnail(const cv::Mat& image, Size box);

/// Encoder settings; each in the range OpenCV accepts (JPEG 0..100, WebP 1..100, PNG 0..9).
struct EncodeOptions {
  int jpeg_quality = 85;
  int webp_quality = 80;
  int png_compression = 3;
};

/// Encodes `image` as jpeg, png or webp. BGRA into JPEG is composited on white (JPEG has no alpha); PNG
/// and WebP keep it. Error "cannot encode as <fmt>" for other formats (`same` must be resolved with
/// output_format first) or when the encoder fails. Throws std::invalid_argument for options out of range.
Expected<std::vector<std::uint8_t>> encode_image(const cv::Mat& image, ImageFormat format,
                                                 const EncodeOptions& options = {});

/// The output format for a source: `requested` unless it is `same`; for `same`, jpeg/png/webp stay as
/// they are and anything else (bmp, tiff, ...) becomes png.
ImageFormat output_format(ImageFormat source, ImageFormat requested);

}  // namespace pixflow::tasks
