// ICC profiles to sRGB with LittleCMS (colour.hpp): cached transforms, grey profiles, the sRGB profile
// thumbnails may carry and how it is embedded into JPEG, PNG and WebP files.
#include "pixflow/tasks/colour.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <lcms2.h>
#include <opencv2/core.hpp>
#include <webp/demux.h>
#include <webp/mux.h>
#include <zlib.h>

#include "byte_order.hpp"
#include "colour_detail.hpp"

namespace pixflow::tasks {

namespace detail {

namespace {

/// pixflow's own LittleCMS context: its error handler (LittleCMS's default prints nothing) and plugins
/// are not the host application's. Never freed: transforms cached in it live until the process ends.
cmsContext context() {
  static const cmsContext instance = cmsCreateContext(nullptr, nullptr);
  return instance;
}

/// The data colour space a profile's header names (bytes 16..19), read without LittleCMS, so the pixel
/// layout can be chosen before the profile is parsed; 0 when the header is cut short.
std::uint32_t header_colour_space(std::span<const std::uint8_t> icc) {
  if (icc.size() < 128) return 0;
  return std::uint32_t{icc[16]} << 24 | std::uint32_t{icc[17]} << 16 | std::uint32_t{icc[18]} << 8 | icc[19];
}

cmsColorSpaceSignature colour_space_of(PixelLayout layout) {
  switch (layout) {
    case PixelLayout::bgr:
    case PixelLayout::bgra: return cmsSigRgbData;
    case PixelLayout::grey: return cmsSigGrayData;
    case PixelLayout::cmyk:
    case PixelLayout::cmyk_inverted: break;
  }
  return cmsSigCmykData;
}

cmsUInt32Number input_format(PixelLayout layout) {
  switch (layout) {
    case PixelLayout::bgr: return TYPE_BGR_8;
    case PixelLayout::bgra: return TYPE_BGRA_8;
    case PixelLayout::grey: return TYPE_GRAY_8;
    case PixelLayout::cmyk: return TYPE_CMYK_8;
    case PixelLayout::cmyk_inverted: break;
  }
  return TYPE_CMYK_8_REV;  // "reversed flavour": 0 is full ink, as Adobe writes CMYK JPEGs
}

/// Why a profile of `space` cannot describe the pixels at hand (a static string: `why` points at it).
const char* unsupported_reason(cmsColorSpaceSignature space) {
  switch (space) {
    case cmsSigRgbData: return "unsupported icc profile (rgb)";
    case cmsSigGrayData: return "unsupported icc profile (grey)";
    case cmsSigCmykData: return "unsupported icc profile (cmyk)";
    case cmsSigLabData: return "unsupported icc profile (lab)";
    case cmsSigXYZData: return "unsupported icc profile (xyz)";
    default: return "unsupported icc profile (other)";
  }
}

constexpr const char* kInvalid = "invalid icc profile";

struct Built {
  std::shared_ptr<const SrgbTransform> transform;
  const char* why = nullptr;
};

Built build(std::span<const std::uint8_t> icc, PixelLayout layout) {
  if (icc.size() > UINT32_MAX) return {nullptr, kInvalid};
  cmsHPROFILE source = cmsOpenProfileFromMemTHR(context(), icc.data(), static_cast<cmsUInt32Number>(icc.size()));
  if (source == nullptr) return {nullptr, kInvalid};
  const cmsColorSpaceSignature space = cmsGetColorSpace(source);
  if (space != colour_space_of(layout)) {
    cmsCloseProfile(source);
    return {nullptr, unsupported_reason(space)};
  }
  cmsHPROFILE srgb = cmsCreate_sRGBProfileTHR(context());
  const bool alpha = layout == PixelLayout::bgra;
  cmsUInt32Number flags = cmsFLAGS_NOCACHE | cmsFLAGS_BLACKPOINTCOMPENSATION;
  if (alpha) flags |= cmsFLAGS_COPY_ALPHA;
  cmsHTRANSFORM transform = srgb == nullptr ? nullptr
                            : cmsCreateTransformTHR(context(), source, input_format(layout), srgb,
                                                    alpha ? TYPE_BGRA_8 : TYPE_BGR_8, INTENT_RELATIVE_COLORIMETRIC, flags);
  cmsCloseProfile(source);
  if (srgb != nullptr) cmsCloseProfile(srgb);
  if (transform == nullptr) return {nullptr, kInvalid};
  return {std::make_shared<const SrgbTransform>(transform), nullptr};
}

/// The last few transforms built, most recent first. A gallery's photos share a handful of profiles
/// (Display P3 from phones, the same camera's Adobe RGB), so a few entries hit nearly always.
class TransformCache {
 public:
  Built get(std::span<const std::uint8_t> icc, PixelLayout layout) {
    {
      std::lock_guard lock(mutex_);
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->layout != layout || it->icc.size() != icc.size() ||
            !std::equal(icc.begin(), icc.end(), it->icc.begin()))
          continue;
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().built;
      }
    }
    Built built = build(icc, layout);  // outside the lock: building takes milliseconds
    if (icc.size() <= kMaxCachedBytes) {
      std::lock_guard lock(mutex_);
      entries_.push_front({std::vector<std::uint8_t>(icc.begin(), icc.end()), layout, built});
      if (entries_.size() > kCapacity) entries_.pop_back();
    }
    return built;
  }

