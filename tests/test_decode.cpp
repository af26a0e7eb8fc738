// decode.hpp: format sniffing, header sizes, shrink-on-load, orientation, alpha, and every failure reason,
// on the real sample photos and on bytes derived from them; the memory budget against bombs built here
// (a few hundred bytes each), pixel-exactness against OpenCV's decoders, and silence on stderr.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

// libjpeg and libpng write the variants the sample photos do not cover (CMYK, interlaced, palette).
// pixflow::tasks links both; their headers are system headers.
#include <jpeglib.h>
#include <png.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pixflow/tasks/decode.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::photo;
using pixflow::test::read_bytes;

namespace {

using Bytes = std::vector<std::uint8_t>;

struct Sample {
  const char* name;
  ImageFormat format;
  Size displayed;
  int channels;
};

const std::array<Sample, 9> samples{{
    {"aqua.jpg", ImageFormat::jpeg, {1024, 640}, 3},
    {"dune.jpg", ImageFormat::jpeg, {800, 1200}, 3},
    {"fresh-flower.jpg", ImageFormat::jpeg, {1064, 800}, 3},
    {"two-wings.jpg", ImageFormat::jpeg, {1600, 1000}, 3},
    {"storm-rotated.jpg", ImageFormat::jpeg, {600, 900}, 3},
    {"garden.png", ImageFormat::png, {640, 400}, 3},
    {"ladybird-alpha.png", ImageFormat::png, {500, 500}, 4},
    {"wood.webp", ImageFormat::webp, {623, 467}, 3},
    {"tiny.jpg", ImageFormat::jpeg, {96, 60}, 3},
}};

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

// Not inlined: GCC 12 reports false -Wstringop-overflow/-Warray-bounds on vector growth when it inlines
// these into the chunk builders below (a known GCC 12 false positive).
[[gnu::noinline]] void put_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}
void put_le32(Bytes& out, std::uint32_t v) {
  for (int shift = 0; shift <= 24; shift += 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}
void put_le24(Bytes& out, std::uint32_t v) {
  for (int shift = 0; shift <= 16; shift += 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/// A big-endian TIFF block with one IFD entry: Orientation (0x0112, SHORT) = `orientation`.
Bytes exif_block(int orientation) {
  Bytes tiff = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                0, static_cast<std::uint8_t>(orientation), 0, 0, 0, 0, 0, 0};
  return tiff;
}

Bytes png_with_chunk(const Bytes& png, const Bytes& chunk);

/// `png` with an eXIf chunk (valid CRC) inserted right after IHDR.
[[gnu::noinline]] Bytes png_with_orientation(const Bytes& png, int orientation) {
  const Bytes exif = exif_block(orientation);
  Bytes chunk;
  put_be32(chunk, static_cast<std::uint32_t>(exif.size()));
  chunk.insert(chunk.end(), {'e', 'X', 'I', 'f'});
  chunk.insert(chunk.end(), exif.begin(), exif.end());
  put_be32(chunk, crc32(chunk.data() + 4, chunk.size() - 4));
  return png_with_chunk(png, chunk);
}

/// A simple lossy WebP ("RIFF....WEBPVP8 ...") rewritten as an extended one (VP8X) with an EXIF chunk.
Bytes webp_with_orientation(const Bytes& simple, Size size, int orientation, std::uint8_t extra_flags = 0) {
  REQUIRE(std::string(simple.begin() + 12, simple.begin() + 16) == "VP8 ");
  const Bytes exif = exif_block(orientation);
  Bytes body = {'W', 'E', 'B', 'P', 'V', 'P', '8', 'X'};
  put_le32(body, 10);
  body.push_back(static_cast<std::uint8_t>(0x08 | extra_flags));  // EXIF present
  body.insert(body.end(), {0, 0, 0});
  put_le24(body, static_cast<std::uint32_t>(size.width - 1));
  put_le24(body, static_cast<std::uint32_t>(size.height - 1));
  body.insert(body.end(), simple.begin() + 12, simple.end());  // the VP8 chunk as it was
  body.insert(body.end(), {'E', 'X', 'I', 'F'});
  put_le32(body, static_cast<std::uint32_t>(exif.size()));
  body.insert(body.end(), exif.begin(), exif.end());
  Bytes out = {'R', 'I', 'F', 'F'};
  put_le32(out, static_cast<std::uint32_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes encode(const cv::Mat& image, const char* extension) {
  Bytes out;
  REQUIRE(cv::imencode(extension, image, out));
  return out;
}

/// A simple lossy WebP ("VP8 " chunk); OpenCV writes lossless VP8L without a quality.
Bytes lossy_webp(const cv::Mat& image) {
  Bytes out;
  REQUIRE(cv::imencode(".webp", image, out, std::vector<int>{cv::IMWRITE_WEBP_QUALITY, 90}));
  return out;
}

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0.0;
}

}  // namespace

TEST_CASE("sniff_format tells formats by their magic bytes", "[decode]") {
  for (const auto& sample : samples) {
    INFO(sample.name);
    CHECK(sniff_format(read_bytes(photo(sample.name))) == sample.format);
  }
  CHECK(sniff_format(read_bytes(photo("animation.gif"))) == ImageFormat::gif);
  const cv::Mat small(8, 8, CV_8UC3, cv::Scalar(10, 20, 30));
  CHECK(sniff_format(encode(small, ".bmp")) == ImageFormat::bmp);
  CHECK(sniff_format(encode(small, ".tiff")) == ImageFormat::tiff);
  CHECK(sniff_format(bytes_of("<!DOCTYPE html><html><body>404</body></html>")) == ImageFormat::unknown);
  CHECK(sniff_format(bytes_of("BM is a band, not a bitmap")) == ImageFormat::unknown);
  CHECK(sniff_format(Bytes{0xFF, 0xD8}) == ImageFormat::unknown);
  CHECK(sniff_format(Bytes{}) == ImageFormat::unknown);
}

TEST_CASE("read_image_size reads displayed sizes from headers", "[decode]") {
  for (const auto& sample : samples) {
    INFO(sample.name);
    const auto size = read_image_size(read_bytes(photo(sample.name)));
    REQUIRE(size.has_value());
    CHECK(*size == sample.displayed);
  }
  CHECK_FALSE(read_image_size(read_bytes(photo("animation.gif"))).has_value());
  CHECK_FALSE(read_image_size(bytes_of("<html></html>")).has_value());
  CHECK_FALSE(read_image_size(Bytes{0xFF, 0xD8, 0xFF, 0xE0, 0x00}).has_value());

  SECTION("lossless WebP (VP8L) and extended WebP (VP8X)") {
    const cv::Mat image(37, 53, CV_8UC3, cv::Scalar(1, 2, 3));
    std::vector<int> lossless = {cv::IMWRITE_WEBP_QUALITY, 101};
    Bytes vp8l;
    REQUIRE(cv::imencode(".webp", image, vp8l, lossless));
    REQUIRE(std::string(vp8l.begin() + 12, vp8l.begin() + 16) == "VP8L");
    CHECK(read_image_size(vp8l) == Size{53, 37});
    const Bytes vp8 = lossy_webp(image);
    CHECK(read_image_size(webp_with_orientation(vp8, Size{53, 37}, 1)) == Size{53, 37});
    CHECK(read_image_size(webp_with_orientation(vp8, Size{53, 37}, 8)) == Size{37, 53});
  }
}

TEST_CASE("decode_image decodes every sample photo with its format and size", "[decode]") {
  for (const auto& sample : samples) {
    INFO(sample.name);
    const auto decoded = decode_image(read_bytes(photo(sample.name)), Size{4096, 4096});
    REQUIRE(decoded.has_value());
    CHECK(decoded->source_format == sample.format);
    CHECK(decoded->source_size == sample.displayed);
    CHECK(decoded->reduce_factor == 1);
    CHECK(decoded->pixels.cols == sample.displayed.width);
    CHECK(decoded->pixels.rows == sample.displayed.height);
    CHECK(decoded->pixels.depth() == CV_8U);
    CHECK(decoded->pixels.channels() == sample.channels);
  }
}

TEST_CASE("decode_image stands EXIF-rotated photos upright", "[decode]") {
  const auto storm = decode_image(read_bytes(photo("storm-rotated.jpg")), Size{128, 128});
  REQUIRE(storm.has_value());
  CHECK(storm->source_size == Size{600, 900});
  CHECK(storm->pixels.rows > storm->pixels.cols);
  // Same orientation as OpenCV's own full decode, scaled by the reduce factor.
  CHECK(storm->pixels.cols == 600 / storm->reduce_factor);
  CHECK(storm->pixels.rows == 900 / storm->reduce_factor);
}

TEST_CASE("decode_image applies PNG eXIf orientation exactly as OpenCV does, also keeping alpha", "[decode]") {
  const auto garden = decode_image(read_bytes(photo("garden.png")), Size{4096, 4096});
  REQUIRE(garden.has_value());
  cv::Mat small;
  cv::resize(garden->pixels, small, cv::Size(64, 40), 0, 0, cv::INTER_AREA);
  const Bytes plain = encode(small, ".png");
  for (int orientation = 1; orientation <= 8; ++orientation) {
    INFO("orientation " << orientation);
    const Bytes tagged = png_with_orientation(plain, orientation);
    const auto decoded = decode_image(tagged, Size{128, 128});
    REQUIRE(decoded.has_value());
    const cv::Mat reference = cv::imdecode(tagged, cv::IMREAD_COLOR);  // OpenCV orients BGR PNGs itself
    CHECK(same_pixels(decoded->pixels, reference));
    const Size expected = orientation >= 5 ? Size{40, 64} : Size{64, 40};
    CHECK(decoded->source_size == expected);
    CHECK(read_image_size(tagged) == expected);
  }
  SECTION("with alpha, where OpenCV would not orient") {
    cv::Mat bgra;
    cv::cvtColor(small, bgra, cv::COLOR_BGR2BGRA);
    bgra.at<cv::Vec4b>(0, 0)[3] = 0;  // top-left stored pixel transparent
    const auto decoded = decode_image(png_with_orientation(encode(bgra, ".png"), 6), Size{128, 128});
    REQUIRE(decoded.has_value());
    REQUIRE(decoded->pixels.channels() == 4);
    cv::Mat expected;
    cv::rotate(bgra, expected, cv::ROTATE_90_CLOCKWISE);  // orientation 6
    CHECK(same_pixels(decoded->pixels, expected));
    CHECK(decoded->pixels.at<cv::Vec4b>(0, 39)[3] == 0);  // now at the top-right
  }
}

TEST_CASE("decode_image applies WebP EXIF orientation", "[decode]") {
  const auto wood = decode_image(read_bytes(photo("wood.webp")), Size{4096, 4096});
  REQUIRE(wood.has_value());
  cv::Mat small;
  cv::resize(wood->pixels, small, cv::Size(120, 90), 0, 0, cv::INTER_AREA);
  const Bytes plain = lossy_webp(small);
  const auto upright = decode_image(plain, Size{4096, 4096});
  REQUIRE(upright.has_value());
  const auto rotated = decode_image(webp_with_orientation(plain, Size{120, 90}, 6), Size{4096, 4096});
  REQUIRE(rotated.has_value());
  CHECK(rotated->source_size == Size{90, 120});
  cv::Mat expected;
  cv::rotate(upright->pixels, expected, cv::ROTATE_90_CLOCKWISE);
  CHECK(same_pixels(rotated->pixels, expected));

  // A header that claims an animation over a still's chunk: WebPAnimDecoder finds no frame. (Real
  // animated WebPs decode to their first frame: test_animation.cpp.)
  const auto animated = decode_image(webp_with_orientation(plain, Size{623, 467}, 1, 0x02), Size{64, 64});
  REQUIRE_FALSE(animated.has_value());
  CHECK(animated.error().reason == "corrupt webp");
}

TEST_CASE("decode_image shrinks JPEGs on load by the largest factor leaving 2x the thumbnail", "[decode]") {
  const Bytes wings = read_bytes(photo("two-wings.jpg"));
  SECTION("box 128x128: factor 4 (1600/4 = 400 >= 256, 1600/8 = 200 < 256)") {
    const auto decoded = decode_image(wings, Size{128, 128});
    REQUIRE(decoded.has_value());
    CHECK(decoded->reduce_factor == 4);
    CHECK(decoded->source_size == Size{1600, 1000});
    CHECK(decoded->pixels.cols == 400);
    CHECK(decoded->pixels.rows == 250);
  }
  SECTION("box 512x512: factor 1") {
    const auto decoded = decode_image(wings, Size{512, 512});
    REQUIRE(decoded.has_value());
    CHECK(decoded->reduce_factor == 1);
    CHECK(decoded->pixels.cols == 1600);
  }
  SECTION("box 64x64: factor 8") {
    const auto decoded = decode_image(wings, Size{64, 64});
    REQUIRE(decoded.has_value());
    CHECK(decoded->reduce_factor == 8);
    CHECK(decoded->pixels.cols == 200);
    CHECK(decoded->pixels.rows == 125);
  }
  SECTION("other formats decode at full size") {
    const auto garden = decode_image(read_bytes(photo("garden.png")), Size{32, 32});
    REQUIRE(garden.has_value());
    CHECK(garden->reduce_factor == 1);
    CHECK(garden->pixels.cols == 640);
  }
  SECTION("a photo smaller than the box is never reduced") {
    const auto tiny = decode_image(read_bytes(photo("tiny.jpg")), Size{128, 128});
    REQUIRE(tiny.has_value());
    CHECK(tiny->reduce_factor == 1);
  }
  CHECK(reduce_factor_for(Size{1600, 1000}, Size{128, 128}) == 4);
  CHECK(reduce_factor_for(Size{1600, 1000}, Size{512, 512}) == 1);
  CHECK(reduce_factor_for(Size{1600, 1000}, Size{400, 400}) == 2);
  CHECK(reduce_factor_for(Size{600, 900}, Size{128, 128}) == 2);  // 300x450 >= 2 x (85x128)
  CHECK(reduce_factor_for(Size{96, 60}, Size{128, 128}) == 1);
}

TEST_CASE("decode_image keeps alpha for PNG and WebP, converts grey and 16-bit", "[decode]") {
  const auto ladybird = decode_image(read_bytes(photo("ladybird-alpha.png")), Size{128, 128});
  REQUIRE(ladybird.has_value());
  REQUIRE(ladybird->pixels.channels() == 4);
  CHECK(ladybird->pixels.at<cv::Vec4b>(0, 0)[3] == 0);      // a round cut-out: corners transparent
  CHECK(ladybird->pixels.at<cv::Vec4b>(250, 250)[3] == 255);  // centre opaque

  const Bytes webp = encode(ladybird->pixels, ".webp");
  const auto from_webp = decode_image(webp, Size{128, 128});
  REQUIRE(from_webp.has_value());
  CHECK(from_webp->pixels.channels() == 4);

  cv::Mat grey(30, 40, CV_8UC1, cv::Scalar(77));
  const auto from_grey = decode_image(encode(grey, ".png"), Size{128, 128});
  REQUIRE(from_grey.has_value());
  CHECK(from_grey->pixels.type() == CV_8UC3);
  CHECK(from_grey->pixels.at<cv::Vec3b>(5, 5) == cv::Vec3b(77, 77, 77));

  cv::Mat deep(30, 40, CV_16UC3, cv::Scalar(65535, 0, 257 * 100));
  const auto from_deep = decode_image(encode(deep, ".png"), Size{128, 128});
  REQUIRE(from_deep.has_value());
  CHECK(from_deep->pixels.type() == CV_8UC3);
  CHECK(from_deep->pixels.at<cv::Vec3b>(5, 5) == cv::Vec3b(255, 0, 100));

  const auto from_bmp = decode_image(encode(grey, ".bmp"), Size{128, 128});
  REQUIRE(from_bmp.has_value());
  CHECK(from_bmp->source_format == ImageFormat::bmp);
  CHECK(from_bmp->source_size == Size{40, 30});
}

TEST_CASE("decode_image reports failures as values", "[decode]") {
  auto reason = [](const Bytes& bytes) {
    const auto decoded = decode_image(bytes, Size{128, 128});
    REQUIRE_FALSE(decoded.has_value());
    return decoded.error().reason;
  };
  CHECK(reason({}) == "empty body");
  CHECK(reason(bytes_of("GIF89a\x40\x00")) == "truncated gif");  // GIFs decode: test_animation.cpp
  CHECK(reason(bytes_of("<!DOCTYPE html>\n<html><head><title>Not Found</title></head></html>")) == "not an image");

  SECTION("truncated downloads") {
    for (const char* name : {"aqua.jpg", "fresh-flower.jpg", "storm-rotated.jpg"}) {
      INFO(name);
      const Bytes whole = read_bytes(photo(name));
      CHECK(reason(Bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() / 2))) ==
            "truncated jpeg");
      CHECK(reason(Bytes(whole.begin(), whole.end() - 2)) == "truncated jpeg");  // only EOI missing
      CHECK(reason(Bytes(whole.begin(), whole.begin() + 300)) == "truncated jpeg");
    }
    const Bytes png = read_bytes(photo("garden.png"));
    CHECK(reason(Bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2))) == "truncated png");
    CHECK(reason(Bytes(png.begin(), png.begin() + 20)) == "truncated png");  // cut inside IHDR
    const Bytes webp = read_bytes(photo("wood.webp"));
    CHECK(reason(Bytes(webp.begin(), webp.begin() + static_cast<std::ptrdiff_t>(webp.size() / 2))) ==
          "truncated webp");
  }
  SECTION("garbage after a JPEG marker") {
    const Bytes aqua = read_bytes(photo("aqua.jpg"));
    // Keep SOI and the first segment (FF xx + length), then garbage where the next marker belongs.
    const std::size_t first_segment_end = 4 + (std::size_t{aqua[4]} << 8 | aqua[5]);
    Bytes garbage(aqua.begin(), aqua.begin() + static_cast<std::ptrdiff_t>(first_segment_end));
    const std::string text = "this is definitely not entropy-coded image data";
    for (int i = 0; i < 100; ++i) garbage.insert(garbage.end(), text.begin(), text.end());
    CHECK(reason(garbage) == "corrupt jpeg");
    Bytes random = {0xFF, 0xD8, 0xFF};
    cv::Mat noise(1, 4096, CV_8UC1);
    cv::randu(noise, 0, 256);
    random.insert(random.end(), noise.begin<std::uint8_t>(), noise.end<std::uint8_t>());
    // Noise after SOI reads as segments running past the end, as a download cut short would.
    const std::string noise_reason = reason(random);
    CHECK((noise_reason == "corrupt jpeg" || noise_reason == "truncated jpeg"));
    // A complete structure whose frame header libjpeg rejects (0 components).
    Bytes bad_frame = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x08, 0x08, 0x00, 0x10, 0x00, 0x10, 0x00,
                       0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34, 0xFF, 0xD9};
    CHECK(reason(bad_frame) == "corrupt jpeg");
  }
  SECTION("a header claiming more pixels than allowed") {
    Bytes bomb = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    put_be32(bomb, 13);
    bomb.insert(bomb.end(), {'I', 'H', 'D', 'R'});
    put_be32(bomb, 60000);
    put_be32(bomb, 60000);
    bomb.insert(bomb.end(), {8, 2, 0, 0, 0});
    put_be32(bomb, crc32(bomb.data() + 12, 17));
    for (const char* type : {"IDAT", "IEND"}) {  // empty chunks: the structure is whole, the pixels absent
      const std::size_t start = bomb.size();
      put_be32(bomb, 0);
      bomb.insert(bomb.end(), type, type + 4);
      put_be32(bomb, crc32(bomb.data() + start + 4, 4));
    }
    CHECK(reason(bomb) == "image too large (60000x60000)");
  }
}

