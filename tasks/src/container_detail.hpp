#pragma once
// The video containers' structure, read without FFmpeg: what decode.cpp's sniffing and video.cpp's
// "truncated" check need. Not installed.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "byte_order.hpp"

namespace pixflow::tasks::detail {

/// An EBML variable-length integer at `pos` (1..8 bytes, the length told by the first byte's leading
/// zeros), `pos` moved past it; `keep_marker` keeps the length bit (element IDs are written with it).
/// std::nullopt when it is cut short or its first byte is 0.
inline std::optional<std::uint64_t> ebml_vint(std::span<const std::uint8_t> b, std::size_t& pos, bool keep_marker) {
  if (pos >= b.size() || b[pos] == 0) return std::nullopt;
  const int length = __builtin_clz(static_cast<unsigned>(b[pos])) - 24 + 1;
  if (b.size() - pos < static_cast<std::size_t>(length)) return std::nullopt;
  std::uint64_t value = keep_marker ? b[pos] : b[pos] & (0xFFu >> length);
  for (int i = 1; i < length; ++i) value = value << 8 | b[pos + static_cast<std::size_t>(i)];
  pos += static_cast<std::size_t>(length);
  return value;
}

enum class ContainerState { complete, truncated, corrupt };

/// Walks the top-level boxes of an ISO base media file (MP4/MOV): each box's 32-bit size (1: a 64-bit
/// size follows; 0: to the end of the file) must end within the file. A box that runs past the end is
/// a download cut short; a size below its own header is corrupt; no `moov` box at all is corrupt too.
inline ContainerState iso_structure(std::span<const std::uint8_t> b) {
  const auto be32 = [&](std::size_t at) { return detail::be32(b.data() + at); };
  std::size_t pos = 0;
  bool moov = false;
  while (pos < b.size()) {
    if (b.size() - pos < 8) return ContainerState::truncated;
    std::uint64_t size = be32(pos);
    std::size_t header = 8;
    if (size == 1) {
      if (b.size() - pos < 16) return ContainerState::truncated;
      size = std::uint64_t{be32(pos + 8)} << 32 | be32(pos + 12);
      header = 16;
    } else if (size == 0) {
      size = b.size() - pos;
    }
    if (size < header) return ContainerState::corrupt;
    if (b[pos + 4] == 'm' && b[pos + 5] == 'o' && b[pos + 6] == 'o' && b[pos + 7] == 'v') moov = true;
    if (size > b.size() - pos) return ContainerState::truncated;
    pos += static_cast<std::size_t>(size);
  }
  return moov ? ContainerState::complete : ContainerState::corrupt;
}

/// A WebM file: the EBML header, then the Segment (ID 18 53 80 67), whose size, when known, must end
/// within the file (a live stream's "unknown" size, all ones, cannot be checked).
inline ContainerState webm_structure(std::span<const std::uint8_t> b) {
  std::size_t pos = 4;  // after the EBML header's ID
  const auto header_size = ebml_vint(b, pos, false);
  if (!header_size) return ContainerState::truncated;
  if (*header_size > b.size() - pos) return ContainerState::truncated;
  pos += static_cast<std::size_t>(*header_size);
  const auto id = ebml_vint(b, pos, true);
  const std::size_t size_at = pos;
  const auto size = ebml_vint(b, pos, false);
  if (!id || !size) return ContainerState::truncated;
  if (*id != 0x18538067) return ContainerState::corrupt;
  const std::size_t length = pos - size_at;
  const std::uint64_t unknown = (std::uint64_t{1} << (7 * length)) - 1;  // every value bit set
  if (*size != unknown && *size > b.size() - pos) return ContainerState::truncated;
  return ContainerState::complete;
}

}  // namespace pixflow::tasks::detail