 private:
  static constexpr std::size_t kCapacity = 16;
  static constexpr std::size_t kMaxCachedBytes = std::size_t{4} << 20;  // real profiles: 0.5 KB .. 3 MB
  struct Entry {
    std::vector<std::uint8_t> icc;
    PixelLayout layout;
    Built built;  // a broken profile is remembered too: it is not parsed again for every size
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
};

TransformCache& cache() {
  static TransformCache instance;
  return instance;
}

}  // namespace

SrgbTransform::~SrgbTransform() { cmsDeleteTransform(static_cast<cmsHTRANSFORM>(handle_)); }

void SrgbTransform::apply(const void* in, void* out, std::size_t pixels) const {
  while (pixels > 0) {
    const auto n = static_cast<cmsUInt32Number>(std::min<std::size_t>(pixels, UINT32_MAX));
    cmsDoTransform(static_cast<cmsHTRANSFORM>(handle_), in, out, n);
    pixels -= n;
    in = static_cast<const std::uint8_t*>(in) + n;  // only reached for > 4 G pixels, never in practice
    out = static_cast<std::uint8_t*>(out) + n;
  }
}

std::shared_ptr<const SrgbTransform> srgb_transform(std::span<const std::uint8_t> icc, PixelLayout input,
                                                    const char** why) {
  Built built = cache().get(icc, input);
  if (why != nullptr) *why = built.why;
  return built.transform;
}

std::vector<std::uint8_t> webp_icc_profile(std::span<const std::uint8_t> bytes) {
  const WebPData data{bytes.data(), bytes.size()};
  WebPDemuxer* demux = WebPDemux(&data);
  if (demux == nullptr) return {};
  std::vector<std::uint8_t> icc;
  if ((WebPDemuxGetI(demux, WEBP_FF_FORMAT_FLAGS) & ICCP_FLAG) != 0) {
    WebPChunkIterator chunk{};
    if (WebPDemuxGetChunk(demux, "ICCP", 1, &chunk) != 0)
      icc.assign(chunk.chunk.bytes, chunk.chunk.bytes + chunk.chunk.size);
    WebPDemuxReleaseChunkIterator(&chunk);
  }
  WebPDemuxDelete(demux);
  return icc;
}

}  // namespace detail

