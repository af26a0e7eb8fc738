#pragma once
/// @file
/// Thumbnails: fit a decoded image inside a box (keeping its aspect) or fill the box (cropped around the
/// centre), never upscaling; convert it to sRGB when it carries an ICC profile; then encode it.
///
/// @code
/// using namespace pixflow::tasks;
/// auto image = decode_image(body, Size{128, 128}, {}, ThumbnailMode::fill);  // enough pixels to fill
/// if (!image) return image.error();
/// cv::Mat small = make_thumbnail(*image, Size{128, 128}, ThumbnailMode::fill);  // 128x128, sRGB
/// cv::Mat raw = make_thumbnail(image->pixels, Size{128, 128});         // fit, no colour conversion
/// ImageFormat format = output_format(image->source_format, ImageFormat::same);
/// auto bytes = encode_image(small, format, EncodeOptions{.jpeg_quality = 90});
/// if (!bytes) return bytes.error();                                    // "cannot encode as webp"
/// @endcode
#include <cstdint>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks {

/// The size that fits inside `box` keeping the aspect ratio of `source`: the limiting side equals the
/// box, the other is rounded and at least 1. Never larger than `source` (no upscale).
/// Throws std::invalid_argument when a width or height is not positive (a programming error).
Size fit_within(Size source, Size box);

/// The size `source` is scaled to so that it covers `box` keeping its aspect ratio (what `fill` crops
/// from): the side that limits equals the box, the other is at least the box's. `source` itself when it
/// does not cover the box on both axes (no upscale). E.g. 1600x1000 into 128x128: 205x128.
/// Throws std::invalid_argument when a width or height is not positive.
Size cover_size(Size source, Size box);

/// A copy of `image` (BGR or BGRA, 8-bit) made to meet `box` with cv::INTER_AREA, never upscaled:
/// - `fit`: resized to fit_within(its size, box), or a clone when it already fits;
/// - `fill`: the centred region of the box's aspect ratio, resized to exactly the box. An image smaller
///   than the box on a side cannot fill it without upscaling: it keeps its scale and the centred region
///   of the box's aspect ratio is cut from it (a 200x100 image into 128x128 gives 100x100);
/// - `fill_attention`: as `fill`, from the region thumbnail_region picks where the eye goes, measured on
///   the image scaled to cover the box (at the scale it is seen at).
/// BGRA is resized with premultiplied alpha, so transparent pixels do not bleed their (meaningless)
/// colour into the edges. No colour conversion: see the DecodedImage overload.
cv::Mat make_thumbnail(const cv::Mat& image, Size box, ThumbnailMode mode = ThumbnailMode::fit);

/// The part of `image` a thumbnail of `box` is made from: all of it for `fit`; for `fill` the centred
/// region of the box's aspect ratio; for `fill_attention` a region of that same size slid along the
/// free axis to where the image draws the eye most — the edges of its lightness (Sobel), skin tones and
/// saturated colours, libvips' "attention" measures, summed over the region on a copy at most 256
/// pixels long. An image with nothing of interest, or as much anywhere, keeps the centre.
/// @code
/// cv::Rect where = thumbnail_region(photo, Size{128, 128}, ThumbnailMode::fill_attention);
/// cv::Mat same = make_thumbnail(photo(where), Size{128, 128}, ThumbnailMode::fill);  // what make_thumbnail gives
/// @endcode
cv::Rect thumbnail_region(const cv::Mat& image, Size box, ThumbnailMode mode);

/// The thumbnail of a decoded image: make_thumbnail(image.pixels, box, mode), then converted to sRGB
/// with image.icc_profile (convert_to_srgb, colour.hpp) — after the resize, on a few thousand pixels
/// instead of millions. A profile that cannot be used (broken, or of another colour space) is ignored:
/// the pixels are taken as sRGB, as libvips does, and the item does not fail.
cv::Mat make_thumbnail(const DecodedImage& image, Size box, ThumbnailMode mode = ThumbnailMode::fit);

/// Encoder settings; each in the range OpenCV accepts (JPEG 0..100, WebP 1..100, PNG 0..9).
struct EncodeOptions {
  int jpeg_quality = 85;
  int webp_quality = 80;
  int png_compression = 3;
  /// Embed the sRGB ICC profile (srgb_icc_profile(), colour.hpp) that the pixels are in: JPEG APP2, PNG
  /// iCCP, WebP ICCP (config `thumbnail.keep_metadata`). Off, a thumbnail carries no metadata at all: no
  /// EXIF (its orientation is already applied, its sizes no longer true, and it may hold a GPS
  /// position), no XMP, no profile (browsers take untagged images as sRGB, which they are).
  bool embed_srgb_profile = false;
};

/// Encodes `image` as jpeg, png or webp. BGRA into JPEG is composited on white (JPEG has no alpha); PNG
/// and WebP keep it. Nothing but the pixels is written (JPEG: a JFIF header), unless
/// `options.embed_srgb_profile` asks for the sRGB profile. Error "cannot encode as <fmt>" for other formats (`same` must be resolved with
/// output_format first) or when the encoder fails. Throws std::invalid_argument for options out of range.
Expected<std::vector<std::uint8_t>> encode_image(const cv::Mat& image, ImageFormat format,
                                                 const EncodeOptions& options = {});

/// The output format for a source: `requested` unless it is `same`; for `same`, jpeg/png/webp stay as
/// they are, a video's poster (mp4, webm) becomes jpeg and anything else (gif, bmp, tiff, ...) png.
ImageFormat output_format(ImageFormat source, ImageFormat requested);

}  // namespace pixflow::tasks
