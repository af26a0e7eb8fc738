// PNG through libpng: IHDR budgeted before any row is allocated, libpng's warnings kept quiet (an
// "iCCP: known incorrect sRGB profile" is not a failure), its errors sorted into truncated / corrupt /
// out of memory, and the same transforms as OpenCV 4.6's PNG decoder under IMREAD_UNCHANGED, so that
// the pixels are those cv::imdecode gave. The iCCP profile is handed out for the sRGB conversion
// (colour.hpp), which happens after the resize: a 16-bit image is reduced to 8 bits first, as before.
//
// zlib's inflate is a third of a PNG's decode time; libdeflate inflates the same stream 2.2x as fast,
// but only in one call on the whole buffer. So when the file is well formed (consecutive IDAT chunks,
// their CRCs right, the stream inflating to exactly the size IHDR implies), the IDAT stream is inflated
// up front by libdeflate and libpng reads it back as "stored" (uncompressed) deflate blocks, which zlib
// copies: libpng still does the filters, interlace and transforms, so the pixels cannot differ, and
// anything unusual falls back to libpng reading the file as it is, with the same errors as before
// (docs/design.md §20).
//
// setjmp/longjmp: libpng's error function must not return; we longjmp back to guarded() below, with
// only libpng's C frames and guarded()'s lambda (no C++ object with a destructor) in between.
#include <algorithm>
#include <array>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <libdeflate.h>
#include <png.h>

#include "byte_order.hpp"
#include "decode_detail.hpp"

