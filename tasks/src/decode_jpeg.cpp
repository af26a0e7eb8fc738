// JPEG through libjpeg-turbo's libjpeg API: shrink-on-load, a memory budget checked against what the
// decoder will really allocate (before it allocates it), and libjpeg's warnings treated as errors.
//
// Why not cv::imdecode: OpenCV 4.6 lets libjpeg print its warnings to stderr and carries on (a JPEG cut in
// the middle but ending with EOI came out `ok` with a grey lower half), reports out-of-memory as a
// failed decode, and starts the decompressor without looking at what it will allocate: a progressive
// file keeps a whole-image coefficient buffer whatever the output scale, 12.6 GB for a 543-byte file
// claiming 65000x65000.
//
// setjmp/longjmp: libjpeg reports errors through error_exit, which must not return; we longjmp back to
// guarded() below. Only libjpeg's C frames and guarded()'s lambda (which holds no C++ object with a
// destructor) lie between the two, so no destructor is skipped.
#include <algorithm>
#include <climits>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstdlib>
#include <memory>
#include <vector>

// jpeglib.h first: it defines JPEG_LIB_VERSION, which jerror.h tests to number its messages (included
// first, JWRN_BOGUS_ICC was 125 here and 127 in the library).
#include <jpeglib.h>
#include <jerror.h>

#include "colour_detail.hpp"
#include "decode_detail.hpp"

namespace pixflow::tasks::detail {

namespace {

enum class Failure { none, truncated, corrupt, too_large, out_of_memory };

struct ErrorManager {
  jpeg_error_mgr pub;  // first: libjpeg hands back a jpeg_error_mgr*
  std::jmp_buf jump;
  Failure failure = Failure::none;
};

ErrorManager& manager_of(j_common_ptr cinfo) {
  return *reinterpret_cast<ErrorManager*>(cinfo->err);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

[[noreturn]] void on_error(j_common_ptr cinfo) {
  ErrorManager& err = manager_of(cinfo);
  switch (err.pub.msg_code) {
    case JERR_OUT_OF_MEMORY: err.failure = Failure::out_of_memory; break;
    // jmemnobs.c (libjpeg-turbo's memory back end) refuses virtual arrays above max_memory_to_use
    // with "backing store not supported": only our budget guard makes that happen.
    case JERR_NO_BACKING_STORE: err.failure = Failure::too_large; break;
    case JERR_INPUT_EOF: err.failure = Failure::truncated; break;
    default: err.failure = Failure::corrupt; break;
  }
  std::longjmp(err.jump, 1);
}

/// Warnings (msg_level -1) stop the decode: libjpeg would go on and fill what it could not decode with
/// grey. Trace messages (level >= 0) are ignored. Nothing is ever printed.
void on_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;
  ErrorManager& err = manager_of(cinfo);
  ++err.pub.num_warnings;
  switch (err.pub.msg_code) {
    // Benign: every pixel is still decoded.
    // - JWRN_EXTRANEOUS_DATA: junk bytes before a marker, after the entropy-coded data of a scan was
    //   read to its end (cameras and editors pad before EOI: "N extraneous bytes before marker 0xd9").
    //   When data is really missing, libjpeg hits the marker first and says JWRN_HIT_MARKER.
    // - JWRN_JFIF_MAJOR: an unknown JFIF version number in APP0; JWRN_ADOBE_XFORM: an unknown Adobe
    //   transform code (libjpeg guesses the colour space as it always did); JWRN_BOGUS_ICC: a bad ICC
    //   marker, found by jpeg_read_icc_profile, which then returns no profile (the image is sRGB).
    // None of the sample photos in tests/fixtures/photos raises any warning at all (the [decode] test
    // "decode_image decodes JPEGs exactly as OpenCV did" checks that they all decode).
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
      return;
    // Data missing: the source ran dry ("Premature end of JPEG file", then a fake EOI) or the
    // entropy-coded data stopped at a marker before the scan was complete (a file cut in the middle
    // with an EOI appended).
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
      err.failure = Failure::truncated;
      break;
    // Bad Huffman/arithmetic codes, a wrong restart marker, an invalid scan or progression: corrupt.
    default:
      err.failure = Failure::corrupt;
      break;
  }
  std::longjmp(err.jump, 1);
}

void no_output(j_common_ptr /*cinfo*/) {}

/// libjpeg-turbo's TurboJPEG API refuses progressive files with more scans than this (its
/// TJPARAM_SCANLIMIT advice for untrusted input): each scan walks the whole coefficient buffer, so a
/// small file of thousands of tiny scans costs minutes of CPU. Real encoders write about 10.
constexpr int max_progressive_scans = 500;

void on_progress(j_common_ptr common) {
  auto* cinfo = reinterpret_cast<j_decompress_ptr>(common);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  if (cinfo->is_decompressor && cinfo->progressive_mode && cinfo->input_scan_number > max_progressive_scans) {
    manager_of(common).failure = Failure::corrupt;
    std::longjmp(manager_of(common).jump, 1);
  }
}

struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  jpeg_progress_mgr progress{};
  Decompressor() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    err.pub.output_message = no_output;
    progress.progress_monitor = on_progress;
  }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
  // Safe on a zeroed or half-created struct: jpeg_destroy only frees what the memory manager holds.
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
};