TEST_CASE("truncated headers are refused, never read past their end", "[decode]") {
  // Every prefix of each file's first 1 KiB: the header readers stay in bounds (run under ASan in CI) and
  // a prefix never decodes.
  for (const auto& sample : samples) {
    INFO(sample.name);
    const Bytes whole = read_bytes(photo(sample.name));
    for (std::size_t length = 0; length < std::min<std::size_t>(whole.size(), 1024); ++length) {
      const std::span<const std::uint8_t> prefix(whole.data(), length);
      const auto size = read_image_size(prefix);
      if (size) CHECK(*size == sample.displayed);
      CHECK_FALSE(decode_image(prefix, Size{128, 128}).has_value());
    }
  }
}

// ---- Round two (issue 11): decoders called directly, one memory budget, warnings as errors ----

namespace {

int reduced_flag(int factor) {
  switch (factor) {
    case 2: return cv::IMREAD_REDUCED_COLOR_2;
    case 4: return cv::IMREAD_REDUCED_COLOR_4;
    case 8: return cv::IMREAD_REDUCED_COLOR_8;
    default: return cv::IMREAD_COLOR;
  }
}

/// What the previous decoder gave for a PNG: cv::imdecode(IMREAD_UNCHANGED) made 8-bit BGR(A).
cv::Mat opencv_png(const Bytes& bytes) {
  cv::Mat image = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  REQUIRE_FALSE(image.empty());
  if (image.depth() == CV_16U) image.convertTo(image, CV_8U, 1.0 / 257.0);
  if (image.channels() == 1) cv::cvtColor(image, image, cv::COLOR_GRAY2BGR);
  if (image.channels() == 2) {
    cv::Mat bgra(image.size(), CV_8UC4);
    const int from_to[] = {0, 0, 0, 1, 0, 2, 1, 3};
    cv::mixChannels(&image, 1, &bgra, 1, from_to, 4);
    image = bgra;
  }
  return image;
}

/// Everything written to file descriptor 2 while `run` runs (libjpeg, libpng and OpenCV write there).
template <class Run>
std::string stderr_of(Run&& run) {
  std::fflush(stderr);
  FILE* sink = std::tmpfile();
  REQUIRE(sink != nullptr);
  const int saved = ::dup(2);
  REQUIRE(::dup2(::fileno(sink), 2) == 2);
  run();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string text;
  std::rewind(sink);
  for (int c = std::fgetc(sink); c != EOF; c = std::fgetc(sink)) text.push_back(static_cast<char>(c));
  std::fclose(sink);
  return text;
}

long peak_rss_kib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

struct Outcome {
  std::string reason;  // empty: decoded
  long rss_growth_mib = 0;
  std::string stderr_text;
};

/// decode_image under watch: its reason, how far it raised the process's peak RSS, what it printed.
Outcome watch(const Bytes& bytes, Size box = Size{128, 128}, DecodeLimits limits = {}) {
  Outcome out;
  const long before = peak_rss_kib();
  out.stderr_text = stderr_of([&] {
    const auto decoded = decode_image(bytes, box, limits);
    if (!decoded) out.reason = decoded.error().reason;
  });
  out.rss_growth_mib = (peak_rss_kib() - before) / 1024;
  return out;
}

/// Offset of the first SOFn marker of a JPEG (walking the segments), or 0.
std::size_t sof_offset(const Bytes& jpeg) {
  std::size_t pos = 2;
  while (pos + 4 <= jpeg.size() && jpeg[pos] == 0xFF) {
    const std::uint8_t marker = jpeg[pos + 1];
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) return pos;
    pos += 2 + (std::size_t{jpeg[pos + 2]} << 8 | jpeg[pos + 3]);
  }
  return 0;
}