namespace {

using detail::be32;
using detail::PixelLayout;

/// Converts `image` row by row with `transform` into a new matrix of `type` (rows of a thumbnail may be
/// a view with a stride).
cv::Mat transformed(const cv::Mat& image, const detail::SrgbTransform& transform, int type) {
  cv::Mat out(image.size(), type);
  for (int y = 0; y < image.rows; ++y) transform.apply(image.ptr(y), out.ptr(y), static_cast<std::size_t>(image.cols));
  return out;
}

void append_be32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

Expected<std::vector<std::uint8_t>> embed_in_jpeg(std::span<const std::uint8_t> jpeg, std::span<const std::uint8_t> icc,
                                                  const Error& failed) {
  // APP2 segments: "ICC_PROFILE\0", sequence number (1-based), count, then up to 65519 bytes each.
  constexpr std::size_t kOverhead = 2 + 14;
  constexpr std::size_t kChunk = 65535 - kOverhead;
  const std::size_t count = (icc.size() + kChunk - 1) / kChunk;
  if (jpeg.size() < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 || count == 0 || count > 255) return failed;
  std::size_t at = 2;
  // After APP0 (JFIF), which must come first when present.
  if (jpeg[2] == 0xFF && jpeg[3] == 0xE0) {
    if (jpeg.size() < 6) return failed;
    at = 4 + (std::size_t{jpeg[4]} << 8 | jpeg[5]);
    if (at > jpeg.size()) return failed;
  }
  std::vector<std::uint8_t> out(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(at));
  out.reserve(jpeg.size() + icc.size() + count * (kOverhead + 2));
  for (std::size_t i = 0; i < count; ++i) {
    const auto part = icc.subspan(i * kChunk, std::min(kChunk, icc.size() - i * kChunk));
    const std::size_t length = kOverhead + part.size();
    out.insert(out.end(), {0xFF, 0xE2, static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length & 0xFF)});
    constexpr std::string_view tag("ICC_PROFILE\0", 12);
    out.insert(out.end(), tag.begin(), tag.end());
    out.push_back(static_cast<std::uint8_t>(i + 1));
    out.push_back(static_cast<std::uint8_t>(count));
    out.insert(out.end(), part.begin(), part.end());
  }
  out.insert(out.end(), jpeg.begin() + static_cast<std::ptrdiff_t>(at), jpeg.end());
  return out;
}

Expected<std::vector<std::uint8_t>> embed_in_png(std::span<const std::uint8_t> png, std::span<const std::uint8_t> icc,
                                                 const Error& failed) {
  // Signature (8), then IHDR (length 13): the iCCP chunk goes right after it, before PLTE and IDAT.
  constexpr std::size_t kAfterIhdr = 8 + 8 + 13 + 4;
  if (png.size() < kAfterIhdr || std::memcmp(png.data(), "\x89PNG\r\n\x1A\n", 8) != 0 || be32(png.data() + 8) != 13 ||
      std::memcmp(png.data() + 12, "IHDR", 4) != 0 || icc.size() > UINT32_MAX / 2)
    return failed;
  uLongf packed_size = compressBound(static_cast<uLong>(icc.size()));
  std::vector<std::uint8_t> packed(packed_size);
  if (compress2(packed.data(), &packed_size, icc.data(), static_cast<uLong>(icc.size()), Z_BEST_COMPRESSION) != Z_OK)
    return failed;
  packed.resize(packed_size);
  // iCCP: a keyword (1..79 Latin-1 characters), NUL, compression method 0 (zlib), the compressed profile.
  constexpr std::string_view head("iCCPsRGB\0\0", 10);  // type, keyword, NUL, method 0
  std::vector<std::uint8_t> chunk;
  chunk.reserve(head.size() + packed.size());
  chunk.insert(chunk.end(), head.begin(), head.end());
  chunk.insert(chunk.end(), packed.begin(), packed.end());
  const auto crc = static_cast<std::uint32_t>(crc32(0, chunk.data(), static_cast<uInt>(chunk.size())));

  std::vector<std::uint8_t> out(png.begin(), png.begin() + kAfterIhdr);
  out.reserve(png.size() + chunk.size() + 8);
  append_be32(out, static_cast<std::uint32_t>(chunk.size() - 4));
  out.insert(out.end(), chunk.begin(), chunk.end());
  append_be32(out, crc);
  out.insert(out.end(), png.begin() + kAfterIhdr, png.end());
  return out;
}