/// Runs `step` (libjpeg calls only, no C++ object with a destructor in it); false when libjpeg failed,
/// with the reason in d.err.failure.
template <class Step>
bool guarded(Decompressor& d, Step&& step) {
  if (setjmp(d.err.jump) != 0) return false;  // NOLINT(cert-err52-cpp): libjpeg's error protocol
  step();
  return true;
}

Error reason(Failure failure, Size displayed) {
  switch (failure) {
    case Failure::truncated: return Error{"truncated jpeg"};
    case Failure::too_large: return too_large(displayed);
    case Failure::out_of_memory: return out_of_memory();
    case Failure::none:
    case Failure::corrupt: break;
  }
  return Error{"corrupt jpeg"};
}

/// The zigzag index (the order coefficients are coded in) of each coefficient in natural order (row by row).
constexpr int zigzag_of_natural[DCTSIZE2] = {
    0,  1,  5,  6,  14, 15, 27, 28, 2,  4,  7,  13, 16, 26, 29, 42, 3,  8,  12, 17, 25, 30, 41, 43, 9,  11, 18, 24, 31, 40, 44, 53,
    10, 19, 23, 32, 39, 45, 52, 54, 20, 22, 33, 38, 46, 51, 55, 60, 21, 34, 37, 47, 50, 56, 59, 61, 35, 36, 48, 49, 57, 58, 62, 63};

/// True once every coefficient the scaled output reads is final: a component whose blocks are scaled to
/// NxN pixels reads the top-left NxN coefficients only (at 1/8 the luma reads its DC alone, 4:2:0 chroma
/// the top-left 2x2), and coef_bits[c][k] is 0 when coefficient k of component c is fully known.
/// Progressive files only (coef_bits exists in buffered-image mode of a progressive file).
bool output_coefficients_final(const jpeg_decompress_struct& c) {
  for (int ci = 0; ci < c.num_components; ++ci) {
    const int n = c.comp_info[ci].DCT_scaled_size;
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x)
        if (c.coef_bits[ci][zigzag_of_natural[y * DCTSIZE + x]] != 0) return false;
  }
  return true;
}

std::size_t round_up(std::size_t value, std::size_t multiple) {
  return multiple == 0 ? value : add_sat(value, multiple - 1) / multiple * multiple;
}

/// What libjpeg will allocate once jpeg_start_decompress runs (header read, output size computed),
/// excluding our output matrix.
std::size_t libjpeg_memory_needed(const jpeg_decompress_struct& c) {
  // A progressive or multi-scan file (a first scan holding fewer components than the frame) is
  // decoded through whole-image coefficient arrays (jdcoefct.c): per component, its blocks rounded up
  // to whole MCUs, 64 JCOEFs each, at full resolution whatever scale_denom is.
  const bool whole_image = c.progressive_mode != 0 || c.comps_in_scan < c.num_components || c.buffered_image != 0;
  std::size_t bytes = 0;
  int max_v = 1;
  for (int ci = 0; ci < c.num_components; ++ci) {
    const jpeg_component_info& comp = c.comp_info[ci];
    max_v = std::max(max_v, comp.v_samp_factor);
    const std::size_t blocks_wide = round_up(comp.width_in_blocks, static_cast<std::size_t>(comp.h_samp_factor));
    const std::size_t blocks_high = round_up(comp.height_in_blocks, static_cast<std::size_t>(comp.v_samp_factor));
    if (whole_image) bytes = add_sat(bytes, mul_sat(mul_sat(blocks_wide, blocks_high), sizeof(JBLOCK)));
    // Row buffers of the main, upsampling and colour stages: at most a few MCU rows of samples per
    // component (3 row groups with context, 8x8 samples a block before scaling), an upper bound.
    bytes = add_sat(bytes, mul_sat(mul_sat(blocks_wide, DCTSIZE2), mul_sat(static_cast<std::size_t>(comp.v_samp_factor), 3)));
  }
  // The colour converter's and our CMYK rows: output width x 4 bytes x a few rows.
  bytes = add_sat(bytes, mul_sat(mul_sat(c.output_width, 4), static_cast<std::size_t>(4 * max_v)));
  return bytes;
}

