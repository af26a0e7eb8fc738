// thumbnail.hpp: fitting and filling, resizing (alpha kept, never upscaled), encoding round trips (no
// metadata unless asked), output formats.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pixflow/tasks/colour.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/thumbnail.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::photo;
using pixflow::test::read_bytes;

namespace {

const std::vector<std::string> photos = {"aqua.jpg",   "dune.jpg",           "fresh-flower.jpg",
                                         "two-wings.jpg", "storm-rotated.jpg", "garden.png",
                                         "ladybird-alpha.png", "wood.webp",   "tiny.jpg"};

DecodedImage decoded(const std::string& name, Size box) {
  auto image = decode_image(read_bytes(photo(name)), box);
  REQUIRE(image.has_value());
  return std::move(image).value();
}

}  // namespace

TEST_CASE("fit_within keeps the aspect ratio, fills the limiting side, never upscales", "[thumbnail]") {
  const Size box{128, 128};
  CHECK(fit_within(Size{1024, 640}, box) == Size{128, 80});    // landscape
  CHECK(fit_within(Size{800, 1200}, box) == Size{85, 128});    // portrait: 85.33 rounds to 85
  CHECK(fit_within(Size{500, 500}, box) == Size{128, 128});    // square
  CHECK(fit_within(Size{96, 60}, box) == Size{96, 60});        // tiny: never upscaled
  CHECK(fit_within(Size{128, 50}, box) == Size{128, 50});      // exactly on the edge
  CHECK(fit_within(Size{10000, 1}, box) == Size{128, 1});      // extreme: width fits, height >= 1
  CHECK(fit_within(Size{1, 10000}, box) == Size{1, 128});
  CHECK(fit_within(Size{1024, 640}, Size{200, 100}) == Size{160, 100});  // height-limited by a wide box
  CHECK(fit_within(Size{1064, 800}, Size{256, 256}) == Size{256, 192});  // 192.48 rounds to 192
  CHECK(fit_within(Size{1000, 1000}, Size{1, 1}) == Size{1, 1});
  CHECK_THROWS_AS(fit_within(Size{0, 10}, box), std::invalid_argument);
  CHECK_THROWS_AS(fit_within(Size{10, 10}, Size{128, 0}), std::invalid_argument);
}

TEST_CASE("make_thumbnail fits each photo in the box, exactly on the long side", "[thumbnail]") {
  for (const Size box : {Size{128, 128}, Size{256, 160}}) {
    for (const auto& name : photos) {
      INFO(name << " into " << to_string(box));
      const DecodedImage image = decoded(name, box);
      const cv::Mat thumb = make_thumbnail(image.pixels, box);
      const Size source = image.source_size;
      REQUIRE(thumb.cols <= box.width);
      REQUIRE(thumb.rows <= box.height);
      CHECK(thumb.channels() == image.pixels.channels());
      if (source.width <= box.width && source.height <= box.height) {
        CHECK(thumb.cols == source.width);  // never upscaled
        CHECK(thumb.rows == source.height);
        continue;
      }
      CHECK((thumb.cols == box.width || thumb.rows == box.height));
      // Aspect ratio within one pixel: the other side matches the source's proportion.
      if (thumb.cols == box.width) {
        CHECK(std::abs(thumb.rows * source.width - source.height * thumb.cols) <= source.width);
      } else {
        CHECK(std::abs(thumb.cols * source.height - source.width * thumb.rows) <= source.height);
      }
    }
  }
}

TEST_CASE("make_thumbnail clones an image that already fits", "[thumbnail]") {
  const DecodedImage tiny = decoded("tiny.jpg", Size{128, 128});
  const cv::Mat thumb = make_thumbnail(tiny.pixels, Size{128, 128});
  CHECK(thumb.data != tiny.pixels.data);
  CHECK(cv::norm(thumb, tiny.pixels, cv::NORM_INF) == 0.0);
}