/// A tiny JPEG (16x16) whose frame header claims `size`: the 543-byte bombs.
Bytes jpeg_claiming(Size size, bool progressive) {
  cv::Mat noise(16, 16, CV_8UC3);
  cv::randu(noise, 0, 256);
  Bytes jpeg;
  REQUIRE(cv::imencode(".jpg", noise, jpeg, std::vector<int>{cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0}));
  const std::size_t sof = sof_offset(jpeg);
  REQUIRE(sof != 0);
  REQUIRE(jpeg[sof + 1] == (progressive ? 0xC2 : 0xC0));
  jpeg[sof + 5] = static_cast<std::uint8_t>(size.height >> 8);
  jpeg[sof + 6] = static_cast<std::uint8_t>(size.height);
  jpeg[sof + 7] = static_cast<std::uint8_t>(size.width >> 8);
  jpeg[sof + 8] = static_cast<std::uint8_t>(size.width);
  return jpeg;
}

[[gnu::noinline]] Bytes png_chunk(const char* type, const Bytes& data) {
  Bytes chunk;
  put_be32(chunk, static_cast<std::uint32_t>(data.size()));
  chunk.insert(chunk.end(), type, type + 4);
  chunk.insert(chunk.end(), data.begin(), data.end());
  put_be32(chunk, crc32(chunk.data() + 4, chunk.size() - 4));
  return chunk;
}

