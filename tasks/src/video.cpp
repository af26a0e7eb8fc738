#include "pixflow/tasks/video.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>

#include <opencv2/core.hpp>

#include "container_detail.hpp"
#include "decode_detail.hpp"
#include "pixflow/tasks/thumbnail.hpp"

namespace pixflow::tasks {

namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::span<const std::uint8_t>;

/// FFmpeg logs to stderr by default; a failed poster is reported by its reason. Process-wide, once.
void silence_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

/// The caller's buffer as an AVIOContext source: reads and seeks (MP4's index may come last).
struct Source {
  Bytes bytes;
  std::size_t pos = 0;
};

int read_source(void* opaque, std::uint8_t* out, int size) {
  auto* source = static_cast<Source*>(opaque);
  if (source->pos >= source->bytes.size()) return AVERROR_EOF;
  const std::size_t n = std::min(static_cast<std::size_t>(std::max(size, 0)), source->bytes.size() - source->pos);
  std::memcpy(out, source->bytes.data() + source->pos, n);
  source->pos += n;
  return static_cast<int>(n);
}

std::int64_t seek_source(void* opaque, std::int64_t offset, int whence) {
  auto* source = static_cast<Source*>(opaque);
  const auto size = static_cast<std::int64_t>(source->bytes.size());
  std::int64_t target = 0;
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return size;
    case SEEK_SET: target = offset; break;
    case SEEK_CUR: target = static_cast<std::int64_t>(source->pos) + offset; break;
    case SEEK_END: target = size + offset; break;
    default: return AVERROR(EINVAL);
  }
  if (target < 0 || target > size) return AVERROR(EINVAL);
  source->pos = static_cast<std::size_t>(target);
  return target;
}

/// libavformat polls this during blocking work; non-zero aborts it.
struct Deadline {
  Clock::time_point end;
  [[nodiscard]] bool passed() const { return Clock::now() >= end; }
};

int interrupt(void* opaque) { return static_cast<const Deadline*>(opaque)->passed() ? 1 : 0; }

struct IoDeleter {
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
struct FormatDeleter {
  void operator()(AVFormatContext* format) const { avformat_close_input(&format); }
};
struct CodecDeleter {
  void operator()(AVCodecContext* codec) const { avcodec_free_context(&codec); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct ScaleDeleter {
  void operator()(SwsContext* sws) const { sws_freeContext(sws); }
};
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;

/// Frames a decoder may hold at once: H.264's largest reference set (16) and those in flight.
constexpr std::size_t kFramesHeld = 20;

bool allowed_codec(AVCodecID id) {
  switch (id) {
    case AV_CODEC_ID_H264:
    case AV_CODEC_ID_HEVC:
    case AV_CODEC_ID_MPEG4:
    case AV_CODEC_ID_VP8:
    case AV_CODEC_ID_VP9:
    case AV_CODEC_ID_AV1: return true;
    default: return false;
  }
}

/// A frame whose luma is nearly uniform (standard deviation under 4 of 255 over a grid of samples): a
/// fade from black, a one-colour title card. Only 8-bit YUV formats are looked at; others count as not blank.
bool is_blank(const AVFrame& frame) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(frame.format));
  if (desc == nullptr || (desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_PAL)) != 0 ||
      desc->comp[0].depth != 8 || desc->comp[0].plane != 0 || desc->comp[0].step != 1 || frame.data[0] == nullptr)
    return false;
  const int step_x = std::max(1, frame.width / 64);
  const int step_y = std::max(1, frame.height / 64);
  double sum = 0;
  double squares = 0;
  double n = 0;
  for (int y = 0; y < frame.height; y += step_y) {
    const std::uint8_t* row = frame.data[0] + static_cast<std::ptrdiff_t>(y) * frame.linesize[0];
    for (int x = 0; x < frame.width; x += step_x) {
      const double v = row[x];
      sum += v;
      squares += v * v;
      n += 1;
    }
  }
  if (n == 0) return false;
  const double mean = sum / n;
  return squares / n - mean * mean < 16.0;
}

/// The clockwise rotation, in quarter turns, that shows the stream upright (its display matrix).
int quarter_turns(const AVStream& stream) {
  const std::uint8_t* matrix = av_stream_get_side_data(&stream, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
  if (matrix == nullptr) return 0;
  // av_display_rotation_get gives the counter-clockwise angle the matrix applies; its negation is the
  // clockwise turn that shows the frame upright (as ffmpeg's own autorotate does).
  const double degrees = -av_display_rotation_get(reinterpret_cast<const std::int32_t*>(matrix));  // NOLINT
  if (std::isnan(degrees)) return 0;
  const long turns = std::lround(degrees / 90.0);
  return static_cast<int>(((turns % 4) + 4) % 4);
}

std::string seconds_text(double seconds) {
  std::ostringstream text;
  text << seconds;
  return text.str();
}

/// The swscale colour matrix of a frame: its own, else BT.709 for HD sizes and BT.601 below.
int colorspace_of(const AVFrame& frame) {
  switch (frame.colorspace) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M: return SWS_CS_ITU601;
    default: return frame.height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601;
  }
}

