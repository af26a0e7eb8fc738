#pragma once
// Internals of colour.cpp shared with the decoders: cached LittleCMS transforms to sRGB (decode_jpeg.cpp
// converts CMYK rows while decoding) and the WebP ICCP reader (decode.cpp). Not installed: the public
// API is pixflow/tasks/colour.hpp.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace pixflow::tasks::detail {

/// A LittleCMS transform from an embedded profile to 8-bit sRGB, built once per (profile, pixel
/// layout) and shared: apply() may run on many threads at once (built with cmsFLAGS_NOCACHE).
class SrgbTransform {
 public:
  explicit SrgbTransform(void* handle) noexcept : handle_(handle) {}
  ~SrgbTransform();
  SrgbTransform(const SrgbTransform&) = delete;
  SrgbTransform& operator=(const SrgbTransform&) = delete;
  /// Converts `pixels` pixels from `in` (the input layout) to `out` (the output layout).
  void apply(const void* in, void* out, std::size_t pixels) const;

 private:
  void* handle_;  // cmsHTRANSFORM
};

/// The pixel layouts the decoders and the thumbnail stage convert.
enum class PixelLayout {
  bgr,           ///< 8-bit B, G, R
  bgra,          ///< 8-bit B, G, R, A (alpha copied)
  grey,          ///< 8-bit grey
  cmyk,          ///< 8-bit C, M, Y, K, 0 = no ink (as libjpeg writes plain CMYK)
  cmyk_inverted, ///< 8-bit C, M, Y, K, 255 = no ink (Adobe's CMYK and YCCK JPEGs)
};

/// The cached transform from ICC profile `icc` with pixels in `input` to sRGB BGR (BGRA for bgra input),
/// relative colorimetric with black-point compensation; nullptr when the profile cannot be read or does
/// not describe `input`'s colour space (an RGB profile for CMYK pixels, ...). `why`, when given, gets
/// the reason ("invalid icc profile", "unsupported icc profile (cmyk)").
std::shared_ptr<const SrgbTransform> srgb_transform(std::span<const std::uint8_t> icc, PixelLayout input,
                                                    const char** why = nullptr);

/// The ICCP chunk of a WebP file (extended format), empty when there is none or the file cannot be
/// parsed (the decode reports that, not this).
std::vector<std::uint8_t> webp_icc_profile(std::span<const std::uint8_t> bytes);

}  // namespace pixflow::tasks::detail