/// `png` with its IDAT stream cut into chunks of `piece` bytes; with `gap`, a tEXt chunk stands between
/// the first two (not allowed: IDATs must be consecutive).
Bytes png_rechunked(const Bytes& png, std::size_t piece, bool gap = false) {
  Bytes out(png.begin(), png.begin() + 8);
  Bytes stream;
  std::size_t pos = 8;
  bool idat_written = false;
  while (pos + 12 <= png.size()) {
    const std::size_t length = std::size_t{png[pos]} << 24 | std::size_t{png[pos + 1]} << 16 | std::size_t{png[pos + 2]} << 8 | png[pos + 3];
    const bool idat = std::memcmp(png.data() + pos + 4, "IDAT", 4) == 0;
    if (idat) {
      stream.insert(stream.end(), png.begin() + static_cast<std::ptrdiff_t>(pos + 8),
                    png.begin() + static_cast<std::ptrdiff_t>(pos + 8 + length));
    } else {
      if (!stream.empty() && !idat_written) {
        for (std::size_t at = 0; at < stream.size(); at += piece) {
          const Bytes chunk = png_chunk("IDAT", Bytes(stream.begin() + static_cast<std::ptrdiff_t>(at),
                                                      stream.begin() + static_cast<std::ptrdiff_t>(std::min(at + piece, stream.size()))));
          out.insert(out.end(), chunk.begin(), chunk.end());
          if (gap && at == 0) {
            const Bytes text = png_chunk("tEXt", Bytes{'a', 0, 'b'});
            out.insert(out.end(), text.begin(), text.end());
          }
        }
        idat_written = true;
      }
      out.insert(out.end(), png.begin() + static_cast<std::ptrdiff_t>(pos), png.begin() + static_cast<std::ptrdiff_t>(pos + 12 + length));
    }
    pos += 12 + length;
  }
  return out;
}

