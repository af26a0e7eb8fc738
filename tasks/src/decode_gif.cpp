// GIF: the block structure walked by hand (frame count, loop count, truncation: cheap, no pixel decoded),
// then giflib's low-level reader (DGifGetRecordType / DGifGetImageDesc / DGifGetLine) one line at a time,
// composed onto a BGRA canvas here. giflib's DGifSlurp is not used: it keeps every frame's indices at
// once. giflib is reentrant (all state is in the GifFileType).
#include <gif_lib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include <opencv2/core.hpp>

#include "animation_detail.hpp"
#include "byte_order.hpp"
#include "decode_detail.hpp"

namespace pixflow::tasks::detail {

namespace {

/// Bytes of a colour table whose packed field is `packed` (flag bit 7, size in bits 0..2), or 0.
std::size_t color_table_bytes(std::uint8_t packed) {
  return (packed & 0x80) != 0 ? 3 * (std::size_t{2} << (packed & 0x07)) : 0;
}

enum class Walk { ok, truncated };

/// Skips a run of data sub-blocks (length byte, data) up to the 0 terminator, starting at `pos`. Calls
/// `first` with the first sub-block's data, if any.
template <class First>
Walk skip_sub_blocks(std::span<const std::uint8_t> b, std::size_t& pos, First&& first) {
  bool is_first = true;
  for (;;) {
    if (pos >= b.size()) return Walk::truncated;
    const std::size_t size = b[pos++];
    if (size == 0) return Walk::ok;
    if (size > b.size() - pos) return Walk::truncated;
    if (is_first) first(b.subspan(pos, size), pos);
    is_first = false;
    pos += size;
  }
}

struct Reader {
  std::span<const std::uint8_t> bytes;
  std::size_t pos = 0;
};

int read_from_memory(GifFileType* gif, GifByteType* out, int length) {
  auto* reader = static_cast<Reader*>(gif->UserData);
  const std::size_t wanted = length > 0 ? static_cast<std::size_t>(length) : 0;
  const std::size_t n = std::min(wanted, reader->bytes.size() - reader->pos);
  if (n > 0) std::memcpy(out, reader->bytes.data() + reader->pos, n);
  reader->pos += n;
  return static_cast<int>(n);
}

struct GifCloser {
  void operator()(GifFileType* gif) const {
    int error = 0;
    DGifCloseFile(gif, &error);
  }
};

/// The block structure was checked by inspect_gif, so whatever giflib still finds wrong (an LZW stream
/// that ends early, a bad code) is in the data itself.
Error gif_error(int code) {
  if (code == D_GIF_ERR_NOT_ENOUGH_MEM) return out_of_memory();
  return Error{"corrupt gif"};
}

struct Rect {
  int left = 0, top = 0, width = 0, height = 0;
};

/// `r` clipped to a canvas of `canvas` (possibly empty).
cv::Rect clipped(const Rect& r, Size canvas) {
  const cv::Rect frame(r.left, r.top, r.width, r.height);
  return frame & cv::Rect(0, 0, canvas.width, canvas.height);
}

}  // namespace

Expected<AnimationLayout> inspect_gif(std::span<const std::uint8_t> b) {
  const Error truncated{"truncated gif"};
  const Error corrupt{"corrupt gif"};
  if (b.size() < 6 || (std::memcmp(b.data(), "GIF87a", 6) != 0 && std::memcmp(b.data(), "GIF89a", 6) != 0))
    return corrupt;
  if (b.size() < 13) return truncated;
  AnimationLayout layout;
  layout.canvas = Size{static_cast<int>(le16(b.data() + 6)), static_cast<int>(le16(b.data() + 8))};
  std::size_t pos = 13 + color_table_bytes(b[10]);
  if (pos > b.size()) return truncated;

  bool restores_previous = false;
  Rect first;
  for (;;) {
    if (pos >= b.size()) {  // no trailer: browsers show what came; a file cut before any frame is not a GIF yet
      if (layout.frames == 0) return truncated;
      break;
    }
    const std::uint8_t introducer = b[pos];
    if (introducer == 0x3B) break;  // trailer
    if (introducer == 0x21) {       // extension: label, then sub-blocks
      if (b.size() - pos < 2) return truncated;
      const std::uint8_t label = b[pos + 1];
      pos += 2;
      const auto walked = skip_sub_blocks(b, pos, [&](std::span<const std::uint8_t> data, std::size_t at) {
        if (label == 0xF9 && data.size() >= 4 && ((data[0] >> 2) & 0x07) == 3) restores_previous = true;
        if (label == 0xFF && data.size() == 11 &&
            (std::memcmp(data.data(), "NETSCAPE2.0", 11) == 0 || std::memcmp(data.data(), "ANIMEXTS1.0", 11) == 0)) {
          // The next sub-block is {1, count lo, count hi}: repetitions after the first play, 0 = forever.
          const std::size_t next = at + data.size();
          if (next + 4 <= b.size() && b[next] >= 3 && b[next + 1] == 1) {
            const auto repeats = static_cast<int>(le16(b.data() + next + 2));
            layout.loop_count = repeats == 0 ? 0 : std::min(repeats + 1, 65535);
          }
        }
      });
      if (walked == Walk::truncated) return truncated;
      continue;
    }
    if (introducer == 0x2C) {  // image descriptor, local colour table, LZW code size, data sub-blocks
      if (b.size() - pos < 10) return truncated;
      const Rect rect{static_cast<int>(le16(b.data() + pos + 1)), static_cast<int>(le16(b.data() + pos + 3)),
                      static_cast<int>(le16(b.data() + pos + 5)), static_cast<int>(le16(b.data() + pos + 7))};
      pos += 10 + color_table_bytes(b[pos + 9]);
      if (pos >= b.size()) return truncated;
      const std::uint8_t code_size = b[pos++];
      if (code_size < 1 || code_size > 8) return corrupt;
      if (skip_sub_blocks(b, pos, [](auto, auto) {}) == Walk::truncated) return truncated;
      if (layout.frames == 0) first = rect;
      ++layout.frames;
      continue;
    }
    // Anything else between blocks: after a frame, the end of the animation (browsers stop there too);
    // before any frame, not a GIF's structure.
    if (layout.frames == 0) return corrupt;
    break;
  }
  if (layout.frames == 0) return corrupt;
  if (layout.canvas.width == 0 || layout.canvas.height == 0)  // some encoders leave the screen 0x0
    layout.canvas = Size{first.left + first.width, first.top + first.height};
  if (layout.canvas.width <= 0 || layout.canvas.height <= 0) return corrupt;
  const std::size_t canvas_bytes =
      mul_sat(mul_sat(static_cast<std::size_t>(layout.canvas.width), static_cast<std::size_t>(layout.canvas.height)), 4);
  layout.working_bytes = add_sat(mul_sat(canvas_bytes, restores_previous ? 2 : 1), 65536 + 32768);
  layout.per_frame_bytes = 1024;  // giflib's SavedImage record and its copy of a local palette
  return layout;
}

Expected<std::size_t> decode_gif_frames(std::span<const std::uint8_t> bytes, const AnimationLayout& layout,
                                        std::size_t max_frames, const FrameSink& sink) {
  Reader reader{bytes, 0};
  int error = 0;
  const std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&reader, read_from_memory, &error));
  if (!gif) return gif_error(error);

  const Size canvas_size = layout.canvas;
  cv::Mat canvas(canvas_size.height, canvas_size.width, CV_8UC4, cv::Scalar::all(0));  // transparent
  cv::Mat previous;   // the canvas before a frame with disposal 3
  std::vector<GifPixelType> line;
  std::array<std::uint32_t, 256> lut{};  // index -> BGRA (little-endian B,G,R,A); 0 = leave the pixel

  GraphicsControlBlock control{DISPOSAL_UNSPECIFIED, false, 0, NO_TRANSPARENT_COLOR};
  Rect last_rect;
  int last_disposal = DISPOSAL_UNSPECIFIED;
  std::size_t decoded = 0;
  while (decoded < std::min(max_frames, layout.frames)) {
    GifRecordType type = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(gif.get(), &type) == GIF_ERROR) return gif_error(gif->Error);
    if (type == TERMINATE_RECORD_TYPE) break;
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* block = nullptr;
      if (DGifGetExtension(gif.get(), &code, &block) == GIF_ERROR) return gif_error(gif->Error);
      if (code == GRAPHICS_EXT_FUNC_CODE && block != nullptr && block[0] >= 4)
        DGifExtensionToGCB(block[0], block + 1, &control);
      while (block != nullptr) {
        if (DGifGetExtensionNext(gif.get(), &block) == GIF_ERROR) return gif_error(gif->Error);
      }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) return Error{"corrupt gif"};
    if (DGifGetImageDesc(gif.get()) == GIF_ERROR) return gif_error(gif->Error);

    // The previous frame's disposal, now that it has been shown.
    if (last_disposal == DISPOSE_BACKGROUND) {
      const cv::Rect area = clipped(last_rect, canvas_size);
      if (area.area() > 0) canvas(area).setTo(cv::Scalar::all(0));
    } else if (last_disposal == DISPOSE_PREVIOUS && !previous.empty()) {
      previous.copyTo(canvas);
    }
    if (control.DisposalMode == DISPOSE_PREVIOUS) canvas.copyTo(previous);

    const GifImageDesc& desc = gif->Image;
    const ColorMapObject* map = desc.ColorMap != nullptr ? desc.ColorMap : gif->SColorMap;
    if (map == nullptr) return Error{"corrupt gif"};  // no palette at all
    lut.fill(0);
    const int colors = std::min(map->ColorCount, 256);
    for (int i = 0; i < colors; ++i) {
      const GifColorType& c = map->Colors[i];
      lut[static_cast<std::size_t>(i)] =
          std::uint32_t{c.Blue} | std::uint32_t{c.Green} << 8 | std::uint32_t{c.Red} << 16 | 0xFF000000u;
    }
    if (control.TransparentColor >= 0 && control.TransparentColor < 256)
      lut[static_cast<std::size_t>(control.TransparentColor)] = 0;

    const Rect rect{desc.Left, desc.Top, desc.Width, desc.Height};
    if (rect.width > 0 && rect.height > 0) {
      line.resize(static_cast<std::size_t>(rect.width));
      // Interlaced rows come in four passes: every 8th from 0, every 8th from 4, every 4th from 2, every 2nd from 1.
      static constexpr std::array<std::pair<int, int>, 4> kPasses{{{0, 8}, {4, 8}, {2, 4}, {1, 2}}};
      const auto draw = [&](int y) {
        const int dy = rect.top + y;
        if (dy < 0 || dy >= canvas_size.height || rect.left >= canvas_size.width) return;
        auto* row = canvas.ptr<std::uint32_t>(dy) + rect.left;
        const int visible = std::min(rect.width, canvas_size.width - rect.left);
        for (int x = 0; x < visible; ++x) {
          const std::uint32_t pixel = lut[line[static_cast<std::size_t>(x)]];
          if (pixel != 0) row[x] = pixel;
        }
      };
      const auto read_row = [&](int y) -> bool {
        if (DGifGetLine(gif.get(), line.data(), rect.width) == GIF_ERROR) return false;
        draw(y);
        return true;
      };
      if (desc.Interlace) {
        for (const auto& [start, step] : kPasses)
          for (int y = start; y < rect.height; y += step)
            if (!read_row(y)) return gif_error(gif->Error);
      } else {
        for (int y = 0; y < rect.height; ++y)
          if (!read_row(y)) return gif_error(gif->Error);
      }
    } else {
      // An empty frame still carries LZW data: skip it block by block.
      int code_size = 0;
      GifByteType* block = nullptr;
      if (DGifGetCode(gif.get(), &code_size, &block) == GIF_ERROR) return gif_error(gif->Error);
      while (block != nullptr)
        if (DGifGetCodeNext(gif.get(), &block) == GIF_ERROR) return gif_error(gif->Error);
    }

    ++decoded;
    const bool go_on = sink(canvas, normalized_delay_ms(control.DelayTime * 10));
    last_rect = rect;
    last_disposal = control.DisposalMode;
    control = GraphicsControlBlock{DISPOSAL_UNSPECIFIED, false, 0, NO_TRANSPARENT_COLOR};
    if (!go_on) break;
  }
  if (decoded == 0) return Error{"corrupt gif"};
  return decoded;
}

}  // namespace pixflow::tasks::detail
