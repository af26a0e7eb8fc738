#include "pixflow/tasks/animation.hpp"

#include <gif_lib.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "animation_detail.hpp"
#include "colour_detail.hpp"
#include "decode_detail.hpp"
#include "pixflow/tasks/colour.hpp"

namespace pixflow::tasks {

namespace {

using detail::add_sat;
using detail::mul_sat;
using Bytes = std::span<const std::uint8_t>;

std::size_t pixels_of(Size size) {
  return mul_sat(static_cast<std::size_t>(size.width), static_cast<std::size_t>(size.height));
}

/// make_thumbnail's temporaries for a BGRA image of `pixels` that does not fit its box: the premultiplied
/// resize works in 32-bit float (a 4-channel copy, its split channels, a product) plus the alpha plane.
constexpr std::size_t kResizeBytesPerPixel = 40;

bool fully_opaque(const cv::Mat& bgra) {
  for (int y = 0; y < bgra.rows; ++y) {
    const auto* row = bgra.ptr<std::uint8_t>(y);
    for (int x = 0; x < bgra.cols; ++x)
      if (row[4 * x + 3] != 255) return false;
  }
  return true;
}

Expected<detail::AnimationLayout> inspect(Bytes bytes, ImageFormat format) {
  return format == ImageFormat::gif ? detail::inspect_gif(bytes) : detail::inspect_webp(bytes);
}

Expected<std::size_t> decode_frames(Bytes bytes, ImageFormat format, const detail::AnimationLayout& layout,
                                    std::size_t max_frames, const detail::FrameSink& sink) {
  return format == ImageFormat::gif ? detail::decode_gif_frames(bytes, layout, max_frames, sink)
                                    : detail::decode_webp_frames(bytes, max_frames, sink);
}

/// The body of decode_animation, exceptions left to the caller.
/// The box frames are kept to (with make_thumbnail's fit): the largest box for `fit`; for `fill`, the
/// size that covers it, so that every box can still be filled (cropped) from the frames kept.
Size keep_box(Size source, Size largest_box, ThumbnailMode mode) {
  return fills_box(mode) ? cover_size(source, largest_box) : largest_box;
}

Expected<Animation> decode_animation_checked(Bytes bytes, Size largest_box, DecodeLimits limits,
                                             AnimationLimits animation_limits, ThumbnailMode mode) {
  const ImageFormat format = sniff_format(bytes);
  if (format == ImageFormat::unknown) return Error{"not an image"};
  if (format != ImageFormat::gif && format != ImageFormat::webp) {
    // A still (or a refused format): decode_image says what it is; one frame, kept like the others.
    auto still = decode_image(bytes, largest_box, limits, mode);
    if (!still) return std::move(still).error();
    Animation animation;
    const Size stored{still->pixels.cols, still->pixels.rows};
    cv::Mat frame = make_thumbnail(still->pixels, keep_box(stored, largest_box, mode));
    animation.icc_profile = std::move(still->icc_profile);
    if (frame.channels() == 3) cv::cvtColor(frame, frame, cv::COLOR_BGR2BGRA);
    animation.size = Size{frame.cols, frame.rows};
    animation.frames.push_back(std::move(frame));
    animation.delays_ms.push_back(detail::normalized_delay_ms(0));
    animation.loop_count = 1;
    animation.source_format = format;
    animation.source_size = still->source_size;
    return animation;
  }

  auto layout = inspect(bytes, format);
  if (!layout) return std::move(layout).error();
  if (layout->frames > animation_limits.max_frames)
    return Error{"too many frames (" + std::to_string(layout->frames) + " > " +
                 std::to_string(animation_limits.max_frames) + ")"};
  const Size canvas = layout->canvas;
  const Size box = keep_box(canvas, largest_box, mode);
  const Size kept = fit_within(canvas, box);
  const bool resized = kept != canvas;
  const std::size_t fixed =
      add_sat(layout->working_bytes, resized ? mul_sat(pixels_of(canvas), kResizeBytesPerPixel) : 0);
  if (fixed > limits.max_memory_bytes) return detail::too_large(canvas);
  const std::size_t per_frame = add_sat(mul_sat(pixels_of(kept), 4), layout->per_frame_bytes);
  if (add_sat(fixed, mul_sat(per_frame, layout->frames)) > limits.max_memory_bytes)
    return Error{"animation too large (" + std::to_string(layout->frames) + " frames of " + to_string(canvas) + ")"};

  Animation animation;
  animation.frames.reserve(layout->frames);
  animation.delays_ms.reserve(layout->frames);
  auto decoded = decode_frames(bytes, format, *layout, layout->frames, [&](const cv::Mat& frame, int delay_ms) {
    animation.frames.push_back(make_thumbnail(frame, box));
    animation.delays_ms.push_back(delay_ms);
    return true;
  });
  if (!decoded) return std::move(decoded).error();
  animation.loop_count = layout->loop_count;
  animation.size = kept;
  animation.source_format = format;
  animation.source_size = canvas;
  if (format == ImageFormat::webp) animation.icc_profile = detail::webp_icc_profile(bytes);
  return animation;
}

void check_range(int value, int low, int high, const char* what) {
  if (value < low || value > high)
    throw std::invalid_argument(std::string(what) + " must be in " + std::to_string(low) + ".." +
                                std::to_string(high) + ", got " + std::to_string(value));
}

// ---- GIF encoding ----------------------------------------------------------------------------------

/// One frame in palette form.
struct Paletted {
  std::vector<GifByteType> indices;   // width x height, row-major
  std::vector<GifColorType> palette;  // the colours used, then the transparent entry if any
  int transparent = NO_TRANSPARENT_COLOR;
};

constexpr int kBits = 5;  // histogram precision per channel
constexpr int kSide = 1 << kBits;

int bin_of(const std::uint8_t* bgra) {
  return (bgra[2] >> (8 - kBits)) << (2 * kBits) | (bgra[1] >> (8 - kBits)) << kBits | (bgra[0] >> (8 - kBits));
}

/// A box of the 5-bit RGB histogram, [lo, hi] on each axis (0 = red, 1 = green, 2 = blue).
struct Box {
  std::array<int, 3> lo{0, 0, 0};
  std::array<int, 3> hi{kSide - 1, kSide - 1, kSide - 1};
  std::uint64_t count = 0;
};

struct Histogram {
  std::vector<std::uint32_t> count = std::vector<std::uint32_t>(kSide * kSide * kSide, 0);
  std::vector<std::array<std::uint64_t, 3>> sum = std::vector<std::array<std::uint64_t, 3>>(kSide * kSide * kSide);

