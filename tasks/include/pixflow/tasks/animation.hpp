#pragma once
/// @file
/// Animated thumbnails: every frame of a GIF or animated WebP, composed, resized and encoded again as an
/// animated WebP (libwebp's WebPAnimEncoder) or GIF (giflib), frame count and timing kept.
///
/// Decoding is bounded before any pixel is decoded: the file's blocks are walked first (a GIF's frames
/// are counted without decompressing them; a WebP's demuxer reads its chunk list), a file of more than
/// AnimationLimits::max_frames frames is refused ("too many frames (N > cap)"), and the memory the
/// decode will hold is counted against DecodeLimits::max_memory_bytes: the decoder's canvases, the
/// resize's temporaries for one canvas, and every frame kept (frames x width x height x 4 bytes, at the
/// size the frames are kept: fitted to the largest box, not the canvas). A 10,000-frame GIF or a
/// 65535x65535 canvas is refused in microseconds.
///
/// @code
/// using namespace pixflow::tasks;
/// auto animation = decode_animation(body, Size{256, 256}, DecodeLimits{}, AnimationLimits{.max_frames = 500});
/// if (!animation) return animation.error();              // "too many frames (10000 > 500)", "truncated gif"
/// Animation small = make_animated_thumbnail(*animation, Size{128, 128});
/// ImageFormat format = animated_output_format(animation->source_format, ImageFormat::same);   // gif -> gif
/// auto bytes = encode_animation(small, format, EncodeOptions{.webp_quality = 75});
/// @endcode
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"
#include "pixflow/tasks/thumbnail.hpp"

