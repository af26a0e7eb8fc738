// decode.hpp: format sniffing, header sizes, shrink-on-load, orientation, alpha, and every failure reason,
// on the real sample photos and on bytes derived from them.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

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

void put_be32(Bytes& out, std::uint32_t v) {
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

/// `png` with an eXIf chunk (valid CRC) inserted right after IHDR.
Bytes png_with_orientation(const Bytes& png, int orientation) {
  const Bytes exif = exif_block(orientation);
  Bytes chunk;
  put_be32(chunk, static_cast<std::uint32_t>(exif.size()));
  chunk.insert(chunk.end(), {'e', 'X', 'I', 'f'});
  chunk.insert(chunk.end(), exif.begin(), exif.end());
  put_be32(chunk, crc32(chunk.data() + 4, chunk.size() - 4));
  Bytes out(png.begin(), png.begin() + 33);  // signature (8) + IHDR chunk (25)
  out.insert(out.end(), chunk.begin(), chunk.end());
  out.insert(out.end(), png.begin() + 33, png.end());
  return out;
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

  const auto animated = decode_image(webp_with_orientation(plain, Size{623, 467}, 1, 0x02), Size{64, 64});
  REQUIRE_FALSE(animated.has_value());
  CHECK(animated.error().reason == "unsupported format (animated webp)");
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
  CHECK(reason(read_bytes(photo("animation.gif"))) == "unsupported format (gif)");
  CHECK(reason(bytes_of("<!DOCTYPE html>\n<html><head><title>Not Found</title></head></html>")) == "not an image");

  SECTION("truncated downloads") {
    for (const char* name : {"aqua.jpg", "fresh-flower.jpg", "storm-rotated.jpg"}) {
      INFO(name);
      const Bytes whole = read_bytes(photo(name));
      CHECK(reason(Bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() / 2))) ==
            "corrupt jpeg");
      CHECK(reason(Bytes(whole.begin(), whole.end() - 2)) == "corrupt jpeg");  // only EOI missing
      CHECK(reason(Bytes(whole.begin(), whole.begin() + 300)) == "corrupt jpeg");
    }
    const Bytes png = read_bytes(photo("garden.png"));
    CHECK(reason(Bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2))) == "corrupt png");
    CHECK(reason(Bytes(png.begin(), png.begin() + 20)) == "corrupt png");
    const Bytes webp = read_bytes(photo("wood.webp"));
    CHECK(reason(Bytes(webp.begin(), webp.begin() + static_cast<std::ptrdiff_t>(webp.size() / 2))) ==
          "corrupt webp");
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
    CHECK(reason(random).find("corrupt") != std::string::npos);
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
