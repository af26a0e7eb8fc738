// Animated WebP: libwebp's demuxer for the layout (canvas, frame and loop counts) and WebPAnimDecoder
// for the composed frames (it applies each frame's blending and disposal). The demuxer reads the
// caller's buffer in place; nothing is copied.
#include <webp/demux.h>

#include <cstring>
#include <memory>

#include <opencv2/core.hpp>

#include "animation_detail.hpp"
#include "decode_detail.hpp"

namespace pixflow::tasks::detail {

namespace {

std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

/// The RIFF header says more bytes than there are.
bool riff_cut_short(std::span<const std::uint8_t> b) { return b.size() < 12 || std::size_t{le32(b.data() + 4)} + 8 > b.size(); }

struct DemuxDeleter {
  void operator()(WebPDemuxer* demux) const { WebPDemuxDelete(demux); }
};
struct AnimDecoderDeleter {
  void operator()(WebPAnimDecoder* decoder) const { WebPAnimDecoderDelete(decoder); }
};

}  // namespace

bool webp_is_animated(std::span<const std::uint8_t> b) {
  // RIFF, size, WEBP, then a VP8X chunk whose flags byte has the animation bit (0x02).
  return b.size() >= 21 && std::memcmp(b.data() + 12, "VP8X", 4) == 0 && (b[20] & 0x02) != 0;
}

Expected<AnimationLayout> inspect_webp(std::span<const std::uint8_t> bytes) {
  if (riff_cut_short(bytes)) return Error{"truncated webp"};
  const WebPData data{bytes.data(), bytes.size()};
  const std::unique_ptr<WebPDemuxer, DemuxDeleter> demux(WebPDemux(&data));
  if (!demux) return Error{"corrupt webp"};
  AnimationLayout layout;
  layout.canvas = Size{static_cast<int>(WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_WIDTH)),
                       static_cast<int>(WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_HEIGHT))};
  layout.frames = WebPDemuxGetI(demux.get(), WEBP_FF_FRAME_COUNT);
  const bool animated = (WebPDemuxGetI(demux.get(), WEBP_FF_FORMAT_FLAGS) & ANIMATION_FLAG) != 0;
  layout.loop_count = animated ? static_cast<int>(WebPDemuxGetI(demux.get(), WEBP_FF_LOOP_COUNT)) : 1;
  if (layout.canvas.width <= 0 || layout.canvas.height <= 0 || layout.frames == 0) return Error{"corrupt webp"};
  // WebPAnimDecoder keeps two canvases (the current frame and the previous one disposed); the frame
  // decoder a third image's worth at most (VP8L's ARGB cache), plus rows.
  const std::size_t canvas_bytes =
      mul_sat(mul_sat(static_cast<std::size_t>(layout.canvas.width), static_cast<std::size_t>(layout.canvas.height)), 4);
  layout.working_bytes = add_sat(mul_sat(canvas_bytes, 3), mul_sat(static_cast<std::size_t>(layout.canvas.width), 64));
  return layout;
}

Expected<std::size_t> decode_webp_frames(std::span<const std::uint8_t> bytes, std::size_t max_frames,
                                         const FrameSink& sink) {
  const WebPData data{bytes.data(), bytes.size()};
  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) return Error{"corrupt webp"};
  options.color_mode = MODE_BGRA;  // OpenCV's order, alpha not premultiplied
  options.use_threads = 0;         // the caller's cores belong to the graph (docs/design.md §4)
  const std::unique_ptr<WebPAnimDecoder, AnimDecoderDeleter> decoder(WebPAnimDecoderNew(&data, &options));
  if (!decoder) return Error{"corrupt webp"};
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(decoder.get(), &info)) return Error{"corrupt webp"};
  const auto width = static_cast<int>(info.canvas_width);
  const auto height = static_cast<int>(info.canvas_height);
  std::size_t decoded = 0;
  int previous_end = 0;
  while (decoded < max_frames && WebPAnimDecoderHasMoreFrames(decoder.get())) {
    std::uint8_t* pixels = nullptr;
    int end_ms = 0;  // the frame's end: the sum of its and every earlier frame's durations
    if (!WebPAnimDecoderGetNext(decoder.get(), &pixels, &end_ms)) return Error{"corrupt webp"};
    const cv::Mat canvas(height, width, CV_8UC4, pixels);
    ++decoded;
    const int delay = end_ms - previous_end;
    previous_end = end_ms;
    if (!sink(canvas, normalized_delay_ms(delay))) break;
  }
  if (decoded == 0) return Error{"corrupt webp"};
  return decoded;
}

}  // namespace pixflow::tasks::detail