namespace pixflow::tasks {

/// An animation, composed: each frame is what a viewer shows at that moment, not the file's partial
/// rectangle.
///
/// @code
/// Animation a;                                  // two frames of 64x48, 100 ms each, forever
/// a.size = Size{64, 48};
/// a.frames = {cv::Mat(48, 64, CV_8UC4, cv::Scalar(0, 0, 255, 255)), cv::Mat(48, 64, CV_8UC4, cv::Scalar(255, 0, 0, 255))};
/// a.delays_ms = {100, 100};
/// a.loop_count = 0;
/// @endcode
struct Animation {
  std::vector<cv::Mat> frames;   ///< 8-bit BGRA, each of `size`, composed
  std::vector<int> delays_ms;    ///< one per frame: how long it is shown
  int loop_count = 0;            ///< how many times it plays; 0 = forever (a GIF without NETSCAPE2.0 plays once: 1)
  Size size;                     ///< of every frame
  ImageFormat source_format = ImageFormat::unknown;  ///< from the magic bytes
  Size source_size;              ///< the source's canvas (logical screen)
  /// The frames' ICC profile (an animated WebP's ICCP chunk); empty: sRGB. make_animated_thumbnail
  /// converts to sRGB (colour.hpp) and leaves it empty.
  std::vector<std::uint8_t> icc_profile;
};

/// Bounds on one animation, besides DecodeLimits' memory budget.
///
/// @code
/// auto a = decode_animation(body, box, {}, AnimationLimits{.max_frames = 200});
/// @endcode
struct AnimationLimits {
  std::size_t max_frames = 1000;  ///< a file with more frames is refused, "too many frames (N > max_frames)"
};

/// Decodes every frame of a GIF or a WebP (animated or not), composed, into BGRA frames kept at
/// fit_within(canvas, largest_box) (`fill`: at cover_size(canvas, largest_box), uncropped, so that
/// every box can be filled from them): each composed canvas is resized with make_thumbnail
/// (thumbnail.hpp) as soon as it is decoded, so only one canvas is ever held at full size. Another
/// still format (JPEG, PNG, BMP) gives a one-frame animation through decode_image and make_thumbnail.
///
/// GIF composition follows what browsers do: the canvas starts transparent; each frame's palette is its
/// local one or the global one; its transparent index leaves the pixel below; interlaced rows are put
/// in place; a frame's rectangle is clipped to the logical screen (a screen given as 0x0 takes the first
/// frame's extent); after a frame is shown, its disposal applies (0 and 1: kept; 2: its rectangle
/// cleared to transparent, not to the background colour; 3: the canvas restored to what it was before
/// the frame). Delays of 10 ms or less (0 included) become 100 ms, as Chrome and Firefox play them; a
/// NETSCAPE2.0 loop count of N repetitions is loop_count N+1 (0 stays forever), no such block is 1.
/// A file that ends after a complete frame without a trailer, or with garbage after the last frame,
/// keeps its complete frames (browsers show them too).
///
/// Memory counted against limits.max_memory_bytes before decoding (else "image too large (WxH)" for the
/// canvas alone, "animation too large (N frames of WxH)" when the frames kept tip it over):
/// the decoder's canvases (GIF: 1, or 2 when a frame restores the previous one; WebP: 3), make_thumbnail's
/// temporaries for one canvas (about 40 bytes a pixel, when the canvas is larger than the box), and
/// frames x fitted width x height x 4.
/// Errors: "too many frames (N > cap)", the two above, "truncated gif" / "corrupt gif" / "truncated
/// webp" / "corrupt webp", decode_image's reasons for a still, "unsupported format (mp4)" for a video,
/// "not an image", "empty body", "out of memory". Failures are values; nothing is written to stderr.
Expected<Animation> decode_animation(std::span<const std::uint8_t> bytes, Size largest_box, DecodeLimits limits = {},
                                     AnimationLimits animation_limits = {}, ThumbnailMode mode = ThumbnailMode::fit);

/// `animation` with every frame made to meet `box` by make_thumbnail (the same rule and filter as a
/// still thumbnail: `fit` or `fill`, never upscaled, INTER_AREA, premultiplied alpha), then converted to
/// sRGB when the animation carries an ICC profile (a profile that cannot be used is ignored, as for a
/// still); delays, loop count and source fields kept. A frame that already fits is copied.
/// `fill_attention` picks its region on the first frame and crops every frame there (a crop that moved
/// from frame to frame would shake).
Animation make_animated_thumbnail(const Animation& animation, Size box, ThumbnailMode mode = ThumbnailMode::fit);

/// Encodes an animation as an animated WebP or a GIF, every frame and delay kept, and the loop count.
/// - webp: WebPAnimEncoder, lossy at options.webp_quality with alpha kept (frames may be stored as the
///   rectangle that changed: the encoder's own choice, lossless-identical on screen).
/// - gif: giflib's EGif writer, each frame full-size with its own local palette of at most 255 colours
///   plus one transparent index (alpha < 128 is transparent): the exact colours when a frame has at
///   most 255 of them, else a median cut over a 5-bit-per-channel histogram (weighted by pixel count,
///   each colour the mean of its box), no dithering. Delays are rounded to GIF's hundredths of a second
///   (at least 2/100 s); frames are disposed to the background (2) when any is transparent, else kept (1).
///   giflib's own GifQuantizeBuffer is not used: it sorts through a global variable, so two threads
///   quantizing at once would corrupt each other's palettes.
/// Error "cannot encode as <fmt>" for another format, an empty animation, frames of different sizes or
/// not 8-bit BGRA/BGR, or an encoder failure. Throws std::invalid_argument for options out of range
/// (as encode_image does).
Expected<std::vector<std::uint8_t>> encode_animation(const Animation& animation, ImageFormat format,
                                                     const EncodeOptions& options = {});

/// The format of an animated thumbnail: GIF when the source is a GIF and `requested` is `same`, else
/// WebP (JPEG and PNG do not animate). What to plan a name with, in "animate" mode, for a source
/// that may be animated (a .gif or .webp).
ImageFormat animated_output_format(ImageFormat source, ImageFormat requested);

}  // namespace pixflow::tasks
