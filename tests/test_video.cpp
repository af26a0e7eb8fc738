// video.hpp: posters of short clips made here with FFmpeg's own encoders and muxers (MPEG-4 part 2 in
// MP4, VP8 in WebM, a rotated clip, a clip that fades in from black), decoded from memory, and every
// failure reason: truncated and corrupt containers, a codec off the allow-list, the three limits.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "media_support.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/thumbnail.hpp"
#include "pixflow/tasks/video.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::Bytes;
using pixflow::test::ClipSpec;
using pixflow::test::make_clip;
using pixflow::test::red_blue;

namespace {

bool reddish(const cv::Vec3b& p) { return p[2] > 180 && p[1] < 80 && p[0] < 80; }
bool bluish(const cv::Vec3b& p) { return p[0] > 180 && p[1] < 80 && p[2] < 80; }

ClipSpec red_blue_clip(std::string container = "mp4", std::string encoder = "mpeg4") {
  ClipSpec spec;
  spec.container = std::move(container);
  spec.encoder = std::move(encoder);
  spec.picture = [size = spec.size](int) { return red_blue(size); };
  return spec;
}

std::string reason(const Bytes& bytes, VideoLimits limits = {}) {
  const auto poster = decode_video_poster(bytes, Size{64, 64}, limits);
  REQUIRE_FALSE(poster);
  return poster.error().reason;
}

}  // namespace

TEST_CASE("a poster of an MP4 made with FFmpeg's mpeg4 encoder", "[video]") {
  pixflow::test::TempDir dir;
  const Bytes mp4 = make_clip(dir / "clip.mp4", red_blue_clip());
  CHECK(sniff_format(mp4) == ImageFormat::mp4);
  CHECK(media_kind(mp4) == MediaKind::video);

  const auto poster = decode_video_poster(mp4, Size{64, 64});
  REQUIRE(poster);
  CHECK(poster->source_format == ImageFormat::mp4);
  CHECK(poster->source_size == Size{320, 240});
  CHECK(poster->pixels.type() == CV_8UC3);
  CHECK(poster->pixels.size() == cv::Size(128, 96));  // twice the box, aspect kept
  CHECK(reddish(poster->pixels.at<cv::Vec3b>(48, 20)));
  CHECK(bluish(poster->pixels.at<cv::Vec3b>(48, 108)));

  const cv::Mat thumb = make_thumbnail(poster->pixels, Size{64, 64});
  CHECK(thumb.size() == cv::Size(64, 48));

  // Never upscaled: a box larger than the clip keeps its size.
  const auto large = decode_video_poster(mp4, Size{1024, 1024});
  REQUIRE(large);
  CHECK(large->pixels.size() == cv::Size(320, 240));

  // decode_image leaves videos to decode_video_poster.
  CHECK(decode_image(mp4, Size{64, 64}).error().reason == "unsupported format (mp4)");
}

TEST_CASE("a poster of a WebM made with libvpx", "[video]") {
  pixflow::test::TempDir dir;
  const Bytes webm = make_clip(dir / "clip.webm", red_blue_clip("webm", "libvpx"));
  CHECK(sniff_format(webm) == ImageFormat::webm);
  const auto poster = decode_video_poster(webm, Size{160, 160});
  REQUIRE(poster);
  CHECK(poster->source_format == ImageFormat::webm);
  CHECK(poster->source_size == Size{320, 240});
  CHECK(reddish(poster->pixels.at<cv::Vec3b>(120, 40)));
  CHECK(bluish(poster->pixels.at<cv::Vec3b>(120, 280)));
  CHECK(decode_image(webm, Size{64, 64}).error().reason == "unsupported format (webm)");
  // A folder scan sniffs a file's first 32 bytes (sources.cpp): enough for FFmpeg's WebM header.
  CHECK(sniff_format(std::span<const std::uint8_t>(webm.data(), 32)) == ImageFormat::webm);
}

TEST_CASE("a clip that fades in from black gets its first frame that is not blank", "[video]") {
  pixflow::test::TempDir dir;
  ClipSpec spec = red_blue_clip();
  spec.frames = 12;
  spec.picture = [size = spec.size](int i) {
    return i < 5 ? cv::Mat(size.height, size.width, CV_8UC3, cv::Scalar::all(0)) : red_blue(size);
  };
  const auto poster = decode_video_poster(make_clip(dir / "fade.mp4", spec), Size{64, 64});
  REQUIRE(poster);
  CHECK(reddish(poster->pixels.at<cv::Vec3b>(48, 20)));

  // All black for longer than a second: the first frame stands.
  spec.frames = 40;
  spec.picture = [size = spec.size](int) { return cv::Mat(size.height, size.width, CV_8UC3, cv::Scalar::all(0)); };
  const auto black = decode_video_poster(make_clip(dir / "black.mp4", spec), Size{64, 64});
  REQUIRE(black);
  CHECK(black->pixels.at<cv::Vec3b>(48, 64)[2] < 30);
}