TEST_CASE("make_thumbnail keeps alpha and does not bleed transparent colour", "[thumbnail]") {
  const DecodedImage ladybird = decoded("ladybird-alpha.png", Size{128, 128});
  const cv::Mat thumb = make_thumbnail(ladybird.pixels, Size{128, 128});
  REQUIRE(thumb.type() == CV_8UC4);
  CHECK(thumb.at<cv::Vec4b>(0, 0)[3] == 0);
  CHECK(thumb.at<cv::Vec4b>(64, 64)[3] == 255);

  // Opaque red on the left, fully transparent green on the right; the boundary falls inside a block.
  cv::Mat image(30, 30, CV_8UC4, cv::Scalar(0, 255, 0, 0));
  image(cv::Rect(0, 0, 16, 30)).setTo(cv::Scalar(0, 0, 255, 255));
  const cv::Mat small = make_thumbnail(image, Size{10, 10});
  REQUIRE(small.size() == cv::Size(10, 10));
  const cv::Vec4b edge = small.at<cv::Vec4b>(5, 5);
  CHECK(edge[3] > 0);
  CHECK(edge[3] < 255);
  CHECK(edge[1] <= 1);    // no green from the transparent side
  CHECK(edge[2] >= 254);  // still fully red where it is visible
}

TEST_CASE("encode_image round-trips every output format", "[thumbnail]") {
  for (const auto& name : photos) {
    const DecodedImage image = decoded(name, Size{160, 160});
    const cv::Mat thumb = make_thumbnail(image.pixels, Size{160, 160});
    for (const ImageFormat format : {ImageFormat::jpeg, ImageFormat::png, ImageFormat::webp}) {
      INFO(name << " as " << name_of(format));
      const auto bytes = encode_image(thumb, format);
      REQUIRE(bytes.has_value());
      CHECK(sniff_format(*bytes) == format);
      const auto back = decode_image(*bytes, Size{160, 160});
      REQUIRE(back.has_value());
      CHECK(back->pixels.cols == thumb.cols);
      CHECK(back->pixels.rows == thumb.rows);
      const int channels = format == ImageFormat::jpeg ? 3 : thumb.channels();
      CHECK(back->pixels.channels() == channels);
    }
  }
}

TEST_CASE("encode_image keeps alpha in PNG/WebP and composites it on white for JPEG", "[thumbnail]") {
  const DecodedImage ladybird = decoded("ladybird-alpha.png", Size{128, 128});
  const cv::Mat thumb = make_thumbnail(ladybird.pixels, Size{128, 128});
  for (const ImageFormat format : {ImageFormat::png, ImageFormat::webp}) {
    INFO(name_of(format));
    const auto back = decode_image(*encode_image(thumb, format), Size{128, 128});
    REQUIRE(back.has_value());
    REQUIRE(back->pixels.channels() == 4);
    CHECK(back->pixels.at<cv::Vec4b>(0, 0)[3] == 0);
    CHECK(back->pixels.at<cv::Vec4b>(64, 64)[3] == 255);
  }
  const auto jpeg = decode_image(*encode_image(thumb, ImageFormat::jpeg), Size{128, 128});
  REQUIRE(jpeg.has_value());
  REQUIRE(jpeg->pixels.channels() == 3);
  const cv::Vec3b corner = jpeg->pixels.at<cv::Vec3b>(0, 0);
  CHECK(corner[0] >= 245);
  CHECK(corner[1] >= 245);
  CHECK(corner[2] >= 245);
}

TEST_CASE("encode_image honours quality and refuses other formats", "[thumbnail]") {
  const DecodedImage aqua = decoded("aqua.jpg", Size{256, 256});
  const cv::Mat thumb = make_thumbnail(aqua.pixels, Size{256, 256});
  const auto low = encode_image(thumb, ImageFormat::jpeg, EncodeOptions{.jpeg_quality = 20});
  const auto high = encode_image(thumb, ImageFormat::jpeg, EncodeOptions{.jpeg_quality = 95});
  REQUIRE(low.has_value());
  REQUIRE(high.has_value());
  CHECK(low->size() < high->size());
  const auto webp_low = encode_image(thumb, ImageFormat::webp, EncodeOptions{.webp_quality = 10});
  const auto webp_high = encode_image(thumb, ImageFormat::webp, EncodeOptions{.webp_quality = 95});
  REQUIRE(webp_low.has_value());
  CHECK(webp_low->size() < webp_high->size());

  CHECK(encode_image(thumb, ImageFormat::gif).error().reason == "cannot encode as gif");
  CHECK(encode_image(thumb, ImageFormat::same).error().reason == "cannot encode as same");
  CHECK(encode_image(cv::Mat(), ImageFormat::png).error().reason == "cannot encode as png");
  CHECK_THROWS_AS(encode_image(thumb, ImageFormat::jpeg, EncodeOptions{.jpeg_quality = 101}), std::invalid_argument);
  CHECK_THROWS_AS(encode_image(thumb, ImageFormat::png, EncodeOptions{.png_compression = 10}), std::invalid_argument);
  CHECK_THROWS_AS(encode_image(thumb, ImageFormat::webp, EncodeOptions{.webp_quality = 0}), std::invalid_argument);
}

