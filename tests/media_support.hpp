#pragma once
// Test media made by the tests themselves, with the real encoders: GIFs frame by frame with giflib's
// writer (rectangles, palettes, disposal, transparency, interlace as given), animated WebPs with
// libwebp's WebPAnimEncoder, short clips with FFmpeg's encoders and muxers. Used by test_animation.cpp,
// test_video.cpp and test_decode.cpp.
#include <gif_lib.h>
#include <webp/encode.h>
#include <webp/mux.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "pixflow/tasks/image_types.hpp"
#include "support.hpp"

namespace pixflow::test {

using Bytes = std::vector<std::uint8_t>;

// ---- GIF -------------------------------------------------------------------------------------------

/// One frame as the file stores it.
struct GifFrame {
  int left = 0, top = 0, width = 1, height = 1;
  std::vector<std::uint8_t> indices;      ///< width x height, row-major (in display order)
  std::vector<GifColorType> palette;      ///< local palette; empty: the global one
  int disposal = DISPOSAL_UNSPECIFIED;
  int delay_cs = 10;                      ///< hundredths of a second
  int transparent = NO_TRANSPARENT_COLOR;
  bool interlace = false;                 ///< rows written in the four interlaced passes
  bool control = true;                    ///< write a graphics control extension
};

/// `colors` padded with black to a power of two (GIF palettes are 2^n entries).
inline std::vector<GifColorType> gif_palette(std::vector<GifColorType> colors) {
  std::size_t n = 2;
  while (n < colors.size()) n *= 2;
  colors.resize(n, GifColorType{0, 0, 0});
  return colors;
}

/// A GIF89a of the given logical screen, global palette and frames; `loop_repeats` >= 0 writes a
/// NETSCAPE2.0 block (0 = forever), < 0 none.
inline Bytes make_gif(pixflow::tasks::Size screen, const std::vector<GifColorType>& global,
                      const std::vector<GifFrame>& frames, int loop_repeats = 0) {
  Bytes out;
  int error = 0;
  GifFileType* gif = EGifOpen(&out, [](GifFileType* g, const GifByteType* data, int n) {
    auto* bytes = static_cast<Bytes*>(g->UserData);
    bytes->insert(bytes->end(), data, data + n);
    return n;
  }, &error);
  if (gif == nullptr) throw std::runtime_error("EGifOpen failed");
  const auto check = [&](int status, const char* what) {
    if (status == GIF_ERROR) {
      const std::string message = std::string(what) + ": " + GifErrorString(gif->Error);
      EGifCloseFile(gif, &error);
      throw std::runtime_error(message);
    }
  };
  EGifSetGifVersion(gif, true);
  ColorMapObject* global_map = nullptr;
  if (!global.empty()) {
    const auto padded = gif_palette(global);
    global_map = GifMakeMapObject(static_cast<int>(padded.size()), padded.data());
  }
  check(EGifPutScreenDesc(gif, screen.width, screen.height, 8, 0, global_map), "screen");
  GifFreeMapObject(global_map);
  if (loop_repeats >= 0) {
    const GifByteType loop[3] = {1, static_cast<GifByteType>(loop_repeats & 0xFF), static_cast<GifByteType>(loop_repeats >> 8)};
    check(EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE), "leader");
    check(EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0"), "netscape");
    check(EGifPutExtensionBlock(gif, 3, loop), "loop");
    check(EGifPutExtensionTrailer(gif), "trailer");
  }
  for (const GifFrame& f : frames) {
    if (f.control) {
      GraphicsControlBlock gcb{f.disposal, false, f.delay_cs, f.transparent};
      GifByteType ext[4];
      EGifGCBToExtension(&gcb, ext);
      check(EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, 4, ext), "gce");
    }
    ColorMapObject* local = nullptr;
    if (!f.palette.empty()) {
      const auto padded = gif_palette(f.palette);
      local = GifMakeMapObject(static_cast<int>(padded.size()), padded.data());
    }
    if (local == nullptr && gif->Image.ColorMap != nullptr) {
      // giflib 5.2.1 forgets (leaks) the previous frame's local palette when a frame has none.
      GifFreeMapObject(gif->Image.ColorMap);
      gif->Image.ColorMap = nullptr;
    }
    check(EGifPutImageDesc(gif, f.left, f.top, f.width, f.height, f.interlace, local), "image");
    GifFreeMapObject(local);
    std::vector<int> order;
    if (f.interlace) {
      for (const auto& [start, step] : {std::pair{0, 8}, std::pair{4, 8}, std::pair{2, 4}, std::pair{1, 2}})
        for (int y = start; y < f.height; y += step) order.push_back(y);
    } else {
      for (int y = 0; y < f.height; ++y) order.push_back(y);
    }
    std::vector<GifByteType> row(static_cast<std::size_t>(f.width));
    for (int y : order) {
      std::copy_n(f.indices.begin() + static_cast<std::ptrdiff_t>(y) * f.width, f.width, row.begin());
      check(EGifPutLine(gif, row.data(), f.width), "line");
    }
  }
  if (EGifCloseFile(gif, &error) == GIF_ERROR) throw std::runtime_error("EGifCloseFile failed");
  return out;
}

