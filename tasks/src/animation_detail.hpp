#pragma once
// Internals of the animated decoders: decode_gif.cpp (giflib) and decode_webp_anim.cpp (libwebp's
// WebPAnimDecoder), shared by decode.cpp (decode_image's first frame, media_kind) and animation.cpp
// (decode_animation). Not installed: the public API is pixflow/tasks/animation.hpp and decode.hpp.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include <opencv2/core/mat.hpp>

#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks::detail {

/// What an animated source's structure tells before any pixel is decoded.
struct AnimationLayout {
  Size canvas;                    ///< the logical screen (GIF) or canvas (WebP) every frame is composed on
  std::size_t frames = 0;         ///< frames in the file
  int loop_count = 1;             ///< plays: 0 = forever (Animation::loop_count's meaning)
  /// What the decoder holds while it composes, whatever the number of frames: GIF: the canvas (4 bytes a
  /// pixel), a second one when a frame restores the previous one (disposal 3), a line of indices and
  /// giflib's per-frame records (about 1 KiB each); WebP: WebPAnimDecoder's two canvases and a frame buffer.
  std::size_t working_bytes = 0;
  std::size_t per_frame_bytes = 0;  ///< decoder bookkeeping per frame decoded (GIF: giflib's record, ~1 KiB)
};

/// Called with each composed frame (BGRA, canvas-sized, valid during the call only) and its delay in
/// milliseconds (already normalised: see normalized_delay_ms). Returns false to stop decoding.
using FrameSink = std::function<bool(const cv::Mat& canvas, int delay_ms)>;

/// A frame's delay as browsers play it: delays of 10 ms or less (0 included, common in GIFs made for
/// "as fast as possible") are shown for 100 ms by Chrome and Firefox, so an animation keeps its speed.
inline int normalized_delay_ms(int delay_ms) { return delay_ms <= 10 ? 100 : delay_ms; }

/// Walks a GIF's blocks without decoding (cheap: sub-blocks are skipped by length): the logical
/// screen, the frame count, the loop count (NETSCAPE2.0/ANIMEXTS1.0), whether a frame uses disposal 3.
/// Errors: "truncated gif" (the file ends inside a block, or before any frame), "corrupt gif" (not a
/// GIF header, no frame, a bad LZW code size, garbage where the first block belongs). Bytes after the
/// last complete frame that are not a block (garbage, a missing trailer) end the file, as in browsers.
Expected<AnimationLayout> inspect_gif(std::span<const std::uint8_t> bytes);

/// Decodes a GIF's first `max_frames` frames with giflib, composing each on a canvas initialised
/// transparent: local or global palette, the transparent index, interlaced rows, frame rectangles
/// clipped to the logical screen, and the previous frame's disposal applied before each frame (0 and
/// 1 keep it; 2 clears its rectangle to transparent, as browsers do, not to the background colour; 3
/// restores the canvas as it was before that frame). An index beyond the palette leaves its pixel
/// unchanged. Returns the number of frames given to `sink`.
/// Errors: "truncated gif", "corrupt gif", "out of memory".
Expected<std::size_t> decode_gif_frames(std::span<const std::uint8_t> bytes, const AnimationLayout& layout,
                                        std::size_t max_frames, const FrameSink& sink);

/// The layout of a WebP (animated or not) read with libwebp's demuxer. Errors: "truncated webp" (the
/// RIFF size says more than there is), "corrupt webp".
Expected<AnimationLayout> inspect_webp(std::span<const std::uint8_t> bytes);

/// Decodes a WebP's first `max_frames` frames with WebPAnimDecoder (BGRA, composed, no threads of its
/// own). Returns the number of frames given to `sink`. Errors: "corrupt webp", "out of memory".
Expected<std::size_t> decode_webp_frames(std::span<const std::uint8_t> bytes, std::size_t max_frames,
                                         const FrameSink& sink);

/// decode_image's GIF and animated WebP branch: the first composed frame at full size, BGR when it is
/// fully opaque, else BGRA. Refused as "image too large (WxH)" (the canvas) when the decoder's working
/// memory plus the frame's copies exceed `budget`.
Expected<DecodedImage> decode_first_frame(std::span<const std::uint8_t> bytes, ImageFormat format, std::size_t budget);

/// A WebP file's VP8X header says it is animated.
bool webp_is_animated(std::span<const std::uint8_t> bytes);

}  // namespace pixflow::tasks::detail