/// A PNG whose IHDR claims `width` x `height` (8-bit, `color_type`), with one small IDAT and IEND.
Bytes png_claiming(std::uint32_t width, std::uint32_t height, std::uint8_t color_type) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Bytes ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {8, color_type, 0, 0, 0});
  for (const Bytes& chunk : {png_chunk("IHDR", ihdr), png_chunk("IDAT", Bytes{0x78, 0x9C, 0x03, 0x00}),
                             png_chunk("IEND", Bytes{})})
    png.insert(png.end(), chunk.begin(), chunk.end());
  return png;
}

/// `png` with `chunk` inserted right after IHDR.
[[gnu::noinline]] Bytes png_with_chunk(const Bytes& png, const Bytes& chunk) {
  REQUIRE(png.size() > 33);  // signature (8) + IHDR chunk (25)
  Bytes out(png.size() + chunk.size());
  std::memcpy(out.data(), png.data(), 33);
  std::memcpy(out.data() + 33, chunk.data(), chunk.size());
  std::memcpy(out.data() + 33 + chunk.size(), png.data() + 33, png.size() - 33);
  return out;
}

/// Offset of the first chunk of `type` in a PNG.
std::size_t png_chunk_offset(const Bytes& png, const char* type) {
  std::size_t pos = 8;
  while (pos + 12 <= png.size()) {
    if (std::memcmp(png.data() + pos + 4, type, 4) == 0) return pos;
    pos += 12 + (std::size_t{png[pos]} << 24 | std::size_t{png[pos + 1]} << 16 | std::size_t{png[pos + 2]} << 8 |
                 png[pos + 3]);
  }
  FAIL("no " << type << " chunk");
  return 0;
}

/// A PNG written by libpng itself (OpenCV writes neither interlaced nor palette PNGs). `rows` holds
/// height rows of packed samples as libpng expects them (RGB order).
Bytes libpng_encode(int width, int height, int bit_depth, int color_type, bool interlaced, const Bytes& rows,
                    const std::vector<png_color>& palette = {}, const Bytes& trns = {}) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  Bytes out;
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, std::size_t length) {
        auto* sink = static_cast<Bytes*>(png_get_io_ptr(p));
        sink->insert(sink->end(), data, data + length);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!trns.empty()) {
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
      png_set_tRNS(png, info, trns.data(), static_cast<int>(trns.size()), nullptr);
    } else {
      png_color_16 grey{};
      grey.gray = trns[0];
      png_set_tRNS(png, info, nullptr, 0, &grey);
    }
  }
  png_write_info(png, info);
  const std::size_t stride = rows.size() / static_cast<std::size_t>(height);
  std::vector<png_bytep> pointers;
  for (int y = 0; y < height; ++y)
    pointers.push_back(const_cast<png_bytep>(rows.data() + stride * static_cast<std::size_t>(y)));  // NOLINT
  png_write_image(png, pointers.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

/// A CMYK (Adobe, inverted as Photoshop writes it) or YCCK JPEG written by libjpeg, from `bgr`.
Bytes cmyk_jpeg(const cv::Mat& bgr, bool ycck) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buffer, &size);
  c.image_width = static_cast<JDIMENSION>(bgr.cols);
  c.image_height = static_cast<JDIMENSION>(bgr.rows);
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, ycck ? JCS_YCCK : JCS_CMYK);
  jpeg_start_compress(&c, TRUE);
  std::vector<JSAMPLE> row(static_cast<std::size_t>(bgr.cols) * 4);
  while (c.next_scanline < c.image_height) {
    const auto* pixel = bgr.ptr<cv::Vec3b>(static_cast<int>(c.next_scanline));
    for (int x = 0; x < bgr.cols; ++x) {
      const int k = std::max({pixel[x][0], pixel[x][1], pixel[x][2]});
      const auto at = static_cast<std::size_t>(x) * 4;
      row[at + 0] = static_cast<JSAMPLE>(255 - (k - pixel[x][2]));  // inverted C, M, Y, K
      row[at + 1] = static_cast<JSAMPLE>(255 - (k - pixel[x][1]));
      row[at + 2] = static_cast<JSAMPLE>(255 - (k - pixel[x][0]));
      row[at + 3] = static_cast<JSAMPLE>(k);
    }
    JSAMPROW rows[1] = {row.data()};
    jpeg_write_scanlines(&c, rows, 1);
  }
  jpeg_finish_compress(&c);
  Bytes out(buffer, buffer + size);
  jpeg_destroy_compress(&c);
  std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): jpeg_mem_dest's buffer
  return out;
}