TEST_CASE("output_format resolves `same` to a format every browser shows", "[thumbnail]") {
  CHECK(output_format(ImageFormat::jpeg, ImageFormat::same) == ImageFormat::jpeg);
  CHECK(output_format(ImageFormat::png, ImageFormat::same) == ImageFormat::png);
  CHECK(output_format(ImageFormat::webp, ImageFormat::same) == ImageFormat::webp);
  CHECK(output_format(ImageFormat::bmp, ImageFormat::same) == ImageFormat::png);
  CHECK(output_format(ImageFormat::tiff, ImageFormat::same) == ImageFormat::png);
  CHECK(output_format(ImageFormat::gif, ImageFormat::same) == ImageFormat::png);
  CHECK(output_format(ImageFormat::mp4, ImageFormat::same) == ImageFormat::jpeg);  // a poster: a photograph
  CHECK(output_format(ImageFormat::webm, ImageFormat::same) == ImageFormat::jpeg);
  CHECK(output_format(ImageFormat::png, ImageFormat::jpeg) == ImageFormat::jpeg);
  CHECK(output_format(ImageFormat::jpeg, ImageFormat::webp) == ImageFormat::webp);
}

TEST_CASE("cover_size scales to cover the box, never up", "[thumbnail]") {
  const Size box{128, 128};
  CHECK(cover_size(Size{1600, 1000}, box) == Size{205, 128});  // 204.8 rounds to 205
  CHECK(cover_size(Size{800, 1200}, box) == Size{128, 192});
  CHECK(cover_size(Size{500, 500}, box) == Size{128, 128});
  CHECK(cover_size(Size{128, 128}, box) == Size{128, 128});
  CHECK(cover_size(Size{200, 100}, box) == Size{200, 100});    // does not cover: kept, not upscaled
  CHECK(cover_size(Size{10000, 130}, box) == Size{9846, 128});
  CHECK(cover_size(Size{1024, 640}, Size{200, 100}) == Size{200, 125});
  CHECK_THROWS_AS(cover_size(Size{0, 10}, box), std::invalid_argument);
}

TEST_CASE("reduce_factor_for keeps twice the fitted thumbnail (fit) or twice the box's cover (fill)", "[thumbnail][decode]") {
  CHECK(reduce_factor_for(Size{1600, 1000}, Size{128, 128}) == 4);
  CHECK(reduce_factor_for(Size{1600, 1000}, Size{128, 128}, ThumbnailMode::fill) == 2);
  CHECK(reduce_factor_for(Size{4000, 3000}, Size{128, 128}, ThumbnailMode::fill) == 8);
  CHECK(reduce_factor_for(Size{200, 100}, Size{128, 128}, ThumbnailMode::fill) == 1);
  // Every photo decoded for fill keeps at least twice the box's cover when it can.
  for (const auto& name : photos) {
    const auto image = decode_image(read_bytes(photo(name)), Size{128, 128}, {}, ThumbnailMode::fill);
    REQUIRE(image.has_value());
    const Size cover = cover_size(image->source_size, Size{128, 128});
    INFO(name << ": decoded " << image->pixels.cols << "x" << image->pixels.rows << " at 1/" << image->reduce_factor);
    if (image->reduce_factor > 1) {
      CHECK(image->pixels.cols >= 2 * cover.width);
      CHECK(image->pixels.rows >= 2 * cover.height);
    }
  }
}

