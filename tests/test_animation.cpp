// animation.hpp: GIFs and animated WebPs made here with the real encoders (giflib's writer, libwebp's
// WebPAnimEncoder), decoded frame by frame and checked pixel by pixel at known spots (disposal 0-3,
// transparency, local palettes, interlace, clipping), frame count, timing and loop count kept through
// a thumbnail and both encoders, and the frame cap and memory budget refusing before any pixel.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "media_support.hpp"
#include "pixflow/tasks/animation.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/thumbnail.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::Bytes;
using pixflow::test::GifFrame;
using pixflow::test::make_gif;
using pixflow::test::solid_gif_frame;

namespace {

// The global palette of the hand-made GIF: index -> colour.
constexpr std::uint8_t kBlack = 0, kRed = 1, kGreen = 2, kBlue = 3, kWhite = 4, kYellow = 5;
const std::vector<GifColorType> kGlobal{{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}, {255, 255, 0}};

const cv::Vec4b kRedPx(0, 0, 255, 255);
const cv::Vec4b kGreenPx(0, 255, 0, 255);
const cv::Vec4b kBluePx(255, 0, 0, 255);
const cv::Vec4b kWhitePx(255, 255, 255, 255);
const cv::Vec4b kYellowPx(0, 255, 255, 255);
const cv::Vec4b kCyanPx(255, 255, 0, 255);
const cv::Vec4b kClear(0, 0, 0, 0);

/// Five frames on a 20x10 screen, each exercising one rule:
///  0: the whole screen red; disposal 1 (keep); 200 ms.
///  1: a green 4x4 square at (5,2) whose centre column x=6 is the transparent index (red shows through);
///     disposal 2 (its rectangle becomes transparent after it); 300 ms.
///  2: a 5x5 square at (10,0) from a local palette (cyan); disposal 3 (the canvas comes back as it was
///     before it); delay 0 -> 100 ms.
///  3: a blue 2x2 square at (0,0); disposal 0; 50 ms.
///  4: an interlaced 4x4 frame at (18,8), half outside the screen: rows yellow, white, green, blue, so
///     the visible rows y=8, 9 show yellow, white only when the passes are put back in order; 70 ms.
Bytes composed_gif(int loop_repeats = 0) {
  GifFrame f0 = solid_gif_frame(0, 0, 20, 10, kRed);
  f0.disposal = DISPOSE_DO_NOT;
  f0.delay_cs = 20;
  GifFrame f1 = solid_gif_frame(5, 2, 4, 4, kGreen);
  for (int y = 0; y < 4; ++y) f1.indices[static_cast<std::size_t>(y * 4 + 1)] = kBlack;
  f1.transparent = kBlack;
  f1.disposal = DISPOSE_BACKGROUND;
  f1.delay_cs = 30;
  GifFrame f2 = solid_gif_frame(10, 0, 5, 5, 1);
  f2.palette = {{255, 0, 255}, {0, 255, 255}};  // local: 1 = cyan
  f2.disposal = DISPOSE_PREVIOUS;
  f2.delay_cs = 0;
  GifFrame f3 = solid_gif_frame(0, 0, 2, 2, kBlue);
  f3.disposal = DISPOSAL_UNSPECIFIED;
  f3.delay_cs = 5;
  GifFrame f4 = solid_gif_frame(18, 8, 4, 4, 0);
  const std::uint8_t rows[4] = {kYellow, kWhite, kGreen, kBlue};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) f4.indices[static_cast<std::size_t>(y * 4 + x)] = rows[y];
  f4.interlace = true;
  f4.delay_cs = 7;
  return make_gif({20, 10}, kGlobal, {f0, f1, f2, f3, f4}, loop_repeats);
}

cv::Vec4b at(const cv::Mat& frame, int x, int y) { return frame.at<cv::Vec4b>(y, x); }

/// Peak resident memory of this process so far, in bytes.
std::size_t peak_rss() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;
}