/// Every fixture JPEG, plus variants the photos do not cover: progressive re-encodes (colour, grey), grey,
/// CMYK, YCCK.
std::vector<std::pair<std::string, Bytes>> jpeg_cases() {
  std::vector<std::pair<std::string, Bytes>> cases;
  for (const char* name : {"aqua.jpg", "dune.jpg", "fresh-flower.jpg", "two-wings.jpg", "storm-rotated.jpg", "tiny.jpg"})
    cases.emplace_back(name, read_bytes(photo(name)));
  const cv::Mat aqua = cv::imread(photo("aqua.jpg").string(), cv::IMREAD_COLOR);
  REQUIRE_FALSE(aqua.empty());
  Bytes progressive;
  REQUIRE(cv::imencode(".jpg", aqua, progressive, std::vector<int>{cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  cases.emplace_back("aqua progressive", progressive);
  cv::Mat grey;
  cv::cvtColor(aqua, grey, cv::COLOR_BGR2GRAY);
  cases.emplace_back("aqua grey", encode(grey, ".jpg"));
  // Progressive files are read only as far as the scaled output needs (the DC scans alone for grey at
  // 1/8): the pixels must still be the full decode's.
  Bytes grey_progressive;
  REQUIRE(cv::imencode(".jpg", grey, grey_progressive, std::vector<int>{cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  cases.emplace_back("aqua grey progressive", grey_progressive);
  cv::Mat small;
  cv::resize(aqua, small, cv::Size(333, 211), 0, 0, cv::INTER_AREA);
  cases.emplace_back("aqua cmyk", cmyk_jpeg(small, false));
  cases.emplace_back("aqua ycck", cmyk_jpeg(small, true));
  return cases;
}

}  // namespace

TEST_CASE("decode_image decodes JPEGs exactly as OpenCV did, at every shrink-on-load factor", "[decode]") {
  for (const auto& [name, bytes] : jpeg_cases()) {
    for (int box : {32, 64, 128, 256, 512, 4096}) {
      INFO(name << " into " << box << "x" << box);
      std::string printed;
      printed = stderr_of([&, &bytes = bytes] {
        const auto decoded = decode_image(bytes, Size{box, box});
        REQUIRE(decoded.has_value());
        const cv::Mat reference = cv::imdecode(bytes, reduced_flag(decoded->reduce_factor));
        CHECK(same_pixels(decoded->pixels, reference));
      });
      CHECK(printed.empty());
    }
  }
}

TEST_CASE("decode_image decodes PNGs exactly as OpenCV did, interlaced, palette, grey and 16-bit too", "[decode]") {
  std::vector<std::pair<std::string, Bytes>> cases;
  for (const char* name : {"garden.png", "ladybird-alpha.png"}) cases.emplace_back(name, read_bytes(photo(name)));
  const int w = 37;
  const int h = 23;
  Bytes rgb;
  Bytes grey16;
  Bytes grey_alpha;
  Bytes indices;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      rgb.insert(rgb.end(), {static_cast<std::uint8_t>(x * 7), static_cast<std::uint8_t>(y * 11),
                             static_cast<std::uint8_t>((x * y) & 0xFF)});
      grey16.insert(grey16.end(), {static_cast<std::uint8_t>(x * 6), static_cast<std::uint8_t>(y * 9)});
      grey_alpha.insert(grey_alpha.end(), {static_cast<std::uint8_t>(x * 5), static_cast<std::uint8_t>(y * 10)});
      indices.push_back(static_cast<std::uint8_t>((x + y) % 4));
    }
  }
  // Palette rows packed 2 bits a pixel.
  Bytes packed;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; x += 4) {
      std::uint8_t byte = 0;
      for (int k = 0; k < 4; ++k)
        if (x + k < w) byte |= static_cast<std::uint8_t>(indices[static_cast<std::size_t>(y * w + x + k)] << (6 - 2 * k));
      packed.push_back(byte);
    }
  }
  const std::vector<png_color> palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
  cases.emplace_back("rgb interlaced", libpng_encode(w, h, 8, PNG_COLOR_TYPE_RGB, true, rgb));
  cases.emplace_back("rgb", libpng_encode(w, h, 8, PNG_COLOR_TYPE_RGB, false, rgb));
  cases.emplace_back("grey 16-bit interlaced", libpng_encode(w, h, 16, PNG_COLOR_TYPE_GRAY, true, grey16));
  cases.emplace_back("grey+alpha", libpng_encode(w, h, 8, PNG_COLOR_TYPE_GRAY_ALPHA, false, grey_alpha));
  cases.emplace_back("palette 2-bit", libpng_encode(w, h, 2, PNG_COLOR_TYPE_PALETTE, false, packed, palette));
  cases.emplace_back("palette 2-bit with tRNS, interlaced",
                     libpng_encode(w, h, 2, PNG_COLOR_TYPE_PALETTE, true, packed, palette, Bytes{255, 128, 0, 255}));
  cv::Mat deep(30, 40, CV_16UC4, cv::Scalar(65535, 1000, 257 * 100, 30000));
  cases.emplace_back("bgra 16-bit", encode(deep, ".png"));
  // The IDAT stream is inflated by libdeflate in one piece when the chunks are well formed, else libpng
  // reads the file as it is: both give the same pixels.
  const Bytes garden = read_bytes(photo("garden.png"));
  cases.emplace_back("garden.png in 1000-byte IDATs", png_rechunked(garden, 1000));
  cases.emplace_back("rgb interlaced in 7-byte IDATs",
                     png_rechunked(libpng_encode(w, h, 8, PNG_COLOR_TYPE_RGB, true, rgb), 7));
  for (const auto& [name, bytes] : cases) {
    INFO(name);
    const std::string printed = stderr_of([&, &bytes = bytes] {
      const auto decoded = decode_image(bytes, Size{128, 128});
      REQUIRE(decoded.has_value());
      CHECK(same_pixels(decoded->pixels, opencv_png(bytes)));
    });
    CHECK(printed.empty());
  }
  SECTION("grey with tRNS keeps its transparency (OpenCV dropped it)") {
    Bytes grey8;
    for (int i = 0; i < w * h; ++i) grey8.push_back(i % 2 == 0 ? 0 : 200);
    const auto decoded = decode_image(libpng_encode(w, h, 8, PNG_COLOR_TYPE_GRAY, false, grey8, {}, Bytes{0}),
                                      Size{128, 128});
    REQUIRE(decoded.has_value());
    REQUIRE(decoded->pixels.type() == CV_8UC4);
    CHECK(decoded->pixels.at<cv::Vec4b>(0, 0) == cv::Vec4b(0, 0, 0, 0));
    CHECK(decoded->pixels.at<cv::Vec4b>(0, 1) == cv::Vec4b(200, 200, 200, 255));
  }
}

TEST_CASE("decode bombs are refused from their header, in little memory and silently", "[decode]") {
  SECTION("a 543-byte progressive JPEG claiming 65000x65000 (12.6 GB through OpenCV)") {
    const Bytes bomb = jpeg_claiming(Size{65000, 65000}, true);
    CHECK(bomb.size() < 1024);
    const auto header = read_image_header(bomb);
    REQUIRE(header.has_value());
    CHECK(header->progressive);
    CHECK(header->size == Size{65000, 65000});
    for (int box : {64, 128, 4096}) {
      const Outcome out = watch(bomb, Size{box, box});
      CHECK(out.reason == "image too large (65000x65000)");
      CHECK(out.rss_growth_mib < 64);
      CHECK(out.stderr_text.empty());
    }
  }
  SECTION("its baseline twin: fails on the missing data at 1/8, refused outright at 1/4") {
    const Bytes bomb = jpeg_claiming(Size{65000, 65000}, false);
    CHECK_FALSE(read_image_header(bomb)->progressive);
    const Outcome small_box = watch(bomb, Size{128, 128});  // 8125x8125 BGR, 190 MiB: within the budget
    CHECK(small_box.reason == "truncated jpeg");
    CHECK(small_box.rss_growth_mib < 64);
    CHECK(small_box.stderr_text.empty());
    const Outcome large_box = watch(bomb, Size{4096, 4096});  // 16250x16250 BGR, 755 MiB
    CHECK(large_box.reason == "image too large (65000x65000)");
    CHECK(large_box.rss_growth_mib < 64);
  }
  SECTION("a progressive JPEG within a tight budget's reach is refused by that budget") {
    const Bytes bomb = jpeg_claiming(Size{4000, 3000}, true);  // coefficients 4000x3000x3 B = 34 MiB
    CHECK(watch(bomb, Size{128, 128}, DecodeLimits{16 << 20}).reason == "image too large (4000x3000)");
    CHECK(watch(bomb, Size{128, 128}, DecodeLimits{64 << 20}).reason == "truncated jpeg");
  }
  SECTION("a 30000x30000 deflate TIFF (2.7 GB through OpenCV) is not decoded at all") {
    Bytes tiff = {'I', 'I', 42, 0, 8, 0, 0, 0};
    const std::vector<std::array<std::uint32_t, 3>> entries = {
        {256, 4, 30000}, {257, 4, 30000}, {258, 3, 8}, {259, 3, 8 /* deflate */}, {262, 3, 2},
        {273, 4, 200},   {277, 3, 3},     {278, 4, 30000}, {279, 4, 16}};
    tiff.push_back(static_cast<std::uint8_t>(entries.size()));
    tiff.push_back(0);
    for (const auto& [tag, type, value] : entries) {
      tiff.insert(tiff.end(), {static_cast<std::uint8_t>(tag), static_cast<std::uint8_t>(tag >> 8),
                               static_cast<std::uint8_t>(type), 0, 1, 0, 0, 0});
      put_le32(tiff, value);
    }
    put_le32(tiff, 0);
    tiff.resize(200, 0);
    tiff.insert(tiff.end(), {0x78, 0x9C, 0x63, 0x60, 0x18, 0x05, 0xA3, 0x60, 0x14, 0x0C, 0x77, 0x00, 0x00, 0, 0, 0});
    CHECK(sniff_format(tiff) == ImageFormat::tiff);
    const Outcome out = watch(tiff);
    CHECK(out.reason == "unsupported format (tiff)");
    CHECK(out.rss_growth_mib < 64);
    CHECK(out.stderr_text.empty());
    CHECK(watch(encode(cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)), ".tiff")).reason == "unsupported format (tiff)");
  }
  SECTION("an 18000x18000 RLE8 BMP (1 GB through OpenCV)") {
    Bytes bmp = {'B', 'M'};
    put_le32(bmp, 14 + 40 + 1024 + 2);
    put_le32(bmp, 0);
    put_le32(bmp, 14 + 40 + 1024);
    put_le32(bmp, 40);
    put_le32(bmp, 18000);
    put_le32(bmp, 18000);
    bmp.insert(bmp.end(), {1, 0, 8, 0});  // planes 1, 8 bits a pixel
    put_le32(bmp, 1);                     // BI_RLE8
    put_le32(bmp, 2);
    put_le32(bmp, 2835);
    put_le32(bmp, 2835);
    put_le32(bmp, 256);
    put_le32(bmp, 0);
    bmp.resize(bmp.size() + 1024, 0x40);  // palette
    bmp.insert(bmp.end(), {0x00, 0x01});  // end of bitmap
    CHECK(sniff_format(bmp) == ImageFormat::bmp);
    CHECK(read_image_size(bmp) == Size{18000, 18000});
    const Outcome out = watch(bmp);
    CHECK(out.reason == "image too large (18000x18000)");
    CHECK(out.rss_growth_mib < 64);
    CHECK(out.stderr_text.empty());
  }
  SECTION("PNGs whose IHDR claims more than the budget") {
    for (const auto& [width, height, colour] : std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint8_t>>{
             {60000, 60000, 2}, {20000, 10000, 6}, {1000000, 1000000, 0}, {0x7FFFFFFF, 0x7FFFFFFF, 6}}) {
      INFO(width << "x" << height);
      const Outcome out = watch(png_claiming(width, height, colour));
      CHECK(out.reason == "image too large (" + std::to_string(width) + "x" + std::to_string(height) + ")");
      CHECK(out.rss_growth_mib < 64);
      CHECK(out.stderr_text.empty());
    }
    // 4000x3000 RGBA is 46 MiB of rows: refused under a 32 MiB budget, truncated data under the default.
    CHECK(watch(png_claiming(4000, 3000, 6), Size{128, 128}, DecodeLimits{32 << 20}).reason ==
          "image too large (4000x3000)");
    const Outcome empty_rows = watch(png_claiming(4000, 3000, 6));
    CHECK(empty_rows.reason == "truncated png");  // the IDAT stream ends before the first row
    CHECK(empty_rows.stderr_text.empty());
  }
  SECTION("a WebP too large for the budget") {
    const Bytes plain = lossy_webp(cv::Mat(90, 120, CV_8UC3, cv::Scalar(9, 99, 199)));
    CHECK(watch(webp_with_orientation(plain, Size{16000, 16000}, 1)).reason == "image too large (16000x16000)");
    CHECK(watch(plain, Size{128, 128}, DecodeLimits{16 * 1024}).reason == "image too large (120x90)");
  }
}