/// A frame of one palette index everywhere.
inline GifFrame solid_gif_frame(int left, int top, int width, int height, std::uint8_t index) {
  GifFrame f;
  f.left = left;
  f.top = top;
  f.width = width;
  f.height = height;
  f.indices.assign(static_cast<std::size_t>(width) * static_cast<std::size_t>(height), index);
  return f;
}

// ---- animated WebP ---------------------------------------------------------------------------------

/// An animated WebP of BGRA frames, each shown `delays_ms[i]`; lossless so colours can be compared
/// exactly; `loop_count` plays (0 = forever).
inline Bytes make_animated_webp(const std::vector<cv::Mat>& frames, const std::vector<int>& delays_ms, int loop_count) {
  WebPAnimEncoderOptions options;
  WebPAnimEncoderOptionsInit(&options);
  options.anim_params.loop_count = loop_count;
  const int width = frames.front().cols;
  const int height = frames.front().rows;
  WebPAnimEncoder* encoder = WebPAnimEncoderNew(width, height, &options);
  WebPConfig config;
  WebPConfigInit(&config);
  config.lossless = 1;
  WebPPicture picture;
  WebPPictureInit(&picture);
  picture.use_argb = 1;
  picture.width = width;
  picture.height = height;
  int timestamp = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    WebPPictureImportBGRA(&picture, frames[i].ptr<std::uint8_t>(0), static_cast<int>(frames[i].step[0]));
    if (!WebPAnimEncoderAdd(encoder, &picture, timestamp, &config)) throw std::runtime_error("WebPAnimEncoderAdd");
    timestamp += delays_ms[i];
  }
  WebPAnimEncoderAdd(encoder, nullptr, timestamp, nullptr);
  WebPData data;
  WebPDataInit(&data);
  if (!WebPAnimEncoderAssemble(encoder, &data)) throw std::runtime_error("WebPAnimEncoderAssemble");
  Bytes out(data.bytes, data.bytes + data.size);
  WebPDataClear(&data);
  WebPPictureFree(&picture);
  WebPAnimEncoderDelete(encoder);
  return out;
}

// ---- video clips -----------------------------------------------------------------------------------

/// What make_clip writes.
struct ClipSpec {
  std::string container = "mp4";       ///< FFmpeg muxer: "mp4", "webm", "mov"
  std::string encoder = "mpeg4";       ///< FFmpeg encoder: "mpeg4" (always built), "libx264", "libvpx", "mjpeg"
  pixflow::tasks::Size size{320, 240};
  int frames = 10;
  int fps = 25;
  int gop = 12;                        ///< frames between keyframes
  /// A display matrix saying the picture is shown turned this many degrees clockwise (a phone held
  /// upright records landscape pixels and 90; av_display_rotation_get reads it back as -90).
  double rotation_cw = 0;
  std::int64_t bit_rate = 1'000'000;
  std::function<cv::Mat(int)> picture; ///< BGR frame `i`, of `size`
};