TEST_CASE("make_thumbnail in fill mode gives exactly the box, cropped around the centre", "[thumbnail]") {
  for (const Size box : {Size{128, 128}, Size{200, 100}, Size{90, 160}}) {
    for (const auto& name : photos) {
      INFO(name << " into " << to_string(box));
      const auto image = decode_image(read_bytes(photo(name)), box, {}, ThumbnailMode::fill);
      REQUIRE(image.has_value());
      const cv::Mat thumb = make_thumbnail(*image, box, ThumbnailMode::fill);
      CHECK(thumb.channels() == image->pixels.channels());
      const Size source{image->pixels.cols, image->pixels.rows};
      if (source.width >= box.width && source.height >= box.height) {
        CHECK(thumb.cols == box.width);
        CHECK(thumb.rows == box.height);
      } else {  // tiny.jpg (96x60): the centre at the box's aspect, not upscaled
        CHECK(thumb.cols <= source.width);
        CHECK(thumb.rows <= source.height);
        CHECK(std::abs(thumb.cols * box.height - thumb.rows * box.width) <= std::max(box.width, box.height));
      }
    }
  }

  // Three vertical bands, blue | green | red: a square fill keeps the middle one, whole.
  cv::Mat bands(100, 300, CV_8UC3, cv::Scalar(255, 0, 0));
  bands(cv::Rect(100, 0, 100, 100)).setTo(cv::Scalar(0, 255, 0));
  bands(cv::Rect(200, 0, 100, 100)).setTo(cv::Scalar(0, 0, 255));
  const cv::Mat square = make_thumbnail(bands, Size{50, 50}, ThumbnailMode::fill);
  REQUIRE(square.size() == cv::Size(50, 50));
  CHECK(cv::norm(square, cv::Mat(50, 50, CV_8UC3, cv::Scalar(0, 255, 0)), cv::NORM_INF) <= 1.0);
  // Wider than the box in one axis only (300x100 into 128x128): not upscaled, the centre 100x100.
  const cv::Mat centre = make_thumbnail(bands, Size{128, 128}, ThumbnailMode::fill);
  REQUIRE(centre.size() == cv::Size(100, 100));
  CHECK(cv::norm(centre, cv::Mat(100, 100, CV_8UC3, cv::Scalar(0, 255, 0)), cv::NORM_INF) == 0.0);
  // Alpha is kept in fill mode too.
  const DecodedImage ladybird = decoded("ladybird-alpha.png", Size{64, 64});
  const cv::Mat cut = make_thumbnail(ladybird.pixels, Size{64, 32}, ThumbnailMode::fill);
  REQUIRE(cut.type() == CV_8UC4);
  CHECK(cut.size() == cv::Size(64, 32));
}

namespace {

/// A flat grey canvas with one disc of `colour` at `centre`.
cv::Mat grey_with_disc(cv::Size size, cv::Point centre, cv::Scalar colour) {
  cv::Mat canvas(size, CV_8UC3, cv::Scalar(128, 128, 128));
  cv::circle(canvas, centre, 20, colour, cv::FILLED);
  return canvas;
}

bool holds(const cv::Rect& region, cv::Point p) { return region.contains(p); }

}  // namespace

