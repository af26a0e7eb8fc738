#pragma once
/// @file
/// Colour: pixels described by an embedded ICC profile (a phone's Display P3, a camera's Adobe RGB, a
/// grey profile) converted to sRGB with LittleCMS, and the sRGB profile a thumbnail may carry.
///
/// decode_image() keeps a JPEG's APP2 ICC_PROFILE, a PNG's iCCP and a WebP's ICCP chunk on
/// DecodedImage::icc_profile; make_thumbnail(const DecodedImage&, ...) converts each thumbnail after the
/// resize, when it is a few thousand pixels (thumbnail.hpp). CMYK JPEGs are converted while decoding
/// (their pixels cannot be BGR before), through their profile when they carry one.
///
/// Choices:
/// - Intent: relative colorimetric with black-point compensation (what Photoshop and libvips use by
///   default). Colours inside sRGB come out exactly as the profile says, which is what a thumbnail of a
///   photo should show; colours outside it (saturated P3 reds and greens) are clipped to the sRGB gamut
///   edge. Perceptual would compress the whole gamut instead, but the matrix/TRC profiles phones and
///   cameras embed have no perceptual tables, so LittleCMS would fall back to colorimetric anyway.
///   Black-point compensation maps a CMYK profile's black (paper and ink are never 0) onto sRGB's
///   black, so such images are not washed out; for RGB profiles (black at 0) it changes nothing.
/// - A broken or unusable profile (unparsable, not an RGB or grey profile for BGR pixels, no usable
///   transform) is an Error from convert_to_srgb and the pixels are left untouched; the thumbnail
///   stage then treats the image as sRGB, as libvips does ("no profile"): a bad metadata chunk must not
///   fail an image that decodes fine.
/// - Alpha is kept as it is (only the colour channels are converted).
/// - Transforms are cached per profile (most of a gallery shares one or two profiles): a transform
///   costs far more to build than to apply to one thumbnail.
///
/// @code
/// using namespace pixflow::tasks;
/// auto image = decode_image(body, Size{256, 256});
/// cv::Mat small = make_thumbnail(image->pixels, Size{256, 256});
/// if (auto done = convert_to_srgb(small, image->icc_profile); !done)
///   log(done.failure().reason);    // "invalid icc profile": small is unchanged, shown as sRGB
/// auto bytes = encode_image(small, ImageFormat::jpeg, EncodeOptions{.embed_srgb_profile = true});
/// @endcode
#include <cstdint>
#include <span>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks {

/// Converts `image` (8-bit BGR or BGRA, as decode_image gives) from the colour space of ICC profile
/// `icc` to sRGB, in place: relative colorimetric intent with black-point compensation, alpha kept.
/// An RGB profile converts the three channels; a grey profile converts the first channel (decode_image's
/// grey images are BGR with three equal channels) and gives neutral BGR. An empty `icc` does nothing.
/// Errors, with `image` untouched: "invalid icc profile" (LittleCMS cannot read it, or no transform can
/// be built from it), "unsupported icc profile (cmyk)" (or lab, ...: a profile whose colour space
/// is not RGB or grey), "unsupported pixels" (not 8-bit with 3 or 4 channels). Thread-safe.
Expected<void> convert_to_srgb(cv::Mat& image, std::span<const std::uint8_t> icc);

/// The sRGB profile that thumbnails carry when asked to (EncodeOptions::embed_srgb_profile): LittleCMS's
/// built-in sRGB (IEC 61966-2.1 primaries and tone curve), serialised; a few hundred bytes.
std::span<const std::uint8_t> srgb_icc_profile();

/// `encoded` (a JPEG, PNG or WebP file) with ICC profile `icc` embedded: JPEG APP2 ICC_PROFILE segments
/// right after SOI and APP0 (JFIF), a PNG iCCP chunk right after IHDR, a WebP ICCP chunk (through
/// libwebpmux, which turns a simple file into an extended one). Errors: "cannot embed icc profile in
/// <fmt>" for other formats, malformed input or a profile too large for the format (JPEG: 255 segments).
Expected<std::vector<std::uint8_t>> embed_icc_profile(std::span<const std::uint8_t> encoded, ImageFormat format,
                                                      std::span<const std::uint8_t> icc);

}  // namespace pixflow::tasks