/// OpenCV 4.6's CMYK -> BGR (imgcodecs utils.cpp, icvCvt_CMYK2BGR_8u_C4C3R), for Adobe's inverted CMYK
/// and YCCK JPEGs as libjpeg hands them out (JCS_CMYK, 255 = no ink): kept so that such files look as
/// they did. R = C * K / 255 (approximately), with inverted samples.
void inverted_cmyk_to_bgr(const JSAMPLE* cmyk, std::uint8_t* bgr, JDIMENSION width) {
  for (JDIMENSION x = 0; x < width; ++x, cmyk += 4, bgr += 3) {
    const int k = cmyk[3];
    bgr[2] = static_cast<std::uint8_t>(k - ((255 - cmyk[0]) * k >> 8));
    bgr[1] = static_cast<std::uint8_t>(k - ((255 - cmyk[1]) * k >> 8));
    bgr[0] = static_cast<std::uint8_t>(k - ((255 - cmyk[2]) * k >> 8));
  }
}

/// Plain CMYK (0 = no ink, as libjpeg writes JCS_CMYK without Adobe's marker) -> BGR, the naive way:
/// R = (255 - C)(255 - K) / 255, rounded.
void plain_cmyk_to_bgr(const JSAMPLE* cmyk, std::uint8_t* bgr, JDIMENSION width) {
  for (JDIMENSION x = 0; x < width; ++x, cmyk += 4, bgr += 3) {
    const int white = 255 - cmyk[3];
    bgr[2] = static_cast<std::uint8_t>(((255 - cmyk[0]) * white + 127) / 255);
    bgr[1] = static_cast<std::uint8_t>(((255 - cmyk[1]) * white + 127) / 255);
    bgr[0] = static_cast<std::uint8_t>(((255 - cmyk[2]) * white + 127) / 255);
  }
}

/// Bytes of the APP2 markers libjpeg saved (the ICC profile's chunks): the assembled profile and our
/// copy of it take as much again each.
std::size_t saved_icc_bytes(const jpeg_decompress_struct& c) {
  std::size_t bytes = 0;
  for (jpeg_saved_marker_ptr m = c.marker_list; m != nullptr; m = m->next)
    if (m->marker == JPEG_APP0 + 2) bytes = add_sat(bytes, m->data_length);
  return bytes;
}

}  // namespace