/// `frame` scaled to `target` (stored orientation) as 8-bit BGR.
Expected<cv::Mat> to_bgr(const AVFrame& frame, Size target, const Error& corrupt) {
  const std::unique_ptr<SwsContext, ScaleDeleter> sws(
      sws_getContext(frame.width, frame.height, static_cast<AVPixelFormat>(frame.format), target.width, target.height,
                     AV_PIX_FMT_BGR24, SWS_AREA | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
  if (!sws) return corrupt;
  const int full_range = frame.color_range == AVCOL_RANGE_JPEG ? 1 : 0;
  sws_setColorspaceDetails(sws.get(), sws_getCoefficients(colorspace_of(frame)), full_range,
                           sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
  cv::Mat bgr(target.height, target.width, CV_8UC3);
  std::array<std::uint8_t*, 4> planes{bgr.data, nullptr, nullptr, nullptr};
  std::array<int, 4> strides{static_cast<int>(bgr.step[0]), 0, 0, 0};
  if (sws_scale(sws.get(), frame.data, frame.linesize, 0, frame.height, planes.data(), strides.data()) != target.height)
    return corrupt;
  return bgr;
}

Expected<DecodedImage> poster_checked(Bytes bytes, ImageFormat format, Size largest_box, const VideoLimits& limits) {
  const std::string name(name_of(format));
  const Error corrupt{"corrupt " + name};
  const Error truncated{"truncated " + name};
  const auto structure = format == ImageFormat::mp4 ? detail::iso_structure(bytes) : detail::webm_structure(bytes);
  if (structure == detail::ContainerState::truncated) return truncated;
  if (structure == detail::ContainerState::corrupt) return corrupt;

  Deadline deadline{Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(std::max(limits.max_decode_s, 0.0)))};
  const Error timed_out{"video decode timed out (" + seconds_text(limits.max_decode_s) + " s)"};

  Source source{bytes, 0};
  constexpr int kBufferSize = 32 * 1024;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kBufferSize));
  if (buffer == nullptr) return detail::out_of_memory();
  AVIOContext* raw_io = avio_alloc_context(buffer, kBufferSize, 0, &source, read_source, nullptr, seek_source);
  if (raw_io == nullptr) {
    av_free(buffer);
    return detail::out_of_memory();
  }
  const std::unique_ptr<AVIOContext, IoDeleter> io(raw_io);

  AVFormatContext* raw_format = avformat_alloc_context();
  if (raw_format == nullptr) return detail::out_of_memory();
  raw_format->pb = io.get();
  raw_format->flags |= AVFMT_FLAG_CUSTOM_IO;
  raw_format->interrupt_callback = AVIOInterruptCB{interrupt, &deadline};
  // The demuxer is chosen from the sniffed format: no probing of the 300-odd others.
  const AVInputFormat* input = av_find_input_format(format == ImageFormat::mp4 ? "mp4" : "webm");
  if (avformat_open_input(&raw_format, nullptr, input, nullptr) < 0) {  // frees raw_format on failure
    return deadline.passed() ? timed_out : corrupt;
  }
  const std::unique_ptr<AVFormatContext, FormatDeleter> demuxer(raw_format);

  const int index = av_find_best_stream(demuxer.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) return Error{"no video stream"};
  AVStream* stream = demuxer->streams[index];
  for (unsigned i = 0; i < demuxer->nb_streams; ++i)  // only this stream's packets are read
    if (static_cast<int>(i) != index) demuxer->streams[i]->discard = AVDISCARD_ALL;
  const AVCodecParameters* parameters = stream->codecpar;
  if (!allowed_codec(parameters->codec_id))
    return Error{"unsupported codec (" + std::string(avcodec_get_name(parameters->codec_id)) + ")"};
  const AVCodec* codec = avcodec_find_decoder(parameters->codec_id);
  if (codec == nullptr) return Error{"unsupported codec (" + std::string(avcodec_get_name(parameters->codec_id)) + ")"};

  // The budget, from the stream header (a frame larger than announced is checked again below).
  const auto fits_budget = [&](int width, int height, int pixel_format) {
    if (width <= 0 || height <= 0 || width > 16384 || height > 16384) return false;
    const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
    const int known = pixel_format >= 0 ? av_image_get_buffer_size(static_cast<AVPixelFormat>(pixel_format), width, height, 1) : -1;
    const std::size_t frame_bytes = known > 0 ? static_cast<std::size_t>(known) : pixels * 3 / 2;  // 8-bit 4:2:0
    return detail::add_sat(detail::mul_sat(frame_bytes, kFramesHeld), detail::mul_sat(pixels, 4)) <= limits.max_memory_bytes;
  };
  if (parameters->width > 0 && parameters->height > 0 &&
      !fits_budget(parameters->width, parameters->height, parameters->format))
    return Error{"video too large (" + to_string(Size{parameters->width, parameters->height}) + ")"};

  const std::unique_ptr<AVCodecContext, CodecDeleter> decoder(avcodec_alloc_context3(codec));
  if (!decoder) return detail::out_of_memory();
  if (avcodec_parameters_to_context(decoder.get(), parameters) < 0) return corrupt;
  decoder->thread_count = 1;  // docs/design.md §4: the graph owns the cores
  decoder->pkt_timebase = stream->time_base;
  if (avcodec_open2(decoder.get(), codec, nullptr) < 0) return corrupt;

  const std::unique_ptr<AVPacket, PacketDeleter> packet(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  if (!packet || !frame) return detail::out_of_memory();

  FramePtr poster;               // the first frame decoded, kept while later ones are looked at
  std::int64_t first_pts = AV_NOPTS_VALUE;
  const std::int64_t one_second = av_rescale_q(1, AVRational{1, 1}, stream->time_base);
  int looked_at = 0;
  bool done = false;
  bool draining = false;
  // Takes the frames the decoder has ready; sets `done` when the poster is chosen.
  const auto take_frames = [&]() -> std::optional<Error> {
    for (;;) {
      const int got = avcodec_receive_frame(decoder.get(), frame.get());
      if (got == AVERROR(EAGAIN) || got == AVERROR_EOF) return std::nullopt;
      if (got < 0) return std::nullopt;  // a bad frame: look at the next one
      if (!fits_budget(frame->width, frame->height, frame->format))
        return Error{"video too large (" + to_string(Size{frame->width, frame->height}) + ")"};
      ++looked_at;
      const std::int64_t pts = frame->best_effort_timestamp;
      if (!poster) {
        first_pts = pts;
        poster.reset(av_frame_clone(frame.get()));
        if (!poster) return detail::out_of_memory();
        if (!is_blank(*poster)) {
          done = true;
          return std::nullopt;
        }
      } else if (!is_blank(*frame)) {
        poster.reset(av_frame_clone(frame.get()));
        if (!poster) return detail::out_of_memory();
        done = true;
        return std::nullopt;
      }
      const bool past_a_second = first_pts != AV_NOPTS_VALUE && pts != AV_NOPTS_VALUE && pts - first_pts >= one_second;
      if (past_a_second || looked_at >= 60) {
        done = true;  // every frame so far was blank: the first one stands
        return std::nullopt;
      }
      av_frame_unref(frame.get());
    }
  };
  while (!done) {
    if (deadline.passed()) return timed_out;
    if (!draining) {
      const int read = av_read_frame(demuxer.get(), packet.get());
      if (read < 0) {
        if (deadline.passed()) return timed_out;
        draining = true;  // the end, or a damaged tail: flush what the decoder holds
        avcodec_send_packet(decoder.get(), nullptr);
      } else {
        if (packet->stream_index == index) avcodec_send_packet(decoder.get(), packet.get());  // a bad packet is skipped
        av_packet_unref(packet.get());
      }
    }
    if (auto error = take_frames()) return *error;
    if (draining && !done) break;  // flushed and nothing more will come
  }
  if (!poster) return corrupt;

  // Displayed size: the sample aspect ratio widens or narrows the stored width, then the rotation.
  const AVRational sar = poster->sample_aspect_ratio.num > 0 ? poster->sample_aspect_ratio : stream->sample_aspect_ratio;
  Size stored{poster->width, poster->height};
  if (sar.num > 0 && sar.den > 0 && sar.num != sar.den)
    stored.width = std::max(1, static_cast<int>(std::lround(static_cast<double>(stored.width) * sar.num / sar.den)));
  const int turns = quarter_turns(*stream);
  const auto turned = [&](Size s) { return turns % 2 == 1 ? Size{s.height, s.width} : s; };
  const Size displayed = turned(stored);
  const Size fitted = fit_within(displayed, Size{2 * largest_box.width, 2 * largest_box.height});
  auto pixels = to_bgr(*poster, turned(fitted), corrupt);
  if (!pixels) return std::move(pixels).error();
  static constexpr std::array<int, 4> kRotations{-1, cv::ROTATE_90_CLOCKWISE, cv::ROTATE_180, cv::ROTATE_90_COUNTERCLOCKWISE};
  if (turns != 0) cv::rotate(*pixels, *pixels, kRotations[static_cast<std::size_t>(turns)]);

  DecodedImage result;
  result.pixels = std::move(pixels).value();
  result.source_format = format;
  result.source_size = displayed;
  return result;
}

}  // namespace

Expected<DecodedImage> decode_video_poster(std::span<const std::uint8_t> bytes, Size largest_box, VideoLimits limits) {
  if (bytes.empty()) return Error{"empty body"};
  const ImageFormat format = sniff_format(bytes);
  if (format != ImageFormat::mp4 && format != ImageFormat::webm) return Error{"not a video"};
  if (bytes.size() > limits.max_bytes)
    return Error{"video too large (more than " + std::to_string(limits.max_bytes) + " bytes)"};
  silence_ffmpeg();
  return detail::reasons_of_exceptions(format, [&] { return poster_checked(bytes, format, largest_box, limits); });
}

}  // namespace pixflow::tasks
