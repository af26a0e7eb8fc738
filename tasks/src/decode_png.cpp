// PNG through libpng: IHDR budgeted before any row is allocated, libpng's warnings kept quiet (an
// "iCCP: known incorrect sRGB profile" is not a failure), its errors sorted into truncated / corrupt /
// out of memory, and the same transforms as OpenCV 4.6's PNG decoder under IMREAD_UNCHANGED, so that
// the pixels are those cv::imdecode gave. The iCCP profile is handed out for the sRGB conversion
// (colour.hpp), which happens after the resize: a 16-bit image is reduced to 8 bits first, as before.
//
// setjmp/longjmp: libpng's error function must not return; we longjmp back to guarded() below, with
// only libpng's C frames and guarded()'s lambda (no C++ object with a destructor) in between.
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <png.h>

#include "decode_detail.hpp"

namespace pixflow::tasks::detail {

namespace {

enum class Failure { none, truncated, corrupt, out_of_memory };

struct Reader {
  Bytes bytes;
  std::size_t pos = 0;
  Failure failure = Failure::none;
  bool ran_dry = false;     // the read callback was asked for bytes past the end
  bool malloc_failed = false;
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
  if (length > r.bytes.size() - r.pos) {
    r.ran_dry = true;
    png_error(png, "truncated");
  }
  std::memcpy(out, r.bytes.data() + r.pos, length);
  r.pos += length;
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
  explicit Decompressor(Bytes bytes) : reader{bytes} {}
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
  Decompressor d(bytes);
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