Expected<JpegPixels> decode_jpeg(Bytes bytes, int orientation, Size largest_box, std::size_t budget,
                                 ThumbnailMode mode) {
  Decompressor d;
  jpeg_decompress_struct& c = d.cinfo;
  const Error corrupt{"corrupt jpeg"};

  if (!guarded(d, [&] {
        jpeg_create_decompress(&c);
        c.progress = &d.progress;
        jpeg_mem_src(&c, bytes.data(), static_cast<unsigned long>(bytes.size()));
        jpeg_save_markers(&c, JPEG_APP0 + 2, 0xFFFF);  // ICC_PROFILE chunks, for jpeg_read_icc_profile
        (void)jpeg_read_header(&c, TRUE);  // TRUE: tables-only streams are an error (JERR_NO_IMAGE)
      }))
    return reason(d.err.failure, Size{});

  JpegPixels out;
  out.stored = Size{static_cast<int>(c.image_width), static_cast<int>(c.image_height)};
  const Size displayed = oriented(out.stored, orientation);
  out.reduce_factor = reduce_factor_for(displayed, largest_box, mode);
  const bool cmyk = c.num_components == 4;
  // Photoshop writes CMYK and YCCK JPEGs with inverted samples and Adobe's APP14 marker; libjpeg writes
  // that marker for every CMYK file too, so a plain CMYK file is one without it (libvips' rule).
  const bool inverted = c.saw_Adobe_marker != 0;
  if (!guarded(d, [&] {
        c.scale_num = 1;
        c.scale_denom = static_cast<unsigned int>(out.reduce_factor);
        // Grey and YCbCr come out as BGR directly; CMYK/YCCK as CMYK, converted below.
        // dct_method (JDCT_ISLOW) and do_fancy_upsampling (TRUE) stay at libjpeg's defaults, as in
        // OpenCV 4.6, so the pixels are the same as cv::imdecode's.
        c.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_BGR;
        jpeg_calc_output_dimensions(&c);
      }))
    return reason(d.err.failure, displayed);

  const std::size_t output = mul_sat(mul_sat(c.output_width, c.output_height), 3);
  const std::size_t ours = add_sat(output, orientation_copy(output, orientation));
  const std::size_t needed = add_sat(add_sat(ours, libjpeg_memory_needed(c)), mul_sat(saved_icc_bytes(c), 2));
  if (needed > budget) return too_large(displayed);
  // Second guard: libjpeg-turbo's jmemnobs.c honours max_memory_to_use for its virtual (coefficient)
  // arrays, refusing with JERR_NO_BACKING_STORE anything above it.
  c.mem->max_memory_to_use = static_cast<long>(std::min<std::size_t>(budget - ours, LONG_MAX));

  // The ICC profile, assembled from its chunks by libjpeg (malloc'ed; a malformed set of chunks is a
  // JWRN_BOGUS_ICC warning, ignored: no profile).
  JOCTET* icc = nullptr;
  unsigned int icc_size = 0;
  if (!guarded(d, [&] {
        if (jpeg_read_icc_profile(&c, &icc, &icc_size) == FALSE) icc = nullptr;
      }))
    return reason(d.err.failure, displayed);
  if (icc != nullptr) {
    const std::unique_ptr<JOCTET, decltype(&std::free)> owned(icc, &std::free);
    out.icc_profile.assign(icc, icc + icc_size);
  }
  // CMYK through the file's own profile when LittleCMS can use it; the pixels then are sRGB.
  std::shared_ptr<const SrgbTransform> cmyk_transform;
  if (cmyk) {
    if (!out.icc_profile.empty())
      cmyk_transform = srgb_transform(out.icc_profile, inverted ? PixelLayout::cmyk_inverted : PixelLayout::cmyk);
    out.icc_profile.clear();
  }
  const SrgbTransform* to_srgb = cmyk_transform.get();

  out.pixels.create(static_cast<int>(c.output_height), static_cast<int>(c.output_width), CV_8UC3);
  std::vector<JSAMPLE> cmyk_rows;
  if (cmyk) cmyk_rows.resize(std::size_t{c.output_width} * 4 * 4);  // rec_outbuf_height is at most 4
  cv::Mat& pixels = out.pixels;
  // A progressive file is read scan by scan (buffered-image mode) only until the coefficients the scaled
  // output needs are final: at 1/8 that skips the last luma refinement, the largest scan (docs/design.md
  // §19: 1.66x faster on the bench's progressive photos, every output byte identical). Smoothing off:
  // it only guesses coefficients that are not final, and none of those is read.
  const bool scan_by_scan = c.progressive_mode != 0;
  bool stopped_early = false;
  if (!guarded(d, [&] {
        if (scan_by_scan) {
          c.buffered_image = TRUE;
          c.do_block_smoothing = FALSE;
          (void)jpeg_start_decompress(&c);
          for (;;) {
            const int got = jpeg_consume_input(&c);
            if (got == JPEG_REACHED_EOI) break;
            if (got == JPEG_SUSPENDED) {  // cannot happen with a memory source; never loop on it
              d.err.failure = Failure::corrupt;
              std::longjmp(d.err.jump, 1);
            }
            if (got == JPEG_SCAN_COMPLETED && output_coefficients_final(c)) {
              stopped_early = true;
              break;
            }
          }
          (void)jpeg_start_output(&c, c.input_scan_number);
        } else {
          (void)jpeg_start_decompress(&c);
        }
        const JDIMENSION batch = std::min<JDIMENSION>(static_cast<JDIMENSION>(std::max(c.rec_outbuf_height, 1)), 4);
        JSAMPROW rows[4];
        while (c.output_scanline < c.output_height) {
          const JDIMENSION first = c.output_scanline;
          const JDIMENSION count = std::min(batch, c.output_height - first);
          for (JDIMENSION k = 0; k < count; ++k)
            rows[k] = cmyk ? cmyk_rows.data() + std::size_t{k} * c.output_width * 4 : pixels.ptr<JSAMPLE>(static_cast<int>(first + k));
          const JDIMENSION read = jpeg_read_scanlines(&c, rows, count);
          if (read == 0) {  // cannot happen with a memory source; never loop on it
            d.err.failure = Failure::corrupt;
            std::longjmp(d.err.jump, 1);
          }
          if (cmyk)
            for (JDIMENSION k = 0; k < read; ++k) {
              std::uint8_t* bgr = pixels.ptr<std::uint8_t>(static_cast<int>(first + k));
              if (to_srgb != nullptr) to_srgb->apply(rows[k], bgr, c.output_width);
              else if (inverted) inverted_cmyk_to_bgr(rows[k], bgr, c.output_width);
              else plain_cmyk_to_bgr(rows[k], bgr, c.output_width);
            }
        }
        if (scan_by_scan) (void)jpeg_finish_output(&c);
        // Reads on to EOI: a missing end is a warning, so a failure. A file read only as far as its
        // output needed is left there (the Decompressor's destructor frees it).
        if (!stopped_early) (void)jpeg_finish_decompress(&c);
      }))
    return reason(d.err.failure, displayed);
  if (pixels.empty()) return corrupt;
  return out;
}

}  // namespace pixflow::tasks::detail
