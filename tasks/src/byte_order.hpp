#pragma once
// Integers read from (and written to) file formats' byte order: big-endian (JPEG, PNG, ISO boxes, ICC)
// and little-endian (GIF, WebP, BMP, TIFF's "II"). One place for the decoders and the colour code.
// Not installed.
#include <cstdint>

namespace pixflow::tasks::detail {

inline std::uint32_t be16(const std::uint8_t* p) { return std::uint32_t{p[0]} << 8 | p[1]; }
inline std::uint32_t be32(const std::uint8_t* p) { return be16(p) << 16 | be16(p + 2); }
inline std::uint32_t le16(const std::uint8_t* p) { return std::uint32_t{p[1]} << 8 | p[0]; }
inline std::uint32_t le24(const std::uint8_t* p) { return std::uint32_t{p[2]} << 16 | le16(p); }
inline std::uint32_t le32(const std::uint8_t* p) { return std::uint32_t{p[3]} << 24 | le24(p); }

/// Writes `v` big-endian at p[0..3].
inline void put_be32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

}  // namespace pixflow::tasks::detail