namespace pixflow::tasks::detail {

namespace {

enum class Failure { none, truncated, corrupt, out_of_memory };

constexpr std::array<std::uint8_t, 8> png_signature{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

/// The IDAT stream of a well-formed PNG, inflated, and where it sat in the file.
struct InflatedIdat {
  std::size_t first = 0;           ///< offset of the first IDAT chunk
  std::size_t after = 0;           ///< offset of the chunk after the last IDAT
  std::vector<std::uint8_t> raw;   ///< the filtered scanlines (every Adam7 pass), as libpng expects them
};

/// Bytes of filtered scanlines (a filter byte per row) IHDR implies, or nothing for an invalid IHDR.
std::optional<std::size_t> filtered_size(std::uint32_t width, std::uint32_t height, int depth, int colour, int interlace) {
  int samples = 0;
  switch (colour) {
    case 0: samples = 1; break;  // grey
    case 2: samples = 3; break;  // RGB
    case 3: samples = 1; break;  // palette
    case 4: samples = 2; break;  // grey + alpha
    case 6: samples = 4; break;  // RGBA
    default: return std::nullopt;
  }
  if (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16) return std::nullopt;
  if (width == 0 || height == 0 || width > PNG_UINT_31_MAX || height > PNG_UINT_31_MAX || interlace > 1) return std::nullopt;
  const std::size_t bits = static_cast<std::size_t>(samples) * static_cast<std::size_t>(depth);
  const auto pass = [&](std::size_t w, std::size_t h) {
    return w == 0 || h == 0 ? std::size_t{0} : mul_sat(h, add_sat(1, add_sat(mul_sat(w, bits), 7) / 8));
  };
  if (interlace == 0) return pass(width, height);
  // Adam7: pass p takes the pixels at (x0 + k*dx, y0 + j*dy).
  constexpr std::array<std::array<std::size_t, 4>, 7> passes{{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                                              {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}};
  std::size_t total = 0;
  for (const auto& [x0, y0, dx, dy] : passes) {
    const std::size_t w = width > x0 ? (width - x0 + dx - 1) / dx : 0;
    const std::size_t h = height > y0 ? (height - y0 + dy - 1) / dy : 0;
    total = add_sat(total, pass(w, h));
  }
  return total;
}

/// Inflates the IDAT stream with libdeflate when the file is well formed and the buffers fit `budget`;
/// nothing otherwise (libpng then reads the file itself and says what is wrong).
std::optional<InflatedIdat> inflate_idat(Bytes bytes, std::size_t budget) {
  if (bytes.size() < 8 + 25 || !std::equal(png_signature.begin(), png_signature.end(), bytes.begin())) return std::nullopt;
  const std::uint8_t* ihdr = bytes.data() + 8;
  if (be32(ihdr) != 13 || std::memcmp(ihdr + 4, "IHDR", 4) != 0) return std::nullopt;
  const auto raw_size = filtered_size(be32(ihdr + 8), be32(ihdr + 12), ihdr[16], ihdr[17], ihdr[20]);
  if (!raw_size) return std::nullopt;

  InflatedIdat out;
  std::vector<std::pair<std::size_t, std::size_t>> idat;  // data offset, length
  std::size_t compressed = 0;
  for (std::size_t pos = 8; pos + 12 <= bytes.size();) {
    const std::size_t length = be32(bytes.data() + pos);
    if (length > bytes.size() - pos - 12) return std::nullopt;  // cut short: libpng says so
    const bool is_idat = std::memcmp(bytes.data() + pos + 4, "IDAT", 4) == 0;
    if (is_idat) {
      if (idat.empty()) out.first = pos;
      else if (out.after != pos) return std::nullopt;  // IDATs apart: libpng's business
      // The chunk's CRC, over its type and data: libpng would check it; the copy it reads has its own.
      const std::uint32_t crc = libdeflate_crc32(0, bytes.data() + pos + 4, length + 4);
      if (crc != be32(bytes.data() + pos + 8 + length)) return std::nullopt;
      idat.emplace_back(pos + 8, length);
      compressed += length;
      out.after = pos + 12 + length;
    } else if (!idat.empty()) {
      break;
    }
    pos += 12 + length;
  }
  if (idat.empty()) return std::nullopt;
  const std::size_t ihdr_width = be32(ihdr + 8);
  // Buffers: the joined compressed stream and the inflated one, beside what libpng's decode needs.
  const std::size_t needed = add_sat(add_sat(*raw_size, compressed),
                                     png_memory_needed(Size{static_cast<int>(ihdr_width), static_cast<int>(be32(ihdr + 12))},
                                                       ihdr[16], ihdr[17], true, 1));
  if (needed > budget) return std::nullopt;

  thread_local const std::unique_ptr<libdeflate_decompressor, decltype(&libdeflate_free_decompressor)> inflater(
      libdeflate_alloc_decompressor(), &libdeflate_free_decompressor);
  if (inflater == nullptr) return std::nullopt;
  std::vector<std::uint8_t> joined;
  const std::uint8_t* stream = bytes.data() + idat.front().first;
  if (idat.size() > 1) {
    joined.reserve(compressed);
    for (const auto& [offset, length] : idat) joined.insert(joined.end(), bytes.data() + offset, bytes.data() + offset + length);
    stream = joined.data();
  }
  out.raw.resize(*raw_size);
  std::size_t got = 0;
  if (libdeflate_zlib_decompress(inflater.get(), stream, compressed, out.raw.data(), out.raw.size(), &got) !=
          LIBDEFLATE_SUCCESS ||
      got != out.raw.size())
    return std::nullopt;  // bad data, too much or too little: libpng reads it and reports it
  return out;
}

/// What libpng reads: the file as it is, or, with an inflated IDAT stream, the file with its IDAT
/// chunks replaced by chunks of stored deflate blocks holding the same bytes (made one at a time).
struct Reader {
  Bytes bytes;
  std::size_t pos = 0;
  Failure failure = Failure::none;
  bool ran_dry = false;     // the read callback was asked for bytes past the end
  bool malloc_failed = false;
  std::optional<InflatedIdat> inflated;
  std::size_t raw_pos = 0;           // how much of inflated->raw the chunks made so far hold
  std::vector<std::uint8_t> chunk;   // the stored chunk being read, and how much of it was
  std::size_t chunk_pos = 0;

  /// Copies `length` bytes of the stream at `out`; false when it ends first.
  bool read(std::uint8_t* out, std::size_t length) {
    while (length > 0) {
      std::size_t n = 0;
      if (inflated && pos == inflated->first) {  // inside the stored chunks
        if (chunk_pos == chunk.size() && !next_chunk()) {
          pos = inflated->after;  // every chunk read: on with the file after the IDATs
          continue;
        }
        n = std::min(length, chunk.size() - chunk_pos);
        std::memcpy(out, chunk.data() + chunk_pos, n);
        chunk_pos += n;
      } else {
        const std::size_t end = inflated && pos < inflated->first ? inflated->first : bytes.size();
        n = std::min(length, end - pos);
        if (n == 0) return false;
        std::memcpy(out, bytes.data() + pos, n);
        pos += n;
      }
      out += n;
      length -= n;
    }
    return true;
  }

 private:
  static constexpr std::size_t kStoredBlock = 65535;  // a stored deflate block's largest length

  /// Makes the next IDAT chunk: one stored block (the zlib header before the first, the Adler-32
  /// after the last). False when the whole stream was made.
  bool next_chunk() {
    const std::vector<std::uint8_t>& raw = inflated->raw;
    if (raw_pos == raw.size() && !chunk.empty()) return false;
    const bool first = raw_pos == 0;
    const std::size_t n = std::min(kStoredBlock, raw.size() - raw_pos);
    const bool last = raw_pos + n == raw.size();
    const std::size_t payload = (first ? 2 : 0) + 5 + n + (last ? 4 : 0);
    chunk.resize(8 + payload + 4);
    std::uint8_t* p = chunk.data();
    put_be32(p, static_cast<std::uint32_t>(payload));
    std::memcpy(p + 4, "IDAT", 4);
    p += 8;
    if (first) {
      *p++ = 0x78;  // deflate, 32 KiB window
      *p++ = 0x01;  // no dictionary; (0x78 << 8 | 0x01) % 31 == 0
    }
    const auto len = static_cast<std::uint16_t>(n);
    *p++ = last ? 1 : 0;  // BFINAL, BTYPE 00 (stored)
    *p++ = static_cast<std::uint8_t>(len & 0xFF);
    *p++ = static_cast<std::uint8_t>(len >> 8);
    *p++ = static_cast<std::uint8_t>(~len & 0xFF);
    *p++ = static_cast<std::uint8_t>((~len >> 8) & 0xFF);
    std::memcpy(p, raw.data() + raw_pos, n);
    p += n;
    raw_pos += n;
    if (last) {
      put_be32(p, libdeflate_adler32(1, raw.data(), raw.size()));
      p += 4;
    }
    put_be32(p, libdeflate_crc32(0, chunk.data() + 4, payload + 4));
    chunk_pos = 0;
    return true;
  }
};

Reader& reader_of(png_structp png) { return *static_cast<Reader*>(png_get_error_ptr(png)); }

[[noreturn]] void on_error(png_structp png, png_const_charp message) {
  Reader& r = reader_of(png);
  if (r.malloc_failed) {
    r.failure = Failure::out_of_memory;
  } else if (r.ran_dry || std::strcmp(message, "Not enough image data") == 0) {
    // The file ends inside a chunk, before IEND, or the IDAT stream stops before the last row.
    r.failure = Failure::truncated;
  } else {
    r.failure = Failure::corrupt;  // CRC errors in critical chunks, bad zlib data, invalid IHDR, ...
  }
  png_longjmp(png, 1);
}

/// Warnings (and "benign errors", which libpng 1.6 downgrades to warnings when reading) leave the
/// image intact: an incorrect sRGB/iCCP profile, a bad ancillary chunk (CRC: discarded), extra data
/// after the image. Nothing is printed.
void on_warning(png_structp /*png*/, png_const_charp /*message*/) {}

void read_bytes(png_structp png, png_bytep out, std::size_t length) {
  auto& r = *static_cast<Reader*>(png_get_io_ptr(png));
  if (!r.read(out, length)) {
    r.ran_dry = true;
    png_error(png, "truncated");
  }
}

png_voidp allocate(png_structp png, png_alloc_size_t size) {
  void* memory = std::malloc(size);  // NOLINT(cppcoreguidelines-no-malloc): libpng frees with free_memory
  if (memory == nullptr) static_cast<Reader*>(png_get_mem_ptr(png))->malloc_failed = true;
  return memory;
}

void free_memory(png_structp /*png*/, png_voidp memory) { std::free(memory); }  // NOLINT(cppcoreguidelines-no-malloc)

struct Decompressor {
  Reader reader;
  png_structp png = nullptr;
  png_infop info = nullptr;
  Decompressor(Bytes bytes, std::optional<InflatedIdat> inflated) {
    reader.bytes = bytes;
    reader.inflated = std::move(inflated);
  }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
  ~Decompressor() {
    if (png != nullptr) png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
};

template <class Step>
bool guarded(Decompressor& d, Step&& step) {
  if (setjmp(png_jmpbuf(d.png)) != 0) return false;  // NOLINT(cert-err52-cpp): libpng's error protocol
  step();
  return true;
}

Error reason(Failure failure) {
  switch (failure) {
    case Failure::truncated: return Error{"truncated png"};
    case Failure::out_of_memory: return out_of_memory();
    case Failure::none:
    case Failure::corrupt: break;
  }
  return Error{"corrupt png"};
}

/// Channels as OpenCV 4.6's PngDecoder::readHeader sets them for IMREAD_UNCHANGED, except that a grey
/// image with tRNS gets its alpha too (OpenCV dropped it): RGB/palette 3, or 4 with tRNS; grey+alpha
/// and RGBA 4; grey 1.
int channels_for(int color_type, bool has_trns) {
  switch (color_type) {
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_PALETTE: return has_trns ? 4 : 3;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return has_trns ? 4 : 1;
  }
}

}  // namespace

std::size_t png_memory_needed(Size stored, int bit_depth, int color_type, bool has_trns, int orientation) {
  const int channels = channels_for(color_type, has_trns);
  const std::size_t pixels = mul_sat(static_cast<std::size_t>(stored.width), static_cast<std::size_t>(stored.height));
  const std::size_t sample = bit_depth == 16 ? 2 : 1;
  const std::size_t rows = mul_sat(pixels, mul_sat(static_cast<std::size_t>(channels), sample));
  const std::size_t final_bytes = mul_sat(pixels, channels == 1 ? 3 : static_cast<std::size_t>(channels));
  const bool converted = bit_depth == 16 || channels == 1;  // normalize() makes a new 8-bit BGR(A) matrix
  std::size_t needed = add_sat(rows, converted ? final_bytes : 0);
  needed = add_sat(needed, orientation_copy(final_bytes, orientation));
  // Row pointers, and libpng's own two rows (current and previous, for the filters) plus zlib's window.
  needed = add_sat(needed, mul_sat(static_cast<std::size_t>(stored.height), sizeof(png_bytep)));
  const std::size_t row_bytes = mul_sat(static_cast<std::size_t>(stored.width), mul_sat(8, sample));
  return add_sat(needed, add_sat(mul_sat(row_bytes, 2), std::size_t{64} << 10));
}

Expected<cv::Mat> decode_png(Bytes bytes, int orientation, std::size_t budget, std::vector<std::uint8_t>* icc_profile) {
  Decompressor d(bytes, inflate_idat(bytes, budget));
  d.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &d.reader, on_error, on_warning, &d.reader, allocate,
                                   free_memory);
  if (d.png == nullptr) return out_of_memory();

  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int bit_depth = 0;
  int color_type = 0;
  bool has_trns = false;
  png_bytep icc = nullptr;  // owned by libpng's info struct
  png_uint_32 icc_size = 0;
  if (!guarded(d, [&] {
        d.info = png_create_info_struct(d.png);
        if (d.info == nullptr) png_error(d.png, "Out of memory");
        png_set_read_fn(d.png, &d.reader, read_bytes);
        png_read_info(d.png, d.info);  // IHDR and the chunks before the first IDAT
        (void)png_get_IHDR(d.png, d.info, &width, &height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
        has_trns = png_get_valid(d.png, d.info, PNG_INFO_tRNS) != 0;
        // iCCP: libpng has checked it (a profile of the wrong colour space for the image, or a bad
        // header, is dropped with a warning) and inflated it, under its chunk size limit (8 MB).
        png_charp name = nullptr;
        int compression = 0;
        if (png_get_iCCP(d.png, d.info, &name, &compression, &icc, &icc_size) == 0) icc = nullptr;
      }))
    return reason(d.reader.failure);
  if (icc_profile != nullptr && icc != nullptr) icc_profile->assign(icc, icc + icc_size);

  const Size stored{static_cast<int>(width), static_cast<int>(height)};  // libpng refuses > 2^31-1
  if (png_memory_needed(stored, bit_depth, color_type, has_trns, orientation) > budget)
    return too_large(oriented(stored, orientation));
  const int channels = channels_for(color_type, has_trns);

  if (!guarded(d, [&] {
        // OpenCV 4.6's transforms (grfmt_png.cpp, readData) for an IMREAD_UNCHANGED decode.
        if (bit_depth == 16) png_set_swap(d.png);  // host order (little-endian) for a CV_16U matrix
        if (channels < 4) png_set_strip_alpha(d.png);
        else png_set_tRNS_to_alpha(d.png);
        if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(d.png);
        if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(d.png);
        if ((color_type & PNG_COLOR_MASK_COLOR) != 0) png_set_bgr(d.png);
        else if (channels == 4) png_set_gray_to_rgb(d.png);
        (void)png_set_interlace_handling(d.png);  // Adam7: png_read_image makes the passes
        png_read_update_info(d.png, d.info);
      }))
    return reason(d.reader.failure);

  cv::Mat image(stored.height, stored.width, CV_MAKETYPE(bit_depth == 16 ? CV_16U : CV_8U, channels));
  if (png_get_rowbytes(d.png, d.info) != static_cast<std::size_t>(image.cols) * image.elemSize()) return Error{"corrupt png"};
  std::vector<png_bytep> rows(static_cast<std::size_t>(image.rows));
  for (int y = 0; y < image.rows; ++y) rows[static_cast<std::size_t>(y)] = image.ptr<png_byte>(y);
  if (!guarded(d, [&] {
        png_read_image(d.png, rows.data());
        png_read_end(d.png, nullptr);  // on to IEND: a file cut after the last IDAT is truncated too
      }))
    return reason(d.reader.failure);
  return image;
}

}  // namespace pixflow::tasks::detail
