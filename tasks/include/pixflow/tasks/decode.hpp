#pragma once
/// @file
/// Decoding downloaded bytes into pixels, sized for the thumbnails to come, within a memory budget.
///
/// The format is told by magic bytes only (a server's Content-Type and a URL's extension lie), and only
/// an allow-list is decoded:
/// - JPEG, with libjpeg-turbo directly: shrink-on-load (DCT scaling by 1/2, 1/4, 1/8), libjpeg's
///   warnings treated as errors ("truncated jpeg" when data is missing, "corrupt jpeg" otherwise);
/// - PNG, with libpng directly (libpng's warnings, e.g. an incorrect sRGB profile, are not failures);
/// - WebP (libwebp) and BMP (OpenCV's own reader), through OpenCV once their header was budgeted.
/// TIFF is refused, "unsupported format (tiff)": libtiff (and the GDAL/JPEG/ZIP/LZW/JBIG codecs behind
/// it) is a large attack surface for a format that image galleries do not serve. GIF is refused too,
/// "unsupported format (gif)" (OpenCV 4.6 has no GIF decoder). Nothing else ever reaches OpenCV, whose
/// own logging is silenced: no decoder writes to stderr; the reason is in the Error.
///
/// Memory: before any pixel is decoded, the header is read and what the decoder will allocate is
/// counted (for a progressive JPEG, its whole-image coefficient arrays, which do not shrink with the
/// scale; for PNG, libpng's rows at the file's depth plus the 8-bit copy; the orientation copy) and
/// refused above DecodeLimits::max_memory_bytes as "image too large (WxH)". So the peak memory of one
/// decode is at most max_memory_bytes (512 MiB by default) plus the compressed bytes the caller holds,
/// plus decoder state below a megabyte; N decodes at once, N times that. EXIF orientation is applied so
/// phone photos stand upright, and alpha is kept for PNG/WebP. Failures are values.
///
/// @code
/// using namespace pixflow::tasks;
/// std::vector<std::uint8_t> body = download(...);
/// auto image = decode_image(body, Size{256, 256});     // the largest box asked for
/// if (!image) report(image.error().reason);            // "truncated jpeg", "image too large (WxH)", ...
/// else thumbnail_from(image->pixels);                  // BGR or BGRA, upright, >= 2x the box when large
///
/// auto small = decode_image(body, Size{256, 256}, DecodeLimits{64 << 20});  // a tighter budget
/// auto size = read_image_size(body);                   // std::optional<Size>, no pixel decoding
/// @endcode
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks {

/// The format told by the first bytes (JPEG, PNG, WebP, GIF, BMP, TIFF); ImageFormat::unknown otherwise.
/// Telling a format is not decoding it: see the allow-list above.
ImageFormat sniff_format(std::span<const std::uint8_t> bytes);

/// A decoded image, ready for make_thumbnail.
struct DecodedImage {
  cv::Mat pixels;             ///< 8-bit BGR, or BGRA when the source has alpha (PNG/WebP); upright.
  ImageFormat source_format = ImageFormat::unknown;  ///< from the magic bytes
  Size source_size;           ///< full size as displayed (after EXIF orientation), from the header
  int reduce_factor = 1;      ///< 1, 2, 4 or 8: the shrink-on-load factor used (JPEG only)
  /// The ICC profile the pixels are in (JPEG APP2 ICC_PROFILE, PNG iCCP, WebP ICCP), empty when the file
  /// has none (sRGB assumed). make_thumbnail(const DecodedImage&, ...) converts each thumbnail to sRGB
  /// with it (colour.hpp). Empty for CMYK JPEGs: they are converted to sRGB BGR while decoding.
  std::vector<std::uint8_t> icc_profile;
};

/// The memory one decode may use. The default admits a progressive 4:2:0 JPEG of about 170 megapixels
/// (3 bytes a pixel of coefficients), any baseline JPEG (libjpeg's limit, 65500x65500, is 200 MiB at
/// 1/8), an 8-bit RGBA PNG of about 130 megapixels, a 16-bit RGBA PNG of 44, and every WebP but the largest
/// (16383x16383 at 4 bytes a pixel is 1 GiB).
///
/// @code
/// auto image = decode_image(body, box, DecodeLimits{.max_memory_bytes = std::size_t{256} << 20});
/// @endcode
struct DecodeLimits {
  std::size_t max_memory_bytes = std::size_t{512} << 20;  ///< decoder allocations, output included
};

/// What the header tells, read without decoding pixels (the budget's input).
///
/// @code
/// if (auto header = read_image_header(body); header && header->progressive) { ... }
/// @endcode
struct ImageHeader {
  ImageFormat format = ImageFormat::unknown;
  Size size;                 ///< as displayed (EXIF orientation applied)
  int orientation = 1;       ///< EXIF orientation, 1..8 (1: as stored)
  bool progressive = false;  ///< JPEG progressive or multi-scan: decoded through whole-image buffers
  bool animated = false;     ///< an animated WebP (refused by decode_image)
};

/// The shrink-on-load factor for a JPEG of displayed size `source` whose thumbnails fit `largest_box`:
/// the largest of {2, 4, 8} that leaves at least twice the thumbnail's source pixels on both axes, else 1.
/// `fit`: twice the fitted thumbnail (fit_within(source, box)), e.g. 1600x1000 into 128x128 (thumbnail
/// 128x80): 4 (400x250 >= 256x160). `fill`: twice the box's cover (the image scaled so that it covers
/// the box: cover_size(source, box)), e.g. 1600x1000 into 128x128 (cover 205x128): 2 (800x500 >=
/// 410x256; 4 would leave 400x250).
int reduce_factor_for(Size source, Size largest_box, ThumbnailMode mode = ThumbnailMode::fit);

/// Decodes `bytes` for thumbnails that fit (or, with ThumbnailMode::fill, fill) `largest_box` (for several
/// boxes, their component-wise maximum). JPEG: shrink-on-load with reduce_factor_for(); other formats decode at full size (a reduced decode
/// would only resize them afterwards, with a worse filter than INTER_AREA). EXIF orientation is applied
/// (JPEG APP1, PNG eXIf, WebP EXIF). PNG/WebP with alpha (PNG: also tRNS) stay BGRA; 16-bit, palette and
/// grey sources become 8-bit BGR(A). The pixels are those OpenCV 4.6's cv::imdecode gave (JPEG:
/// IMREAD_REDUCED_COLOR_n; PNG: IMREAD_UNCHANGED, then 8-bit BGR(A)), but for a grey PNG with tRNS,
/// which now keeps its transparency. An embedded ICC profile is kept on DecodedImage::icc_profile (a
/// profile libjpeg or libpng find malformed is dropped, the image decoded as sRGB). CMYK and YCCK JPEGs
/// become sRGB BGR here: through their ICC profile with LittleCMS when they carry a usable CMYK one,
/// else with the naive conversion (R = (255-C)(255-K)/255, ...); the samples are read as Adobe's
/// inverted CMYK (0 = full ink) when the file has Adobe's APP14 marker, as Photoshop writes them, and as
/// plain CMYK otherwise, as libvips does.
/// Errors: "empty body", "not an image" (unknown magic), "unsupported format (gif)" / "(tiff)" /
/// "(animated webp)", "truncated jpeg" / "truncated png" / "truncated webp" (data missing), "corrupt
/// jpeg" / "corrupt png" / "corrupt webp" / "corrupt bmp", "image too large (WxH)" (WxH as displayed,
/// from the header; above `limits`), "out of memory" (an allocation failed, below the budget).
/// Does not start threads of its own beyond what cv::setNumThreads allows (the caller sets it).
Expected<DecodedImage> decode_image(std::span<const std::uint8_t> bytes, Size largest_box,
                                    DecodeLimits limits = {}, ThumbnailMode mode = ThumbnailMode::fit);

/// The header of a JPEG, PNG, WebP or BMP (JPEG SOF + APP1 EXIF, PNG IHDR + eXIf, WebP VP8/VP8L/VP8X +
/// EXIF, BMP DIB header); std::nullopt for other formats or a header that cannot be read.
std::optional<ImageHeader> read_image_header(std::span<const std::uint8_t> bytes);

/// Width and height as displayed (EXIF orientation applied), read from the header without decoding
/// pixels: read_image_header(bytes)->size.
std::optional<Size> read_image_size(std::span<const std::uint8_t> bytes);

}  // namespace pixflow::tasks