TEST_CASE("thumbnail_region: all of it to fit, the centre to fill, where the eye goes to fill-attention", "[thumbnail]") {
  const cv::Mat wide = grey_with_disc({400, 100}, {340, 50}, cv::Scalar(0, 0, 255));  // a red disc on the right
  CHECK(thumbnail_region(wide, Size{50, 50}, ThumbnailMode::fit) == cv::Rect(0, 0, 400, 100));
  const cv::Rect centre = thumbnail_region(wide, Size{50, 50}, ThumbnailMode::fill);
  CHECK(centre == cv::Rect(150, 0, 100, 100));
  CHECK_FALSE(holds(centre, {340, 50}));
  const cv::Rect eye = thumbnail_region(wide, Size{50, 50}, ThumbnailMode::fill_attention);
  CHECK(eye.size() == centre.size());  // the same crop, slid along the free axis
  CHECK(eye.y == 0);
  CHECK(holds(eye, {340 - 20, 50}));  // the whole disc
  CHECK(holds(eye, {340 + 19, 50}));

  // Tall: a skin-toned disc near the top (L* 70, a* 15, b* 20), no saturated colour.
  cv::Mat skin(1, 1, CV_32FC3, cv::Scalar(70, 15, 20));
  cv::cvtColor(skin, skin, cv::COLOR_Lab2BGR);
  const cv::Vec3f tone = skin.at<cv::Vec3f>(0, 0) * 255.0f;
  const cv::Mat tall = grey_with_disc({100, 400}, {50, 60}, cv::Scalar(tone[0], tone[1], tone[2]));
  const cv::Rect up = thumbnail_region(tall, Size{64, 64}, ThumbnailMode::fill_attention);
  CHECK(up.x == 0);
  CHECK(up.size() == cv::Size(100, 100));
  CHECK(holds(up, {50, 60 - 20}));
  CHECK(holds(up, {50, 60 + 19}));

  // Nothing of interest anywhere, or the same on every side: the centre, as `fill`.
  const cv::Mat flat(100, 400, CV_8UC3, cv::Scalar(90, 120, 60));
  CHECK(thumbnail_region(flat, Size{50, 50}, ThumbnailMode::fill_attention) == cv::Rect(150, 0, 100, 100));
  cv::Mat twins = grey_with_disc({400, 100}, {40, 50}, cv::Scalar(0, 0, 255));
  cv::circle(twins, {359, 50}, 20, cv::Scalar(0, 0, 255), cv::FILLED);
  const cv::Rect tie = thumbnail_region(twins, Size{50, 50}, ThumbnailMode::fill_attention);
  CHECK((holds(tie, {40, 50}) || holds(tie, {359, 50})));

  // Transparent pixels draw no eye: a saturated disc that cannot be seen loses to a visible one.
  cv::Mat bgra;
  cv::cvtColor(grey_with_disc({400, 100}, {60, 50}, cv::Scalar(255, 0, 0)), bgra, cv::COLOR_BGR2BGRA);
  for (int y = 0; y < 100; ++y)  // the left half transparent (a plain loop: Mat::forEach runs on OpenCV's threads)
    for (int x = 0; x < 200; ++x) bgra.at<cv::Vec4b>(y, x)[3] = 0;
  cv::circle(bgra, {330, 50}, 12, cv::Scalar(30, 30, 30, 255), cv::FILLED);  // dark, unsaturated: edges only
  CHECK(holds(thumbnail_region(bgra, Size{50, 50}, ThumbnailMode::fill_attention), {330, 50}));

  // A real photo beside a flat wall three times its width: the crop takes the photo.
  const DecodedImage aqua = decoded("aqua.jpg", Size{256, 256});
  cv::Mat wall(aqua.pixels.rows, aqua.pixels.cols * 4, aqua.pixels.type(), cv::Scalar(200, 200, 200));
  aqua.pixels.copyTo(wall(cv::Rect(wall.cols - aqua.pixels.cols, 0, aqua.pixels.cols, aqua.pixels.rows)));
  const cv::Rect photo_part(wall.cols - aqua.pixels.cols, 0, aqua.pixels.cols, aqua.pixels.rows);
  const cv::Rect picked = thumbnail_region(wall, Size{128, 128}, ThumbnailMode::fill_attention);
  CHECK((picked & photo_part).area() >= picked.area() * 9 / 10);
  CHECK((thumbnail_region(wall, Size{128, 128}, ThumbnailMode::fill) & photo_part).area() == 0);
}