Expected<std::vector<std::uint8_t>> embed_in_webp(std::span<const std::uint8_t> webp, std::span<const std::uint8_t> icc,
                                                  const Error& failed) {
  const WebPData image{webp.data(), webp.size()};
  WebPMux* mux = WebPMuxCreate(&image, 0);
  if (mux == nullptr) return failed;
  const WebPData profile{icc.data(), icc.size()};
  WebPData assembled{};
  const bool done = WebPMuxSetChunk(mux, "ICCP", &profile, 0) == WEBP_MUX_OK &&
                    WebPMuxAssemble(mux, &assembled) == WEBP_MUX_OK;
  WebPMuxDelete(mux);
  if (!done) {
    WebPDataClear(&assembled);
    return failed;
  }
  std::vector<std::uint8_t> out(assembled.bytes, assembled.bytes + assembled.size);
  WebPDataClear(&assembled);
  return out;
}

}  // namespace

Expected<void> convert_to_srgb(cv::Mat& image, std::span<const std::uint8_t> icc) {
  if (icc.empty()) return {};
  if (image.empty() || image.depth() != CV_8U || (image.channels() != 3 && image.channels() != 4))
    return Error{"unsupported pixels"};
  const bool alpha = image.channels() == 4;
  // A grey profile describes one channel: decode_image's grey images are BGR with equal channels.
  const bool grey = detail::header_colour_space(icc) == cmsSigGrayData;
  const PixelLayout layout = grey ? PixelLayout::grey : alpha ? PixelLayout::bgra : PixelLayout::bgr;
  const char* why = nullptr;
  const auto transform = detail::srgb_transform(icc, layout, &why);
  if (!transform) return Error{why != nullptr ? why : "invalid icc profile"};
  if (!grey) {
    image = transformed(image, *transform, image.type());
    return {};
  }
  cv::Mat first;
  cv::extractChannel(image, first, 0);
  cv::Mat bgr = transformed(first, *transform, CV_8UC3);
  if (alpha) {
    cv::Mat bgra(image.size(), CV_8UC4);
    const cv::Mat sources[] = {bgr, image};
    const int from_to[] = {0, 0, 1, 1, 2, 2, 6, 3};  // B, G, R from bgr; A (channel 3 of image) after them
    cv::mixChannels(sources, 2, &bgra, 1, from_to, 4);
    image = bgra;
  } else {
    image = bgr;
  }
  return {};
}

std::span<const std::uint8_t> srgb_icc_profile() {
  static const std::vector<std::uint8_t> profile = [] {
    std::vector<std::uint8_t> bytes;
    cmsHPROFILE srgb = cmsCreate_sRGBProfileTHR(detail::context());
    cmsUInt32Number size = 0;
    if (srgb != nullptr && cmsSaveProfileToMem(srgb, nullptr, &size) && size > 0) {
      bytes.resize(size);
      if (!cmsSaveProfileToMem(srgb, bytes.data(), &size)) bytes.clear();
    }
    if (srgb != nullptr) cmsCloseProfile(srgb);
    return bytes;
  }();
  return profile;
}

Expected<std::vector<std::uint8_t>> embed_icc_profile(std::span<const std::uint8_t> encoded, ImageFormat format,
                                                      std::span<const std::uint8_t> icc) {
  const Error failed{"cannot embed icc profile in " + std::string(name_of(format))};
  if (icc.empty()) return failed;
  switch (format) {
    case ImageFormat::jpeg: return embed_in_jpeg(encoded, icc, failed);
    case ImageFormat::png: return embed_in_png(encoded, icc, failed);
    case ImageFormat::webp: return embed_in_webp(encoded, icc, failed);
    default: return failed;
  }
}

}  // namespace pixflow::tasks