TEST_CASE("a rotated clip's poster stands upright", "[video]") {
  pixflow::test::TempDir dir;
  ClipSpec spec = red_blue_clip();
  spec.rotation_cw = 90;  // what a phone held upright writes: show it turned 90 degrees clockwise
  const auto poster = decode_video_poster(make_clip(dir / "phone.mp4", spec), Size{64, 64});
  REQUIRE(poster);
  CHECK(poster->source_size == Size{240, 320});
  CHECK(poster->pixels.size() == cv::Size(96, 128));
  // Turned clockwise, the red left half is on top.
  CHECK(reddish(poster->pixels.at<cv::Vec3b>(20, 48)));
  CHECK(bluish(poster->pixels.at<cv::Vec3b>(108, 48)));
}

TEST_CASE("video posters report failures as values", "[video]") {
  pixflow::test::TempDir dir;
  const Bytes mp4 = make_clip(dir / "clip.mp4", red_blue_clip());

  CHECK(reason({}) == "empty body");
  CHECK(reason(pixflow::test::read_bytes(pixflow::test::photo("aqua.jpg"))) == "not a video");

  SECTION("a download cut short") {
    for (const std::size_t keep : {std::size_t{40}, mp4.size() / 2, mp4.size() - 1}) {
      INFO("cut at " << keep << " of " << mp4.size());
      CHECK(reason(Bytes(mp4.begin(), mp4.begin() + static_cast<std::ptrdiff_t>(keep))) == "truncated mp4");
    }
    const Bytes webm = make_clip(dir / "clip.webm", red_blue_clip("webm", "libvpx"));
    CHECK(reason(Bytes(webm.begin(), webm.begin() + static_cast<std::ptrdiff_t>(webm.size() / 2))) == "truncated webm");
  }
  SECTION("corrupt files") {
    // The nginx fixture's clip.mp4: an ftyp box and nothing else.
    const std::string ftyp = std::string("\0\0\0\x18" "ftypisom\0\0\x02\0isomiso2", 24) + std::string("mp41", 4);
    Bytes only_ftyp(ftyp.begin(), ftyp.end());
    only_ftyp[3] = 0x1C;
    CHECK(sniff_format(only_ftyp) == ImageFormat::mp4);
    CHECK(reason(only_ftyp) == "corrupt mp4");
    // The movie box renamed: no index.
    Bytes no_moov = mp4;
    for (std::size_t i = 4; i + 4 <= no_moov.size(); ++i)
      if (std::string(no_moov.begin() + static_cast<std::ptrdiff_t>(i), no_moov.begin() + static_cast<std::ptrdiff_t>(i) + 4) == "moov") {
        no_moov[i] = 'f', no_moov[i + 1] = 'r', no_moov[i + 2] = 'e', no_moov[i + 3] = 'e';
        break;
      }
    CHECK(reason(no_moov) == "corrupt mp4");
    // Every sample's data zeroed: the index is fine, no frame decodes.
    Bytes blank_data = mp4;
    for (std::size_t i = 4; i + 4 <= blank_data.size(); ++i)
      if (std::string(blank_data.begin() + static_cast<std::ptrdiff_t>(i), blank_data.begin() + static_cast<std::ptrdiff_t>(i) + 4) == "mdat") {
        const std::size_t size = std::size_t{blank_data[i - 4]} << 24 | std::size_t{blank_data[i - 3]} << 16 |
                                 std::size_t{blank_data[i - 2]} << 8 | blank_data[i - 1];
        std::fill(blank_data.begin() + static_cast<std::ptrdiff_t>(i) + 4, blank_data.begin() + static_cast<std::ptrdiff_t>(i - 4 + size), 0);
        break;
      }
    CHECK(reason(blank_data) == "corrupt mp4");
  }
  SECTION("a codec off the allow-list") {
    const Bytes mjpeg = make_clip(dir / "mjpeg.mp4", red_blue_clip("mp4", "mjpeg"));
    CHECK(reason(mjpeg) == "unsupported codec (mjpeg)");
  }
  SECTION("the limits") {
    CHECK(reason(mp4, VideoLimits{.max_bytes = 1000}) == "video too large (more than 1000 bytes)");
    CHECK(reason(mp4, VideoLimits{.max_memory_bytes = 1 << 20}) == "video too large (320x240)");
    CHECK(reason(mp4, VideoLimits{.max_decode_s = 0}) == "video decode timed out (0 s)");
  }
}