TEST_CASE("make_thumbnail in fill-attention mode: exactly the box, from thumbnail_region", "[thumbnail]") {
  const cv::Mat wide = grey_with_disc({400, 100}, {340, 50}, cv::Scalar(0, 0, 255));
  const cv::Mat thumb = make_thumbnail(wide, Size{50, 50}, ThumbnailMode::fill_attention);
  REQUIRE(thumb.size() == cv::Size(50, 50));
  // Scaled to cover first (200x50, the disc at x 170, radius 10), then cropped around the disc: all of it.
  cv::Mat red;
  cv::inRange(thumb, cv::Scalar(0, 0, 250), cv::Scalar(5, 5, 255), red);
  CHECK(cv::countNonZero(red) >= 250);  // pi 10^2 = 314, less the blended rim
  CHECK(cv::countNonZero(red) <= 320);
  for (const Size box : {Size{128, 128}, Size{200, 100}, Size{90, 160}}) {
    for (const auto& name : photos) {
      INFO(name << " into " << to_string(box));
      const auto image = decode_image(read_bytes(photo(name)), box, {}, ThumbnailMode::fill_attention);
      REQUIRE(image.has_value());
      const cv::Mat t = make_thumbnail(*image, box, ThumbnailMode::fill_attention);
      const cv::Mat centred = make_thumbnail(*image, box, ThumbnailMode::fill);
      CHECK(t.size() == centred.size());  // the same size as fill's, whatever it crops
      CHECK(t.type() == centred.type());
    }
  }
  CHECK(parse_mode("fill-attention") == ThumbnailMode::fill_attention);
  CHECK(name_of(ThumbnailMode::fill_attention) == "fill-attention");
  CHECK(fills_box(ThumbnailMode::fill_attention));
  CHECK_FALSE(fills_box(ThumbnailMode::fit));
}

TEST_CASE("A 16-bit PNG keeps its look: the same thumbnail as its 8-bit original", "[thumbnail]") {
  const cv::Mat garden = cv::imread(photo("garden.png").string(), cv::IMREAD_UNCHANGED);
  REQUIRE(garden.type() == CV_8UC3);
  cv::Mat deep;
  garden.convertTo(deep, CV_16U, 257.0);
  std::vector<std::uint8_t> png16;
  REQUIRE(cv::imencode(".png", deep, png16));
  const DecodedImage from16 = [&] {
    auto image = decode_image(png16, Size{128, 128});
    REQUIRE(image.has_value());
    return std::move(image).value();
  }();
  const DecodedImage from8 = decoded("garden.png", Size{128, 128});
  for (const ThumbnailMode mode : {ThumbnailMode::fit, ThumbnailMode::fill}) {
    const cv::Mat a = make_thumbnail(from16, Size{128, 128}, mode);
    const cv::Mat b = make_thumbnail(from8, Size{128, 128}, mode);
    REQUIRE(a.size() == b.size());
    CHECK(cv::norm(a, b, cv::NORM_INF) <= 1.0);
  }
}

TEST_CASE("Thumbnails carry no metadata unless asked; asked, the sRGB profile", "[thumbnail]") {
  // storm-rotated.jpg has EXIF (orientation 6): none of it reaches the thumbnail.
  const DecodedImage storm = decoded("storm-rotated.jpg", Size{128, 128});
  const cv::Mat thumb = make_thumbnail(storm, Size{128, 128});
  const auto contains = [](const std::vector<std::uint8_t>& bytes, std::string_view what) {
    return std::search(bytes.begin(), bytes.end(), what.begin(), what.end()) != bytes.end();
  };
  for (const ImageFormat format : {ImageFormat::jpeg, ImageFormat::png, ImageFormat::webp}) {
    INFO(name_of(format));
    const auto plain = encode_image(thumb, format);
    REQUIRE(plain.has_value());
    for (const char* marker : {"Exif", "ICC_PROFILE", "iCCP", "eXIf", "ICCP", "EXIF", "XMP", "http://ns.adobe.com"})
      CHECK_FALSE(contains(*plain, marker));
    const auto back = decode_image(*plain, Size{128, 128});
    REQUIRE(back.has_value());
    CHECK(back->icc_profile.empty());
    CHECK(back->source_size == Size{thumb.cols, thumb.rows});  // upright, no orientation left to apply

    const auto tagged = encode_image(thumb, format, EncodeOptions{.embed_srgb_profile = true});
    REQUIRE(tagged.has_value());
    const auto tagged_back = decode_image(*tagged, Size{128, 128});
    REQUIRE(tagged_back.has_value());
    const auto srgb = srgb_icc_profile();
    CHECK(tagged_back->icc_profile == std::vector<std::uint8_t>(srgb.begin(), srgb.end()));
    CHECK_FALSE(contains(*tagged, "Exif"));
    // The profile changes nothing: it is the pixels' own colour space.
    CHECK(cv::norm(make_thumbnail(*tagged_back, Size{128, 128}), back->pixels, cv::NORM_INF) <= 1.0);
  }
}