/// Encodes a clip into `file` (the muxers need a seekable output) and returns its bytes.
inline Bytes make_clip(const std::filesystem::path& file, const ClipSpec& spec) {
  const auto fail = [](const std::string& what) { throw std::runtime_error("make_clip: " + what); };
  AVFormatContext* out = nullptr;
  if (avformat_alloc_output_context2(&out, nullptr, spec.container.c_str(), file.c_str()) < 0) fail("muxer");
  const AVCodec* codec = avcodec_find_encoder_by_name(spec.encoder.c_str());
  if (codec == nullptr) fail("no encoder " + spec.encoder);
  AVStream* stream = avformat_new_stream(out, nullptr);
  AVCodecContext* ctx = avcodec_alloc_context3(codec);
  ctx->width = spec.size.width;
  ctx->height = spec.size.height;
  ctx->time_base = AVRational{1, spec.fps};
  ctx->framerate = AVRational{spec.fps, 1};
  ctx->gop_size = spec.gop;
  ctx->max_b_frames = 0;
  ctx->bit_rate = spec.bit_rate;
  ctx->pix_fmt = spec.encoder == "mjpeg" ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
  ctx->thread_count = 1;
  if ((out->oformat->flags & AVFMT_GLOBALHEADER) != 0) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (avcodec_open2(ctx, codec, nullptr) < 0) fail("open encoder");
  avcodec_parameters_from_context(stream->codecpar, ctx);
  stream->time_base = ctx->time_base;
  if (spec.rotation_cw != 0) {
    auto* matrix = reinterpret_cast<std::int32_t*>(av_stream_new_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, 9 * 4));
    av_display_rotation_set(matrix, spec.rotation_cw);
  }
  if (avio_open(&out->pb, file.c_str(), AVIO_FLAG_WRITE) < 0) fail("open file");
  if (avformat_write_header(out, nullptr) < 0) fail("header");

  SwsContext* sws = sws_getContext(spec.size.width, spec.size.height, AV_PIX_FMT_BGR24, spec.size.width, spec.size.height,
                                   ctx->pix_fmt, SWS_BICUBIC, nullptr, nullptr, nullptr);
  AVFrame* frame = av_frame_alloc();
  frame->format = ctx->pix_fmt;
  frame->width = spec.size.width;
  frame->height = spec.size.height;
  av_frame_get_buffer(frame, 0);
  AVPacket* packet = av_packet_alloc();
  const auto drain = [&] {
    while (avcodec_receive_packet(ctx, packet) == 0) {
      av_packet_rescale_ts(packet, ctx->time_base, stream->time_base);
      packet->stream_index = stream->index;
      if (av_interleaved_write_frame(out, packet) < 0) fail("write");
    }
  };
  for (int i = 0; i < spec.frames; ++i) {
    const cv::Mat bgr = spec.picture(i);
    av_frame_make_writable(frame);
    const std::uint8_t* src[1] = {bgr.data};
    const int stride[1] = {static_cast<int>(bgr.step[0])};
    sws_scale(sws, src, stride, 0, spec.size.height, frame->data, frame->linesize);
    frame->pts = i;
    if (avcodec_send_frame(ctx, frame) < 0) fail("encode");
    drain();
  }
  avcodec_send_frame(ctx, nullptr);
  drain();
  av_write_trailer(out);
  av_packet_free(&packet);
  av_frame_free(&frame);
  sws_freeContext(sws);
  avcodec_free_context(&ctx);
  avio_closep(&out->pb);
  avformat_free_context(out);
  return read_bytes(file);
}

/// A BGR picture: left half red, right half blue (clips' default content).
inline cv::Mat red_blue(pixflow::tasks::Size size) {
  cv::Mat picture(size.height, size.width, CV_8UC3, cv::Scalar(255, 0, 0));
  picture(cv::Rect(0, 0, size.width / 2, size.height)).setTo(cv::Scalar(0, 0, 255));
  return picture;
}

}  // namespace pixflow::test