bool same_frames(const Animation& a, const Animation& b) {
  if (a.frames.size() != b.frames.size()) return false;
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    if (a.frames[i].size() != b.frames[i].size() || a.frames[i].type() != b.frames[i].type()) return false;
    cv::Mat diff;
    cv::absdiff(a.frames[i], b.frames[i], diff);
    if (cv::countNonZero(diff.reshape(1)) != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("decode_animation composes GIF frames as browsers show them", "[animation]") {
  const auto decoded = decode_animation(composed_gif(), Size{256, 256});
  REQUIRE(decoded);
  const Animation& a = *decoded;
  CHECK(a.source_format == ImageFormat::gif);
  CHECK(a.source_size == Size{20, 10});
  CHECK(a.size == Size{20, 10});  // fits the box: kept as is
  REQUIRE(a.frames.size() == 5);
  CHECK(a.delays_ms == std::vector<int>{200, 300, 100, 50, 70});
  CHECK(a.loop_count == 0);
  for (const cv::Mat& f : a.frames) {
    CHECK(f.type() == CV_8UC4);
    CHECK(f.size() == cv::Size(20, 10));
  }

  // 0: red everywhere.
  CHECK(at(a.frames[0], 0, 0) == kRedPx);
  CHECK(at(a.frames[0], 19, 9) == kRedPx);
  // 1: the green square over red; its transparent column shows the red below.
  CHECK(at(a.frames[1], 5, 2) == kGreenPx);
  CHECK(at(a.frames[1], 8, 5) == kGreenPx);
  CHECK(at(a.frames[1], 6, 3) == kRedPx);
  CHECK(at(a.frames[1], 4, 2) == kRedPx);
  // 2: frame 1 disposed to transparent (its rectangle, not the screen), the local cyan square drawn.
  CHECK(at(a.frames[2], 5, 2) == kClear);
  CHECK(at(a.frames[2], 6, 3) == kClear);
  CHECK(at(a.frames[2], 4, 2) == kRedPx);
  CHECK(at(a.frames[2], 10, 0) == kCyanPx);
  CHECK(at(a.frames[2], 14, 4) == kCyanPx);
  CHECK(at(a.frames[2], 15, 4) == kRedPx);
  // 3: frame 2 restored away (red again where cyan was), the hole of frame 1 still there, blue corner.
  CHECK(at(a.frames[3], 10, 0) == kRedPx);
  CHECK(at(a.frames[3], 14, 4) == kRedPx);
  CHECK(at(a.frames[3], 5, 2) == kClear);
  CHECK(at(a.frames[3], 0, 0) == kBluePx);
  CHECK(at(a.frames[3], 1, 1) == kBluePx);
  CHECK(at(a.frames[3], 2, 2) == kRedPx);
  // 4: the interlaced frame clipped to the screen: its first two rows in place, nothing else changed.
  CHECK(at(a.frames[4], 18, 8) == kYellowPx);
  CHECK(at(a.frames[4], 19, 8) == kYellowPx);
  CHECK(at(a.frames[4], 18, 9) == kWhitePx);
  CHECK(at(a.frames[4], 17, 9) == kRedPx);
  CHECK(at(a.frames[4], 0, 0) == kBluePx);
}

TEST_CASE("decode_animation reads the loop count and fits frames to the box", "[animation]") {
  CHECK(decode_animation(composed_gif(2), Size{64, 64})->loop_count == 3);   // 2 repeats: 3 plays
  CHECK(decode_animation(composed_gif(-1), Size{64, 64})->loop_count == 1);  // no NETSCAPE2.0: once

  const auto small = decode_animation(composed_gif(), Size{10, 10});
  REQUIRE(small);
  CHECK(small->size == Size{10, 5});
  CHECK(small->source_size == Size{20, 10});
  REQUIRE(small->frames.size() == 5);
  for (const cv::Mat& f : small->frames) CHECK(f.size() == cv::Size(10, 5));
  // Pixels far from an edge keep their colour through the area filter.
  CHECK(at(small->frames[0], 5, 2) == kRedPx);
  CHECK(at(small->frames[3], 0, 0) == kBluePx);
}

TEST_CASE("fill mode keeps frames large enough to fill the box, then crops every frame alike", "[animation]") {
  const auto kept = decode_animation(composed_gif(), Size{8, 8}, DecodeLimits{}, AnimationLimits{}, ThumbnailMode::fill);
  REQUIRE(kept);
  CHECK(kept->size == Size{16, 8});  // cover_size(20x10, 8x8): uncropped
  const Animation filled = make_animated_thumbnail(*kept, Size{8, 8}, ThumbnailMode::fill);
  CHECK(filled.size == Size{8, 8});
  REQUIRE(filled.frames.size() == 5);
  for (const cv::Mat& f : filled.frames) CHECK(f.size() == cv::Size(8, 8));
  CHECK(at(filled.frames[0], 4, 4) == kRedPx);
  CHECK(filled.delays_ms == kept->delays_ms);
}

TEST_CASE("fill-attention crops every frame where the first frame draws the eye", "[animation]") {
  Animation moving;
  for (const int x : {34, 6}) {  // a red disc on the right of the first frame, on the left of the second
    cv::Mat frame(10, 40, CV_8UC4, cv::Scalar(128, 128, 128, 255));
    cv::circle(frame, {x, 5}, 4, cv::Scalar(0, 0, 255, 255), cv::FILLED);
    moving.frames.push_back(frame);
    moving.delays_ms.push_back(100);
  }
  moving.size = Size{40, 10};
  const cv::Rect region = thumbnail_region(moving.frames[0], Size{10, 10}, ThumbnailMode::fill_attention);
  CHECK(region.contains({34, 5}));
  const Animation cut = make_animated_thumbnail(moving, Size{10, 10}, ThumbnailMode::fill_attention);
  REQUIRE(cut.frames.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    INFO("frame " << i);
    CHECK(cv::norm(cut.frames[i], make_thumbnail(moving.frames[i](region), Size{10, 10}, ThumbnailMode::fill), cv::NORM_INF) == 0.0);
  }
}

TEST_CASE("decode_image gives a GIF's first frame, composed", "[animation][decode]") {
  const auto first = decode_image(composed_gif(), Size{128, 128});
  REQUIRE(first);
  CHECK(first->source_format == ImageFormat::gif);
  CHECK(first->source_size == Size{20, 10});
  CHECK(first->pixels.type() == CV_8UC3);  // fully opaque: BGR
  CHECK(first->pixels.at<cv::Vec3b>(5, 10) == cv::Vec3b(0, 0, 255));

  // A first frame that leaves part of the screen uncovered is transparent there: BGRA.
  GifFrame partial = solid_gif_frame(2, 2, 3, 3, kGreen);
  const auto holed = decode_image(make_gif({8, 8}, kGlobal, {partial}, -1), Size{128, 128});
  REQUIRE(holed);
  CHECK(holed->pixels.type() == CV_8UC4);
  CHECK(holed->pixels.at<cv::Vec4b>(3, 3) == kGreenPx);
  CHECK(holed->pixels.at<cv::Vec4b>(0, 0) == kClear);

  // The fixture's two-frame GIF (red, then blue from a local palette): red.
  const auto fixture = decode_image(pixflow::test::read_bytes(pixflow::test::photo("animation.gif")), Size{128, 128});
  REQUIRE(fixture);
  CHECK(fixture->source_size == Size{64, 64});
  CHECK(fixture->pixels.at<cv::Vec3b>(32, 32) == cv::Vec3b(0, 0, 255));
  const auto both = decode_animation(pixflow::test::read_bytes(pixflow::test::photo("animation.gif")), Size{128, 128});
  REQUIRE(both);
  REQUIRE(both->frames.size() == 2);
  CHECK(at(both->frames[1], 32, 32) == kBluePx);
}

TEST_CASE("media_kind tells still, animated and video bytes apart", "[animation][decode]") {
  CHECK(media_kind(composed_gif()) == MediaKind::animated);
  CHECK(media_kind(make_gif({4, 4}, kGlobal, {solid_gif_frame(0, 0, 4, 4, kRed)}, -1)) == MediaKind::still);
  CHECK(media_kind(pixflow::test::read_bytes(pixflow::test::photo("animation.gif"))) == MediaKind::animated);
  CHECK(media_kind(pixflow::test::read_bytes(pixflow::test::photo("aqua.jpg"))) == MediaKind::still);
  CHECK(media_kind(pixflow::test::read_bytes(pixflow::test::photo("wood.webp"))) == MediaKind::still);
  const cv::Mat red(4, 4, CV_8UC4, cv::Scalar(0, 0, 255, 255));
  const cv::Mat blue(4, 4, CV_8UC4, cv::Scalar(255, 0, 0, 255));
  CHECK(media_kind(pixflow::test::make_animated_webp({red, blue}, {100, 100}, 0)) == MediaKind::animated);
  CHECK(name_of(MediaKind::video) == "video");
}

TEST_CASE("an animated thumbnail keeps frame count, timing and loop count through GIF and WebP", "[animation]") {
  const auto source = decode_animation(composed_gif(2), Size{256, 256});
  REQUIRE(source);

  SECTION("GIF at full size: every pixel back as it was (the exact-palette path)") {
    const auto bytes = encode_animation(*source, ImageFormat::gif);
    REQUIRE(bytes);
    CHECK(sniff_format(*bytes) == ImageFormat::gif);
    const auto again = decode_animation(*bytes, Size{256, 256});
    REQUIRE(again);
    CHECK(again->delays_ms == source->delays_ms);
    CHECK(again->loop_count == 3);
    CHECK(same_frames(*again, *source));
  }
  SECTION("GIF of a thumbnail") {
    const Animation thumb = make_animated_thumbnail(*source, Size{10, 10});
    CHECK(thumb.size == Size{10, 5});
    CHECK(thumb.delays_ms == source->delays_ms);
    const auto bytes = encode_animation(thumb, ImageFormat::gif);
    REQUIRE(bytes);
    const auto again = decode_animation(*bytes, Size{256, 256});
    REQUIRE(again);
    CHECK(again->size == Size{10, 5});
    REQUIRE(again->frames.size() == 5);
    CHECK(again->delays_ms == source->delays_ms);
    CHECK(at(again->frames[0], 5, 2) == kRedPx);
    CHECK(at(again->frames[3], 0, 0) == kBluePx);
  }
  SECTION("animated WebP") {
    const Animation thumb = make_animated_thumbnail(*source, Size{16, 16});
    const auto bytes = encode_animation(thumb, ImageFormat::webp, EncodeOptions{.webp_quality = 90});
    REQUIRE(bytes);
    CHECK(sniff_format(*bytes) == ImageFormat::webp);
    CHECK(media_kind(*bytes) == MediaKind::animated);
    const auto again = decode_animation(*bytes, Size{256, 256});
    REQUIRE(again);
    CHECK(again->size == thumb.size);
    REQUIRE(again->frames.size() == 5);
    CHECK(again->delays_ms == source->delays_ms);
    CHECK(again->loop_count == 3);
    // Lossy: colours within a few levels, transparency kept.
    const cv::Vec4b red = at(again->frames[0], 8, 4);
    CHECK(red[2] > 230);
    CHECK(red[1] < 30);
    CHECK(red[3] == 255);
    const cv::Vec4b hole = at(again->frames[2], 5, 2);  // the transparent square, 16/20 of 5..8 x 2..5
    CHECK(hole[3] < 30);
  }
}

TEST_CASE("encode_animation quantizes many colours to a palette per frame", "[animation]") {
  // A smooth gradient (4096 colours) on two frames, one of them half transparent.
  cv::Mat gradient(64, 64, CV_8UC4);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      gradient.at<cv::Vec4b>(y, x) = cv::Vec4b(static_cast<std::uint8_t>(x * 4), static_cast<std::uint8_t>(y * 4), 128, 255);
  cv::Mat half = gradient.clone();
  half(cv::Rect(0, 0, 32, 64)).setTo(cv::Scalar(0, 0, 0, 0));
  Animation a;
  a.frames = {gradient, half};
  a.delays_ms = {120, 80};
  a.loop_count = 0;
  a.size = Size{64, 64};
  const auto bytes = encode_animation(a, ImageFormat::gif);
  REQUIRE(bytes);
  const auto back = decode_animation(*bytes, Size{64, 64});
  REQUIRE(back);
  REQUIRE(back->frames.size() == 2);
  CHECK(back->delays_ms == std::vector<int>{120, 80});
  CHECK(back->loop_count == 0);
  // Median cut over 255 colours: every pixel within a small distance of its source.
  double worst = 0;
  for (int y = 0; y < 64; ++y)
    for (int x = 32; x < 64; ++x) {
      const cv::Vec4b s = gradient.at<cv::Vec4b>(y, x);
      const cv::Vec4b d = back->frames[0].at<cv::Vec4b>(y, x);
      for (int c = 0; c < 3; ++c) worst = std::max(worst, std::abs(double(s[c]) - double(d[c])));
    }
  CHECK(worst <= 16);
  CHECK(at(back->frames[1], 10, 10) == kClear);
  CHECK(at(back->frames[1], 40, 10)[3] == 255);
}

TEST_CASE("decode_animation reads animated WebP made by WebPAnimEncoder", "[animation]") {
  cv::Mat red(24, 32, CV_8UC4, cv::Scalar(0, 0, 255, 255));
  cv::Mat green(24, 32, CV_8UC4, cv::Scalar(0, 255, 0, 255));
  cv::Mat blue = red.clone();
  blue(cv::Rect(16, 0, 16, 24)).setTo(cv::Scalar(255, 0, 0, 255));
  const Bytes webp = pixflow::test::make_animated_webp({red, green, blue}, {100, 150, 250}, 2);
  CHECK(sniff_format(webp) == ImageFormat::webp);

  const auto a = decode_animation(webp, Size{64, 64});
  REQUIRE(a);
  CHECK(a->source_format == ImageFormat::webp);
  CHECK(a->size == Size{32, 24});
  REQUIRE(a->frames.size() == 3);
  CHECK(a->delays_ms == std::vector<int>{100, 150, 250});
  CHECK(a->loop_count == 2);
  CHECK(at(a->frames[0], 5, 5) == kRedPx);
  CHECK(at(a->frames[1], 5, 5) == kGreenPx);
  CHECK(at(a->frames[2], 5, 5) == kRedPx);
  CHECK(at(a->frames[2], 20, 5) == kBluePx);

  const auto first = decode_image(webp, Size{128, 128});  // today's still path: the first frame
  REQUIRE(first);
  CHECK(first->source_format == ImageFormat::webp);
  CHECK(first->source_size == Size{32, 24});
  CHECK(first->pixels.at<cv::Vec3b>(5, 5) == cv::Vec3b(0, 0, 255));

  const Bytes cut(webp.begin(), webp.begin() + static_cast<std::ptrdiff_t>(webp.size() / 2));
  CHECK(decode_animation(cut, Size{64, 64}).error().reason == "truncated webp");
  CHECK(decode_image(cut, Size{64, 64}).error().reason == "truncated webp");
}

TEST_CASE("a still decodes as a one-frame animation; a video does not", "[animation]") {
  const auto jpeg = decode_animation(pixflow::test::read_bytes(pixflow::test::photo("aqua.jpg")), Size{128, 128});
  REQUIRE(jpeg);
  CHECK(jpeg->source_format == ImageFormat::jpeg);
  CHECK(jpeg->frames.size() == 1);
  CHECK(jpeg->size == Size{128, 80});
  CHECK(jpeg->frames[0].type() == CV_8UC4);
  CHECK(decode_animation({}, Size{8, 8}).error().reason == "empty body");
  const std::string html = "<html></html>";
  CHECK(decode_animation(Bytes(html.begin(), html.end()), Size{8, 8}).error().reason == "not an image");
}

TEST_CASE("truncated and corrupt GIFs give clear reasons", "[animation][decode]") {
  const Bytes gif = composed_gif();
  const auto reason = [](const Bytes& bytes) {
    const auto a = decode_animation(bytes, Size{64, 64});
    const auto still = decode_image(bytes, Size{64, 64});
    REQUIRE_FALSE(a);
    REQUIRE_FALSE(still);
    CHECK(a.error().reason == still.error().reason);
    return a.error().reason;
  };
  for (const std::size_t keep : {std::size_t{8}, std::size_t{20}, gif.size() / 2, gif.size() - 3}) {
    INFO("cut at " << keep << " of " << gif.size());
    CHECK(reason(Bytes(gif.begin(), gif.begin() + static_cast<std::ptrdiff_t>(keep))) == "truncated gif");
  }
  // Not a block where the first one belongs.
  Bytes garbage(gif.begin(), gif.begin() + 13 + 3 * 8);
  for (const int b : {0x99, 0x01, 0x02, 0x03}) garbage.push_back(static_cast<std::uint8_t>(b));
  CHECK(reason(garbage) == "corrupt gif");
  // An LZW code size GIF does not have.
  Bytes bad_code = make_gif({4, 4}, kGlobal, {solid_gif_frame(0, 0, 4, 4, kRed)}, -1);
  const std::size_t image = 13 + 3 * 8 + 8;  // header, screen, palette of 8, graphics control extension
  REQUIRE(bad_code[image] == 0x2C);
  bad_code[image + 10] = 12;
  CHECK(reason(bad_code) == "corrupt gif");
  // LZW data that is not a code stream: giflib refuses it.
  Bytes bad_data = make_gif({4, 4}, kGlobal, {solid_gif_frame(0, 0, 4, 4, kRed)}, -1);
  REQUIRE(bad_data[image + 11] > 1);  // the first data sub-block's length
  for (std::size_t i = image + 12; i < image + 12 + bad_data[image + 11]; ++i) bad_data[i] = 0xFF;
  CHECK(reason(bad_data) == "corrupt gif");
  // A file that ends after its last complete frame without a trailer: kept, as browsers do.
  Bytes no_trailer(gif.begin(), gif.end() - 1);
  const auto kept = decode_animation(no_trailer, Size{64, 64});
  REQUIRE(kept);
  CHECK(kept->frames.size() == 5);
}

TEST_CASE("a 10,000-frame GIF and a huge canvas are refused before any pixel is decoded", "[animation]") {
  std::vector<GifFrame> frames(10'000, solid_gif_frame(0, 0, 1, 1, kRed));
  const Bytes many = make_gif({1, 1}, kGlobal, frames);
  const Bytes huge = make_gif({65535, 65535}, kGlobal, {solid_gif_frame(0, 0, 1, 1, kRed)});
  // Nothing near a refused size is ever allocated: the peak does not move (a loose bound, for the
  // allocator's own slack and a sanitizer's bookkeeping).
  const std::size_t before = peak_rss();
  const auto refused = decode_animation(many, Size{128, 128});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().reason == "too many frames (10000 > 1000)");
  // A 65535x65535 screen: 16 GiB a canvas. A tiny file, refused from its header.
  CHECK(decode_animation(huge, Size{128, 128}).error().reason == "image too large (65535x65535)");
  CHECK(decode_image(huge, Size{128, 128}).error().reason == "image too large (65535x65535)");
  CHECK(peak_rss() - before < std::size_t{64} << 20);

  const auto capped = decode_animation(many, Size{128, 128}, DecodeLimits{}, AnimationLimits{.max_frames = 20'000});
  REQUIRE(capped);  // 10,000 frames of 1x1 are within the memory budget when the cap allows them
  CHECK(capped->frames.size() == 10'000);
  // The still path decodes only the first frame.
  const auto first = decode_image(many, Size{128, 128});
  REQUIRE(first);
  CHECK(first->source_size == Size{1, 1});

  // 300 frames of 256x256 kept at full size: 75 MiB of frames, over a 32 MiB budget; kept at 32x32
  // (1.2 MiB) they fit.
  std::vector<GifFrame> big(300, solid_gif_frame(0, 0, 1, 1, kRed));
  const Bytes wide = make_gif({256, 256}, kGlobal, big);
  const DecodeLimits tight{std::size_t{32} << 20};
  CHECK(decode_animation(wide, Size{256, 256}, tight).error().reason == "animation too large (300 frames of 256x256)");
  const auto fitted = decode_animation(wide, Size{32, 32}, tight);
  REQUIRE(fitted);
  CHECK(fitted->frames.size() == 300);
  CHECK(fitted->size == Size{32, 32});
}

TEST_CASE("encode_animation refuses what it cannot write", "[animation]") {
  Animation empty;
  CHECK(encode_animation(empty, ImageFormat::gif).error().reason == "cannot encode as gif");
  Animation one;
  one.frames = {cv::Mat(4, 4, CV_8UC4, cv::Scalar::all(255))};
  one.delays_ms = {100};
  one.size = Size{4, 4};
  CHECK(encode_animation(one, ImageFormat::jpeg).error().reason == "cannot encode as jpeg");
  Animation mismatched = one;
  mismatched.frames.push_back(cv::Mat(3, 4, CV_8UC4, cv::Scalar::all(255)));
  mismatched.delays_ms.push_back(100);
  CHECK(encode_animation(mismatched, ImageFormat::webp).error().reason == "cannot encode as webp");
  CHECK_THROWS_AS(encode_animation(one, ImageFormat::webp, EncodeOptions{.webp_quality = 0}), std::invalid_argument);
  // BGR frames are taken as opaque BGRA.
  Animation bgr = one;
  bgr.frames = {cv::Mat(4, 4, CV_8UC3, cv::Scalar(0, 0, 255))};
  const auto bytes = encode_animation(bgr, ImageFormat::gif);
  REQUIRE(bytes);
  CHECK(at(decode_animation(*bytes, Size{8, 8})->frames[0], 1, 1) == kRedPx);
}

TEST_CASE("animated_output_format: GIF stays GIF with format same, everything else is WebP", "[animation]") {
  CHECK(animated_output_format(ImageFormat::gif, ImageFormat::same) == ImageFormat::gif);
  CHECK(animated_output_format(ImageFormat::webp, ImageFormat::same) == ImageFormat::webp);
  CHECK(animated_output_format(ImageFormat::gif, ImageFormat::png) == ImageFormat::webp);
  CHECK(animated_output_format(ImageFormat::gif, ImageFormat::jpeg) == ImageFormat::webp);
  CHECK(animated_output_format(ImageFormat::gif, ImageFormat::webp) == ImageFormat::webp);
}

// ---- Costs (hidden: run by hand, `pixflow_tests "[media-cost]"`; they print figures, assert nothing) ----

namespace {

/// A GIF of `frames` frames of `size`, a pan across a real photo, each with its own palette (as GIF
/// makers write them), written by a child process so that making it does not count in this one's peak.
Bytes panning_gif(Size size, int frames) {
  pixflow::test::TempDir dir;
  const auto file = dir / "pan.gif";
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const auto photo = decode_image(pixflow::test::read_bytes(pixflow::test::photo("two-wings.jpg")), Size{4096, 4096});
    cv::Mat wide;
    cv::resize(photo->pixels, wide, cv::Size(size.width * 2, size.height), 0, 0, cv::INTER_AREA);
    cv::cvtColor(wide, wide, cv::COLOR_BGR2BGRA);
    Animation a;
    a.size = size;
    a.loop_count = 0;
    for (int i = 0; i < frames; ++i) {
      const int x = (size.width * i) / std::max(frames, 1);
      a.frames.push_back(wide(cv::Rect(x, 0, size.width, size.height)).clone());
      a.delays_ms.push_back(40);
    }
    const auto bytes = encode_animation(a, ImageFormat::gif);
    if (!bytes) _exit(1);
    pixflow::test::write_text(file, std::string(bytes->begin(), bytes->end()));
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return pixflow::test::read_bytes(file);
}

/// CPU time of this thread so far, in ms: the machine is shared, so wall time says less than CPU time.
double cpu_ms() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return (static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
          static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3);
}

/// Resident memory of this process now, in bytes (/proc/self/statm).
std::size_t current_rss() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

void animated_cost(Size size, int frames, Size box) {
  const Bytes gif = panning_gif(size, frames);
  const std::size_t rss_before = peak_rss();
  const std::size_t rss_now = current_rss();
  const double t0 = cpu_ms();
  const auto decoded = decode_animation(gif, box);
  REQUIRE(decoded);
  const double decode_ms = cpu_ms() - t0;
  const double t1 = cpu_ms();
  const Animation thumb = make_animated_thumbnail(*decoded, box);
  const double thumb_ms = cpu_ms() - t1;
  const double t2 = cpu_ms();
  const auto webp = encode_animation(thumb, ImageFormat::webp);
  REQUIRE(webp);
  const double webp_ms = cpu_ms() - t2;
  const double t3 = cpu_ms();
  const auto out_gif = encode_animation(thumb, ImageFormat::gif);
  REQUIRE(out_gif);
  const double gif_ms = cpu_ms() - t3;
  const std::size_t rss_after = peak_rss();
  const double t4 = cpu_ms();
  const auto still = decode_image(gif, box);
  REQUIRE(still);
  const double still_ms = cpu_ms() - t4;
  const double n = frames;
  WARN(to_string(size) << " x " << frames << " frames (" << gif.size() / 1024 << " KiB) into " << to_string(box)
       << " (CPU ms): decode+compose+resize " << decode_ms / n << " ms/frame, thumbnail copy " << thumb_ms / n
       << " ms/frame, encode webp " << webp_ms / n << " ms/frame (" << webp->size() / 1024 << " KiB), encode gif "
       << gif_ms / n << " ms/frame (" << out_gif->size() / 1024 << " KiB); animate total (webp) "
       << (decode_ms + thumb_ms + webp_ms) / n << " ms/frame; first-frame still " << still_ms
       << " ms; peak RSS " << rss_after / (1024 * 1024) << " MiB: " << (rss_after - rss_now) / (1024 * 1024)
       << " MiB above the RSS before (" << rss_now / (1024 * 1024) << " MiB, the GIF's bytes included; earlier peak "
       << rss_before / (1024 * 1024) << " MiB)");
}

}  // namespace

TEST_CASE("animated cost: 480x270 with 100 frames", "[.][media-cost]") { animated_cost({480, 270}, 100, {128, 128}); }
TEST_CASE("animated cost: the largest case of 800x450 with 1000 frames", "[.][media-cost]") {
  animated_cost({800, 450}, 1000, {256, 256});
}