TEST_CASE("sniff_format tells MP4, MOV and WebM, not HEIF stills", "[video][decode]") {
  pixflow::test::TempDir dir;
  CHECK(sniff_format(make_clip(dir / "clip.mov", red_blue_clip("mov"))) == ImageFormat::mp4);
  const auto box = [](const char* brand) {
    std::string bytes = std::string("\0\0\0\x18" "ftyp", 8) + brand + std::string("\0\0\0\0", 4) + brand + "mif1";
    return Bytes(bytes.begin(), bytes.end());
  };
  CHECK(sniff_format(box("isom")) == ImageFormat::mp4);
  CHECK(sniff_format(box("qt  ")) == ImageFormat::mp4);
  CHECK(sniff_format(box("heic")) == ImageFormat::unknown);
  CHECK(sniff_format(box("avif")) == ImageFormat::unknown);
  CHECK(sniff_format(box("mif1")) == ImageFormat::unknown);
  // Matroska that is not WebM is not taken.
  const std::string mkv = std::string("\x1A\x45\xDF\xA3\x93\x42\x82\x88", 8) + "matroska" + std::string("\x42\x87\x81\x04", 4);
  CHECK(sniff_format(Bytes(mkv.begin(), mkv.end())) == ImageFormat::unknown);
  CHECK(name_of(ImageFormat::mp4) == "mp4");
  CHECK(extension_of(ImageFormat::webm) == ".webm");
}

// ---- Costs (hidden: run by hand, `pixflow_tests "[media-cost]"`; they print figures, assert nothing) ----

namespace {

void poster_cost(const std::string& encoder, Size size, int seconds, bool fade_in) {
  pixflow::test::TempDir dir;
  const auto photo = decode_image(pixflow::test::read_bytes(pixflow::test::photo("two-wings.jpg")), Size{4096, 4096});
  REQUIRE(photo);
  cv::Mat wide;
  cv::resize(photo->pixels, wide, cv::Size(size.width * 5 / 4, size.height), 0, 0, cv::INTER_AREA);
  ClipSpec spec;
  spec.encoder = encoder;
  spec.size = size;
  spec.fps = 30;
  spec.frames = 30 * seconds;
  spec.gop = 250;  // x264's default: one keyframe in a 5 s clip
  spec.bit_rate = 8'000'000;
  spec.picture = [&](int i) -> cv::Mat {
    if (fade_in && i < 30) return cv::Mat(size.height, size.width, CV_8UC3, cv::Scalar::all(0));
    const int x = (size.width / 4) * i / spec.frames;
    return wide(cv::Rect(x, 0, size.width, size.height)).clone();
  };
  const Bytes clip = make_clip(dir / "clip.mp4", spec);
  // CPU time of this thread (the machine is shared: wall time says less), and wall time.
  const auto cpu_ms = [] {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
  };
  std::vector<double> cpu;
  std::vector<double> wall;
  for (int run = 0; run < 7; ++run) {
    const double c0 = cpu_ms();
    const auto start = std::chrono::steady_clock::now();
    const auto poster = decode_video_poster(clip, Size{128, 128});
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    cpu.push_back(cpu_ms() - c0);
    REQUIRE(poster);
  }
  std::sort(cpu.begin(), cpu.end());
  std::sort(wall.begin(), wall.end());
  WARN(encoder << " " << to_string(size) << " " << seconds << " s (" << clip.size() / 1024 << " KiB)"
               << (fade_in ? ", first second black" : "") << ": poster " << cpu[cpu.size() / 2]
               << " ms CPU (median of 7, min " << cpu.front() << "), wall median " << wall[wall.size() / 2] << " ms");
}

}  // namespace

TEST_CASE("poster cost: 1080p 5 s clips", "[.][media-cost]") {
  poster_cost("libx264", {1920, 1080}, 5, false);
  poster_cost("libx264", {1920, 1080}, 5, true);
  poster_cost("mpeg4", {1920, 1080}, 5, false);
}

// The fixture's tests/fixtures/photos/clip.mp4, made again: `pixflow_tests "[.fixture-clip]"` writes it
// to the working folder (libx264: the codec of nearly every MP4 on Imgur).
TEST_CASE("the fixture clip: aqua.jpg panned, H.264 in MP4", "[.fixture-clip]") {
  cv::Mat photo = cv::imread(pixflow::test::photo("aqua.jpg").string(), cv::IMREAD_COLOR);
  REQUIRE_FALSE(photo.empty());
  cv::Mat small;
  cv::resize(photo, small, cv::Size(480, 300), 0, 0, cv::INTER_AREA);
  ClipSpec spec;
  spec.encoder = "libx264";
  spec.size = {320, 200};
  spec.frames = 24;
  spec.fps = 12;
  spec.gop = 24;
  spec.bit_rate = 300'000;
  spec.picture = [&](int i) { return small(cv::Rect(i * 6, 50, 320, 200)).clone(); };
  const Bytes clip = make_clip("clip.mp4", spec);
  CHECK(media_kind(clip) == MediaKind::video);
}