TEST_CASE("truncated and corrupt files fail with their reason, and nothing reaches stderr", "[decode]") {
  const Bytes aqua = read_bytes(photo("aqua.jpg"));
  SECTION("a JPEG cut in the middle that still ends with EOI (was ok, lower half grey)") {
    for (const char* name : {"aqua.jpg", "dune.jpg", "two-wings.jpg"}) {
      INFO(name);
      const Bytes whole = read_bytes(photo(name));
      Bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() / 2));
      cut.insert(cut.end(), {0xFF, 0xD9});
      for (int box : {64, 4096}) {
        const Outcome out = watch(cut, Size{box, box});
        CHECK(out.reason == "truncated jpeg");
        CHECK(out.stderr_text.empty());
      }
    }
    Bytes progressive;
    REQUIRE(cv::imencode(".jpg", cv::imread(photo("aqua.jpg").string()), progressive,
                         std::vector<int>{cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
    Bytes cut(progressive.begin(), progressive.begin() + static_cast<std::ptrdiff_t>(progressive.size() * 2 / 3));
    cut.insert(cut.end(), {0xFF, 0xD9});
    CHECK(watch(cut).reason == "truncated jpeg");
  }
  SECTION("a JPEG simply cut short") {
    const Outcome out = watch(Bytes(aqua.begin(), aqua.begin() + static_cast<std::ptrdiff_t>(aqua.size() * 3 / 4)));
    CHECK(out.reason == "truncated jpeg");
    CHECK(out.stderr_text.empty());
  }
  SECTION("a restart marker out of sequence in a JPEG's scan") {
    // (Bad Huffman codes are not a reliable test: libjpeg-turbo's fast path decodes them as zeros
    // without a warning; a wrong RSTn always makes libjpeg warn, JWRN_MUST_RESYNC.)
    Bytes restarts;
    REQUIRE(cv::imencode(".jpg", cv::imread(photo("aqua.jpg").string()), restarts,
                         std::vector<int>{cv::IMWRITE_JPEG_RST_INTERVAL, 4}));
    REQUIRE(watch(restarts).reason.empty());
    std::size_t at = restarts.size() / 2;
    while (!(restarts[at] == 0xFF && restarts[at + 1] >= 0xD0 && restarts[at + 1] <= 0xD7)) ++at;
    restarts[at + 1] = static_cast<std::uint8_t>(0xD0 + (restarts[at + 1] - 0xD0 + 3) % 8);
    const Outcome out = watch(restarts);
    CHECK(out.reason == "corrupt jpeg");
    CHECK(out.stderr_text.empty());
  }
  SECTION("benign JPEG warnings still decode: junk bytes before EOI") {
    Bytes padded(aqua.begin(), aqua.end() - 2);
    padded.insert(padded.end(), {0x12, 0x34, 0x56, 0xFF, 0xD9});
    const Outcome out = watch(padded);
    CHECK(out.reason.empty());
    CHECK(out.stderr_text.empty());
    CHECK(same_pixels(decode_image(padded, Size{128, 128})->pixels, decode_image(aqua, Size{128, 128})->pixels));
  }
  const Bytes garden = read_bytes(photo("garden.png"));
  SECTION("PNGs cut short, without IEND, or with a bad IDAT CRC") {
    const Outcome cut = watch(Bytes(garden.begin(), garden.begin() + static_cast<std::ptrdiff_t>(garden.size() / 2)));
    CHECK(cut.reason == "truncated png");
    CHECK(cut.stderr_text.empty());
    CHECK(watch(Bytes(garden.begin(), garden.end() - 12)).reason == "truncated png");  // IEND gone
    Bytes bad_crc = garden;
    bad_crc[png_chunk_offset(garden, "IDAT") + 8 + 100] ^= 0x55;
    const Outcome corrupt = watch(bad_crc);
    CHECK(corrupt.reason == "corrupt png");
    CHECK(corrupt.stderr_text.empty());
    // IDATs apart: libpng's image data ends at the first other chunk (the fast inflate leaves such a
    // file to libpng, which says what it always said).
    CHECK(watch(png_rechunked(garden, 50000, true)).reason == "truncated png");
  }
  SECTION("libpng warnings still decode: a damaged ancillary chunk, a bad iCCP profile") {
    Bytes text = png_chunk("tEXt", bytes_of(std::string("Comment") + '\0' + "hello"));
    text[text.size() - 1] ^= 0xFF;  // CRC error in an ancillary chunk: libpng warns and drops it
    Bytes iccp_data = bytes_of(std::string("bogus") + '\0' + '\0' + "not a zlib stream at all");
    for (const Bytes& variant : {png_with_chunk(garden, text), png_with_chunk(garden, png_chunk("iCCP", iccp_data))}) {
      const Outcome out = watch(variant);
      CHECK(out.reason.empty());
      CHECK(out.stderr_text.empty());
      CHECK(same_pixels(decode_image(variant, Size{128, 128})->pixels, decode_image(garden, Size{128, 128})->pixels));
    }
  }
  SECTION("formats OpenCV would decode but the allow-list leaves out never reach it") {
    const Bytes ppm = bytes_of(std::string("P5\n2 2\n255\n") + "\x10\x20\x30\x40");
    REQUIRE_FALSE(cv::imdecode(ppm, cv::IMREAD_COLOR).empty());
    CHECK(watch(ppm).reason == "not an image");
    const Bytes sun_raster = encode(cv::Mat(4, 4, CV_8UC3, cv::Scalar(1, 2, 3)), ".ras");
    CHECK(watch(sun_raster).reason == "not an image");
  }
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
namespace {
/// decode_image in a child process whose address space may grow by `headroom_mib` only: the reason.
std::string reason_with_little_memory(const Bytes& bytes, Size box, long headroom_mib) {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    long pages = 0;
    if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
      std::fclose(statm);
    }
    const rlim_t limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) +
                         static_cast<rlim_t>(headroom_mib) * 1024 * 1024;
    const rlimit cap{limit, limit};
    ::setrlimit(RLIMIT_AS, &cap);
    const auto decoded = decode_image(bytes, box);
    const std::string reason = decoded ? "ok" : decoded.error().reason;
    (void)!::write(pipe_fds[1], reason.data(), reason.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string reason;
  char buffer[256];
  for (ssize_t n = 0; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) reason.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  return reason;
}
}  // namespace

TEST_CASE("out of memory below the budget is reported as such, not as a corrupt file", "[decode][slow]") {
  // Allocations far larger than any free space the test process's heap may hold from earlier tests.
  cv::Mat seed(6, 8, CV_8UC3);
  cv::randu(seed, 0, 256);
  cv::Mat big;
  cv::resize(seed, big, cv::Size(8000, 6000), 0, 0, cv::INTER_LINEAR);  // smooth: small files
  Bytes progressive;
  REQUIRE(cv::imencode(".jpg", big, progressive, std::vector<int>{cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  const Bytes baseline = encode(big, ".jpg");
  const Bytes png = encode(big, ".png");
  // libjpeg's coefficient arrays (4:2:0: 137 MiB) fail in libjpeg: JERR_OUT_OF_MEMORY.
  CHECK(reason_with_little_memory(progressive, Size{64, 64}, 32) == "out of memory");
  // The 137 MiB output matrix fails in OpenCV's allocator (cv::Exception, StsNoMem).
  CHECK(reason_with_little_memory(baseline, Size{4096, 4096}, 32) == "out of memory");
  CHECK(reason_with_little_memory(png, Size{4096, 4096}, 32) == "out of memory");
  // With room enough, the same files decode.
  CHECK(reason_with_little_memory(baseline, Size{4096, 4096}, 512) == "ok");
  CHECK(reason_with_little_memory(progressive, Size{64, 64}, 512) == "ok");
}
#endif
