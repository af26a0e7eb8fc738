#pragma once
/// @file
/// Video posters: a still frame near the start of an MP4/MOV or WebM clip, decoded from memory with
/// FFmpeg's libraries (libavformat over a custom AVIOContext reading the caller's buffer: no temporary
/// file, no network, no other demuxer probed), ready for make_thumbnail like any decoded image.
///
/// Which frame: the first one decoded (the first keyframe, in presentation order); when it is blank
/// (its luma nearly uniform: a fade from black, a title card of one colour), the first frame that is
/// not, within one second of stream time after it (at most 60 frames), else that first frame. Cheap:
/// posters cost one frame's decode on most clips, with no seek.
///
/// Bounded like any item: the file's size (VideoLimits::max_bytes), the decoder's memory estimated from
/// the stream's header before decoding (VideoLimits::max_memory_bytes), and the wall time of demuxing
/// and decoding (VideoLimits::max_decode_s, through libavformat's interrupt callback and a check between
/// packets). Decoders run on the caller's thread only (thread_count 1: the cores belong to the graph);
/// only H.264, HEVC, MPEG-4 part 2, VP8, VP9 and AV1 streams are decoded. FFmpeg's logging is silenced
/// process-wide the first time (no decoder writes to stderr; the reason is in the Error).
///
/// @code
/// using namespace pixflow::tasks;
/// auto poster = decode_video_poster(body, Size{256, 256}, VideoLimits{.max_decode_s = 5});
/// if (!poster) return poster.error();                  // "truncated mp4", "video decode timed out (5 s)"
/// cv::Mat small = make_thumbnail(poster->pixels, Size{128, 128});   // BGR, upright, >= 2x the box when large
/// @endcode
#include <cstddef>
#include <cstdint>
#include <span>

#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks {

/// Bounds on one poster.
///
/// @code
/// auto poster = decode_video_poster(body, box, VideoLimits{.max_bytes = 32u << 20, .max_decode_s = 2});
/// @endcode
struct VideoLimits {
  std::size_t max_bytes = std::size_t{64} << 20;  ///< the file; above: "video too large (more than N bytes)"
  double max_decode_s = 10;                       ///< demux + decode, wall clock; > 0
  /// The decoder's frames, estimated from the stream's header before decoding: 20 frames in the
  /// stream's pixel format (H.264's largest reference set and the frames in flight) plus 4 bytes a
  /// pixel for the conversion; above: "video too large (WxH)". The default admits 8-bit 4K (3840x2160:
  /// about 280 MB) and refuses 8K.
  std::size_t max_memory_bytes = std::size_t{512} << 20;
};

/// Decodes a poster frame of an MP4/MOV (ISO base media, `ftyp`) or WebM clip for thumbnails that fit
/// `largest_box`: scaled with swscale (area filter, the stream's colour matrix and range) to fit twice
/// the box (never upscaled), displayed aspect (sample aspect ratio) and rotation (display matrix:
/// phone clips stand upright) applied, 8-bit BGR. `source_format` is mp4 or webm, `source_size` the
/// displayed size, reduce_factor 1.
/// Errors: "empty body", "not a video" (another format), "video too large (more than N bytes)",
/// "truncated mp4" / "truncated webm" (a box or the segment runs past the end: a download cut short),
/// "corrupt mp4" / "corrupt webm" (no `moov`, the demuxer or decoder refused it, no frame decoded),
/// "no video stream", "unsupported codec (<name>)", "video too large (WxH)", "video decode timed out
/// (N s)", "out of memory".
Expected<DecodedImage> decode_video_poster(std::span<const std::uint8_t> bytes, Size largest_box, VideoLimits limits = {});

}  // namespace pixflow::tasks