  [[nodiscard]] static int at(int r, int g, int b) { return r << (2 * kBits) | g << kBits | b; }

  template <class F>
  void for_each(const Box& box, F&& f) const {
    for (int r = box.lo[0]; r <= box.hi[0]; ++r)
      for (int g = box.lo[1]; g <= box.hi[1]; ++g)
        for (int b = box.lo[2]; b <= box.hi[2]; ++b) f(r, g, b, at(r, g, b));
  }

  /// `box` shrunk to the bins it holds, with their pixel count.
  [[nodiscard]] Box shrink(const Box& box) const {
    Box out{{kSide, kSide, kSide}, {-1, -1, -1}, 0};
    for_each(box, [&](int r, int g, int b, int i) {
      if (count[static_cast<std::size_t>(i)] == 0) return;
      const std::array<int, 3> c{r, g, b};
      for (std::size_t a = 0; a < 3; ++a) {
        out.lo[a] = std::min(out.lo[a], c[a]);
        out.hi[a] = std::max(out.hi[a], c[a]);
      }
      out.count += count[static_cast<std::size_t>(i)];
    });
    return out;
  }
};

/// Median cut: the box with the largest population x longest side is split at the pixel-weighted median
/// of that side, until `colors` boxes or no box can be split.
std::vector<Box> median_cut(const Histogram& h, std::size_t colors) {
  std::vector<Box> boxes{h.shrink(Box{})};
  while (boxes.size() < colors) {
    std::size_t best = boxes.size();
    std::uint64_t best_score = 0;
    int best_axis = 0;
    for (std::size_t i = 0; i < boxes.size(); ++i) {
      if (boxes[i].count == 0) continue;
      for (int a = 0; a < 3; ++a) {
        const auto side = static_cast<std::uint64_t>(boxes[i].hi[static_cast<std::size_t>(a)] - boxes[i].lo[static_cast<std::size_t>(a)]);
        const std::uint64_t score = side * boxes[i].count;
        if (side > 0 && score > best_score) {
          best = i;
          best_score = score;
          best_axis = a;
        }
      }
    }
    if (best == boxes.size()) break;  // every box is a single bin
    const Box box = boxes[best];
    const auto axis = static_cast<std::size_t>(best_axis);
    std::array<std::uint64_t, kSide> slices{};
    h.for_each(box, [&](int r, int g, int b, int i) {
      const std::array<int, 3> c{r, g, b};
      slices[static_cast<std::size_t>(c[axis])] += h.count[static_cast<std::size_t>(i)];
    });
    std::uint64_t below = 0;
    int cut = box.lo[axis];
    for (int v = box.lo[axis]; v < box.hi[axis]; ++v) {  // the cut leaves at least one slice above
      below += slices[static_cast<std::size_t>(v)];
      cut = v;
      if (2 * below >= box.count) break;
    }
    Box lower = box;
    Box upper = box;
    lower.hi[axis] = cut;
    upper.lo[axis] = cut + 1;
    boxes[best] = h.shrink(lower);
    boxes.push_back(h.shrink(upper));
  }
  return boxes;
}

Paletted quantize(const cv::Mat& bgra, bool any_transparent) {
  Paletted out;
  const auto total = static_cast<std::size_t>(bgra.rows) * static_cast<std::size_t>(bgra.cols);
  out.indices.resize(total);
  const std::size_t max_colors = any_transparent ? 255 : 256;

  // Exact colours when there are few (a GIF's own palette survives a copy or a 1:1 size).
  std::unordered_map<std::uint32_t, GifByteType> exact;
  bool fits = true;
  for (int y = 0; y < bgra.rows && fits; ++y) {
    const auto* row = bgra.ptr<std::uint8_t>(y);
    for (int x = 0; x < bgra.cols; ++x) {
      const std::uint8_t* p = row + 4 * x;
      if (p[3] < 128) continue;
      const std::uint32_t key = std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 | p[0];
      if (exact.count(key) != 0) continue;
      if (exact.size() == max_colors) {
        fits = false;
        break;
      }
      const auto index = static_cast<GifByteType>(exact.size());
      exact.emplace(key, index);
      out.palette.push_back(GifColorType{p[2], p[1], p[0]});
    }
  }

  std::vector<GifByteType> by_bin;  // median cut: histogram bin -> palette index
  if (!fits) {
    Histogram h;
    for (int y = 0; y < bgra.rows; ++y) {
      const auto* row = bgra.ptr<std::uint8_t>(y);
      for (int x = 0; x < bgra.cols; ++x) {
        const std::uint8_t* p = row + 4 * x;
        if (p[3] < 128) continue;
        const auto bin = static_cast<std::size_t>(bin_of(p));
        ++h.count[bin];
        h.sum[bin][0] += p[2];
        h.sum[bin][1] += p[1];
        h.sum[bin][2] += p[0];
      }
    }
    const std::vector<Box> boxes = median_cut(h, max_colors);
    by_bin.assign(h.count.size(), 0);
    out.palette.clear();
    for (const Box& box : boxes) {
      std::array<std::uint64_t, 3> sum{};
      const auto index = static_cast<GifByteType>(out.palette.size());
      h.for_each(box, [&](int, int, int, int i) {
        by_bin[static_cast<std::size_t>(i)] = index;
        for (std::size_t c = 0; c < 3; ++c) sum[c] += h.sum[static_cast<std::size_t>(i)][c];
      });
      const std::uint64_t n = std::max<std::uint64_t>(box.count, 1);
      out.palette.push_back(GifColorType{static_cast<GifByteType>((sum[0] + n / 2) / n),
                                         static_cast<GifByteType>((sum[1] + n / 2) / n),
                                         static_cast<GifByteType>((sum[2] + n / 2) / n)});
    }
  }
  if (any_transparent) {
    out.transparent = static_cast<int>(out.palette.size());
    out.palette.push_back(GifColorType{0, 0, 0});
  }
  std::size_t i = 0;
  for (int y = 0; y < bgra.rows; ++y) {
    const auto* row = bgra.ptr<std::uint8_t>(y);
    for (int x = 0; x < bgra.cols; ++x, ++i) {
      const std::uint8_t* p = row + 4 * x;
      if (p[3] < 128 && any_transparent) {
        out.indices[i] = static_cast<GifByteType>(out.transparent);
      } else if (fits) {
        out.indices[i] = exact.at(std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 | p[0]);
      } else {
        out.indices[i] = by_bin[static_cast<std::size_t>(bin_of(p))];
      }
    }
  }
  if (out.palette.empty()) out.palette.push_back(GifColorType{0, 0, 0});
  return out;
}

int append_to_vector(GifFileType* gif, const GifByteType* data, int length) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(gif->UserData);
  out->insert(out->end(), data, data + length);
  return length;
}

struct EGifCloser {
  void operator()(GifFileType* gif) const {
    int error = 0;
    EGifCloseFile(gif, &error);
  }
};
struct MapDeleter {
  void operator()(ColorMapObject* map) const { GifFreeMapObject(map); }
};

Expected<std::vector<std::uint8_t>> encode_gif(const std::vector<cv::Mat>& frames, const std::vector<int>& delays,
                                               int loop_count, Size size) {
  const Error failed{"cannot encode as gif"};
  if (size.width > 65535 || size.height > 65535) return failed;
  bool any_transparent = false;
  for (const cv::Mat& frame : frames) any_transparent = any_transparent || !fully_opaque(frame);

  std::vector<std::uint8_t> bytes;
  int error = 0;
  std::unique_ptr<GifFileType, EGifCloser> gif(EGifOpen(&bytes, append_to_vector, &error));
  if (!gif) return failed;
  EGifSetGifVersion(gif.get(), true);
  if (EGifPutScreenDesc(gif.get(), size.width, size.height, 8, 0, nullptr) == GIF_ERROR) return failed;
  if (loop_count != 1) {  // NETSCAPE2.0 counts repetitions after the first play; 0 = forever
    const int repeats = loop_count <= 0 ? 0 : std::min(loop_count - 1, 65535);
    const std::array<GifByteType, 3> loop{1, static_cast<GifByteType>(repeats & 0xFF), static_cast<GifByteType>(repeats >> 8)};
    if (EGifPutExtensionLeader(gif.get(), APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
        EGifPutExtensionBlock(gif.get(), 11, "NETSCAPE2.0") == GIF_ERROR ||
        EGifPutExtensionBlock(gif.get(), 3, loop.data()) == GIF_ERROR || EGifPutExtensionTrailer(gif.get()) == GIF_ERROR)
      return failed;
  }
  for (std::size_t f = 0; f < frames.size(); ++f) {
    Paletted frame = quantize(frames[f], any_transparent);
    int entries = 2;
    while (entries < static_cast<int>(frame.palette.size())) entries *= 2;
    frame.palette.resize(static_cast<std::size_t>(entries), GifColorType{0, 0, 0});
    const std::unique_ptr<ColorMapObject, MapDeleter> map(GifMakeMapObject(entries, frame.palette.data()));
    if (!map) return failed;

    GraphicsControlBlock control{};
    control.DisposalMode = any_transparent ? DISPOSE_BACKGROUND : DISPOSE_DO_NOT;
    control.UserInputFlag = false;
    control.DelayTime = std::clamp((delays[f] + 5) / 10, 2, 65535);
    control.TransparentColor = frame.transparent;
    std::array<GifByteType, 4> extension{};
    EGifGCBToExtension(&control, extension.data());
    if (EGifPutExtension(gif.get(), GRAPHICS_EXT_FUNC_CODE, 4, extension.data()) == GIF_ERROR) return failed;
    if (EGifPutImageDesc(gif.get(), 0, 0, size.width, size.height, false, map.get()) == GIF_ERROR) return failed;
    for (int y = 0; y < size.height; ++y) {
      GifByteType* row = frame.indices.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(size.width);
      if (EGifPutLine(gif.get(), row, size.width) == GIF_ERROR) return failed;
    }
  }
  GifFileType* raw = gif.release();
  if (EGifCloseFile(raw, &error) == GIF_ERROR) return failed;  // writes the trailer, frees in any case
  return bytes;
}

// ---- WebP encoding ---------------------------------------------------------------------------------

struct AnimEncoderDeleter {
  void operator()(WebPAnimEncoder* encoder) const { WebPAnimEncoderDelete(encoder); }
};

Expected<std::vector<std::uint8_t>> encode_webp(const std::vector<cv::Mat>& frames, const std::vector<int>& delays,
                                                int loop_count, Size size, int quality) {
  const Error failed{"cannot encode as webp"};
  if (size.width > WEBP_MAX_DIMENSION || size.height > WEBP_MAX_DIMENSION) return failed;
  WebPAnimEncoderOptions options;
  if (!WebPAnimEncoderOptionsInit(&options)) return failed;
  options.anim_params.loop_count = std::max(loop_count, 0);
  options.anim_params.bgcolor = 0x00000000;  // transparent, as the frames were composed
  const std::unique_ptr<WebPAnimEncoder, AnimEncoderDeleter> encoder(
      WebPAnimEncoderNew(size.width, size.height, &options));
  if (!encoder) return failed;
  WebPConfig config;
  if (!WebPConfigInit(&config)) return failed;
  config.quality = static_cast<float>(quality);
  if (!WebPValidateConfig(&config)) return failed;

  WebPPicture picture;
  if (!WebPPictureInit(&picture)) return failed;
  const std::unique_ptr<WebPPicture, void (*)(WebPPicture*)> owned(&picture, WebPPictureFree);
  picture.use_argb = 1;
  picture.width = size.width;
  picture.height = size.height;
  int timestamp = 0;
  for (std::size_t f = 0; f < frames.size(); ++f) {
    const cv::Mat& frame = frames[f];
    if (!WebPPictureImportBGRA(&picture, frame.ptr<std::uint8_t>(0), static_cast<int>(frame.step[0]))) return failed;
    if (!WebPAnimEncoderAdd(encoder.get(), &picture, timestamp, &config)) return failed;
    timestamp += std::clamp(delays[f], 1, 655350);
  }
  if (!WebPAnimEncoderAdd(encoder.get(), nullptr, timestamp, nullptr)) return failed;
  WebPData data;
  WebPDataInit(&data);
  if (!WebPAnimEncoderAssemble(encoder.get(), &data)) return failed;
  std::vector<std::uint8_t> bytes(data.bytes, data.bytes + data.size);
  WebPDataClear(&data);
  return bytes;
}

}  // namespace

namespace detail {

Expected<DecodedImage> decode_first_frame(Bytes bytes, ImageFormat format, std::size_t budget) {
  auto layout = inspect(bytes, format);
  if (!layout) return std::move(layout).error();
  const Size canvas = layout->canvas;
  // The decoder's canvases, the frame copied out of them, and its BGR conversion when it is opaque.
  const std::size_t need = add_sat(add_sat(layout->working_bytes, layout->per_frame_bytes), mul_sat(pixels_of(canvas), 4 + 3));
  if (need > budget) return too_large(canvas);
  DecodedImage result;
  auto decoded = decode_frames(bytes, format, *layout, 1, [&](const cv::Mat& frame, int) {
    result.pixels = frame.clone();
    return false;
  });
  if (!decoded) return std::move(decoded).error();
  if (fully_opaque(result.pixels)) cv::cvtColor(result.pixels, result.pixels, cv::COLOR_BGRA2BGR);
  result.source_format = format;
  result.source_size = canvas;
  return result;
}

}  // namespace detail

Expected<Animation> decode_animation(std::span<const std::uint8_t> bytes, Size largest_box, DecodeLimits limits,
                                     AnimationLimits animation_limits, ThumbnailMode mode) {
  if (bytes.empty()) return Error{"empty body"};
  try {
    return decode_animation_checked(bytes, largest_box, limits, animation_limits, mode);
  } catch (const std::bad_alloc&) {
    return detail::out_of_memory();
  } catch (const cv::Exception& e) {
    if (e.code == cv::Error::StsNoMem) return detail::out_of_memory();
    return Error{"corrupt " + std::string(name_of(sniff_format(bytes)))};
  }
}

Animation make_animated_thumbnail(const Animation& animation, Size box, ThumbnailMode mode) {
  Animation out;
  out.delays_ms = animation.delays_ms;
  out.loop_count = animation.loop_count;
  out.source_format = animation.source_format;
  out.source_size = animation.source_size;
  out.frames.reserve(animation.frames.size());
  // fill-attention picks its region on the first frame and keeps it: a crop that moved from frame to
  // frame would shake. The region has the box's aspect ratio, so `fill` then takes all of it.
  std::optional<cv::Rect> region;
  if (mode == ThumbnailMode::fill_attention && !animation.frames.empty())
    region = thumbnail_region(animation.frames.front(), box, mode);
  for (const cv::Mat& frame : animation.frames) {
    cv::Mat small = region ? make_thumbnail(frame(*region), box, ThumbnailMode::fill) : make_thumbnail(frame, box, mode);
    // As for a still: a profile that cannot be used leaves the pixels as they are, taken as sRGB.
    if (!animation.icc_profile.empty()) (void)convert_to_srgb(small, animation.icc_profile);
    out.frames.push_back(std::move(small));
  }
  out.size = out.frames.empty() ? Size{} : Size{out.frames.front().cols, out.frames.front().rows};
  return out;
}

Expected<std::vector<std::uint8_t>> encode_animation(const Animation& animation, ImageFormat format,
                                                     const EncodeOptions& options) {
  check_range(options.jpeg_quality, 0, 100, "jpeg quality");
  check_range(options.webp_quality, 1, 100, "webp quality");
  check_range(options.png_compression, 0, 9, "png compression");
  const Error failed{"cannot encode as " + std::string(name_of(format))};
  if (format != ImageFormat::gif && format != ImageFormat::webp) return failed;
  if (animation.frames.empty() || animation.delays_ms.size() != animation.frames.size()) return failed;
  const Size size = animation.size;
  if (size.width <= 0 || size.height <= 0) return failed;
  std::vector<cv::Mat> frames;  // 8-bit BGRA, all of `size`
  frames.reserve(animation.frames.size());
  for (const cv::Mat& frame : animation.frames) {
    if (frame.depth() != CV_8U || frame.cols != size.width || frame.rows != size.height) return failed;
    if (frame.channels() == 4) {
      frames.push_back(frame);
    } else if (frame.channels() == 3) {
      cv::Mat bgra;
      cv::cvtColor(frame, bgra, cv::COLOR_BGR2BGRA);
      frames.push_back(std::move(bgra));
    } else {
      return failed;
    }
  }
  try {
    if (format == ImageFormat::gif) return encode_gif(frames, animation.delays_ms, animation.loop_count, size);
    return encode_webp(frames, animation.delays_ms, animation.loop_count, size, options.webp_quality);
  } catch (const std::bad_alloc&) {
    return failed;
  }
}

ImageFormat animated_output_format(ImageFormat source, ImageFormat requested) {
  return source == ImageFormat::gif && requested == ImageFormat::same ? ImageFormat::gif : ImageFormat::webp;
}

}  // namespace pixflow::tasks
