// colour.hpp: embedded ICC profiles (JPEG APP2, PNG iCCP, WebP ICCP) converted to sRGB, checked against
// LittleCMS's own conversion of the same pixels (mean colour within ΔE 2); CMYK JPEGs (plain, Adobe's
// inverted, YCCK, with and without a profile); grey profiles; broken profiles; the sRGB profile embedded.
// Every file is made here from the sample photos, with LittleCMS, libjpeg and libpng.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <jpeglib.h>
#include <lcms2.h>
#include <png.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pixflow/tasks/colour.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/pipeline.hpp"
#include "pixflow/tasks/thumbnail.hpp"
#include "support.hpp"

using namespace pixflow::tasks;
using pixflow::test::photo;
using pixflow::test::read_bytes;
using pixflow::test::TempDir;

namespace {

using Bytes = std::vector<std::uint8_t>;

// --- profiles -------------------------------------------------------------------------------------

/// A LittleCMS profile handle, closed on destruction.
struct Profile {
  cmsHPROFILE handle;
  explicit Profile(cmsHPROFILE h) : handle(h) { REQUIRE(handle != nullptr); }
  ~Profile() { cmsCloseProfile(handle); }
  Profile(const Profile&) = delete;
  Profile& operator=(const Profile&) = delete;
  [[nodiscard]] Bytes bytes() const {
    cmsUInt32Number size = 0;
    REQUIRE(cmsSaveProfileToMem(handle, nullptr, &size));
    Bytes out(size);
    REQUIRE(cmsSaveProfileToMem(handle, out.data(), &size));
    return out;
  }
};

/// A matrix/TRC RGB profile with D65 white (as phones and cameras embed them).
cmsHPROFILE rgb_profile(cmsCIExyY red, cmsCIExyY green, cmsCIExyY blue, cmsToneCurve* curve) {
  const cmsCIExyY d65{0.3127, 0.3290, 1.0};
  const cmsCIExyYTRIPLE primaries{red, green, blue};
  cmsToneCurve* curves[3] = {curve, curve, curve};
  cmsHPROFILE profile = cmsCreateRGBProfile(&d65, &primaries, curves);
  cmsFreeToneCurve(curve);
  return profile;
}

/// Display P3: DCI-P3 primaries, D65, the sRGB tone curve (what iPhones embed).
cmsHPROFILE display_p3() {
  const double srgb_curve[5] = {2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045};
  return rgb_profile({0.680, 0.320, 1.0}, {0.265, 0.690, 1.0}, {0.150, 0.060, 1.0},
                     cmsBuildParametricToneCurve(nullptr, 4, srgb_curve));
}

/// Adobe RGB (1998): its primaries, D65, gamma 563/256.
cmsHPROFILE adobe_rgb() {
  return rgb_profile({0.64, 0.33, 1.0}, {0.21, 0.71, 1.0}, {0.15, 0.06, 1.0}, cmsBuildGamma(nullptr, 563.0 / 256.0));
}

/// A grey profile with a linear tone curve: grey 128 is half the light, sRGB ~188.
cmsHPROFILE linear_grey() {
  cmsToneCurve* linear = cmsBuildGamma(nullptr, 1.0);
  cmsHPROFILE profile = cmsCreateGrayProfile(cmsD50_xyY(), linear);
  cmsFreeToneCurve(linear);
  return profile;
}

/// The CLUT of a made-up CMYK printer: the naive conversion, but with a yellowish cast and darker
/// shadows, so that a result through the profile is told apart from the naive one.
cmsInt32Number cmyk_sampler(const cmsUInt16Number in[], cmsUInt16Number out[], void* cargo) {
  auto* to_lab = static_cast<cmsHTRANSFORM>(cargo);
  const double white = 1.0 - in[3] / 65535.0;
  double rgb[3];
  for (int i = 0; i < 3; ++i) rgb[i] = std::pow((1.0 - in[i] / 65535.0) * white, 1.3);
  rgb[2] *= 0.8;
  cmsCIELab lab;
  cmsDoTransform(to_lab, rgb, &lab, 1);
  cmsFloat2LabEncoded(out, &lab);
  return TRUE;
}

/// A CMYK input profile (AToB0: CMYK -> Lab through a 9-point CLUT), as a press profile would be.
cmsHPROFILE made_up_cmyk() {
  cmsHPROFILE srgb = cmsCreate_sRGBProfile();
  cmsHPROFILE lab = cmsCreateLab4Profile(nullptr);
  cmsHTRANSFORM to_lab = cmsCreateTransform(srgb, TYPE_RGB_DBL, lab, TYPE_Lab_DBL, INTENT_RELATIVE_COLORIMETRIC, 0);
  cmsCloseProfile(srgb);
  cmsCloseProfile(lab);
  cmsHPROFILE profile = cmsCreateProfilePlaceholder(nullptr);
  cmsSetProfileVersion(profile, 4.3);
  cmsSetDeviceClass(profile, cmsSigOutputClass);
  cmsSetColorSpace(profile, cmsSigCmykData);
  cmsSetPCS(profile, cmsSigLabData);
  cmsPipeline* lut = cmsPipelineAlloc(nullptr, 4, 3);
  cmsStage* clut = cmsStageAllocCLut16bit(nullptr, 9, 4, 3, nullptr);
  cmsStageSampleCLut16bit(clut, cmyk_sampler, to_lab, 0);
  // lutAtoBType allows A curves, CLUT, B curves: identity curves around the CLUT.
  cmsPipelineInsertStage(lut, cmsAT_END, cmsStageAllocToneCurves(nullptr, 4, nullptr));
  cmsPipelineInsertStage(lut, cmsAT_END, clut);
  cmsPipelineInsertStage(lut, cmsAT_END, cmsStageAllocToneCurves(nullptr, 3, nullptr));
  cmsWriteTag(profile, cmsSigAToB0Tag, lut);
  cmsWriteTag(profile, cmsSigMediaWhitePointTag, cmsD50_XYZ());
  cmsMLU* description = cmsMLUalloc(nullptr, 1);
  cmsMLUsetASCII(description, "en", "US", "pixflow test CMYK");
  cmsWriteTag(profile, cmsSigProfileDescriptionTag, description);
  cmsMLUfree(description);
  cmsPipelineFree(lut);
  cmsDeleteTransform(to_lab);
  return profile;
}

/// `pixels` (8-bit, `in_format`) converted to 8-bit sRGB (`out_format`) by LittleCMS itself, with the
/// intent and flags colour.hpp documents: relative colorimetric, black-point compensation.
cv::Mat lcms_to_srgb(const cv::Mat& pixels, const Bytes& icc, cmsUInt32Number in_format, int out_type,
                     cmsUInt32Number out_format) {
  Profile source(cmsOpenProfileFromMem(icc.data(), static_cast<cmsUInt32Number>(icc.size())));
  Profile srgb(cmsCreate_sRGBProfile());
  cmsHTRANSFORM transform = cmsCreateTransform(source.handle, in_format, srgb.handle, out_format,
                                               INTENT_RELATIVE_COLORIMETRIC, cmsFLAGS_BLACKPOINTCOMPENSATION);
  REQUIRE(transform != nullptr);
  cv::Mat out(pixels.size(), out_type);
  for (int y = 0; y < pixels.rows; ++y)
    cmsDoTransform(transform, pixels.ptr(y), out.ptr(y), static_cast<cmsUInt32Number>(pixels.cols));
  cmsDeleteTransform(transform);
  return out;
}

/// sRGB `pixels` (BGR) -> the profile's space: how the test files are made from the sample photos.
cv::Mat from_srgb(const cv::Mat& bgr, const Bytes& icc) {
  Profile srgb(cmsCreate_sRGBProfile());
  Profile target(cmsOpenProfileFromMem(icc.data(), static_cast<cmsUInt32Number>(icc.size())));
  cmsHTRANSFORM transform =
      cmsCreateTransform(srgb.handle, TYPE_BGR_8, target.handle, TYPE_BGR_8, INTENT_RELATIVE_COLORIMETRIC, 0);
  REQUIRE(transform != nullptr);
  cv::Mat out(bgr.size(), CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y) cmsDoTransform(transform, bgr.ptr(y), out.ptr(y), static_cast<cmsUInt32Number>(bgr.cols));
  cmsDeleteTransform(transform);
  return out;
}

/// The mean colour of sRGB BGR(A) pixels, in CIE Lab (D50).
cmsCIELab mean_lab(const cv::Mat& bgr) {
  const cv::Scalar mean = cv::mean(bgr);
  const double rgb[3] = {mean[2] / 255.0, mean[1] / 255.0, mean[0] / 255.0};
  Profile srgb(cmsCreate_sRGBProfile());
  Profile lab(cmsCreateLab4Profile(nullptr));
  cmsHTRANSFORM to_lab = cmsCreateTransform(srgb.handle, TYPE_RGB_DBL, lab.handle, TYPE_Lab_DBL, INTENT_RELATIVE_COLORIMETRIC, 0);
  cmsCIELab out;
  cmsDoTransform(to_lab, rgb, &out, 1);
  cmsDeleteTransform(to_lab);
  return out;
}

double delta_e(const cv::Mat& a, const cv::Mat& b) {
  const cmsCIELab la = mean_lab(a);
  const cmsCIELab lb = mean_lab(b);
  return cmsDeltaE(&la, &lb);
}

// --- files ----------------------------------------------------------------------------------------

/// A JPEG written by libjpeg from `samples` (BGR, grey, or CMYK samples as given), with `icc` embedded
/// (jpeg_write_icc_profile) when not empty. CMYK: stored as `space` (JCS_CMYK or JCS_YCCK), with or
/// without Adobe's APP14 marker.
Bytes libjpeg_encode(const cv::Mat& samples, const Bytes& icc = {}, J_COLOR_SPACE space = JCS_UNKNOWN,
                     bool adobe_marker = true) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buffer, &size);
  c.image_width = static_cast<JDIMENSION>(samples.cols);
  c.image_height = static_cast<JDIMENSION>(samples.rows);
  c.input_components = samples.channels();
  c.in_color_space = samples.channels() == 1 ? JCS_GRAYSCALE : samples.channels() == 3 ? JCS_EXT_BGR : JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 95, TRUE);
  if (samples.channels() == 4) {
    jpeg_set_colorspace(&c, space);
    c.write_Adobe_marker = adobe_marker ? TRUE : FALSE;
  }
  jpeg_start_compress(&c, TRUE);
  if (!icc.empty()) jpeg_write_icc_profile(&c, icc.data(), static_cast<unsigned int>(icc.size()));
  while (c.next_scanline < c.image_height) {
    JSAMPROW row[1] = {const_cast<JSAMPLE*>(samples.ptr<JSAMPLE>(static_cast<int>(c.next_scanline)))};  // NOLINT
    jpeg_write_scanlines(&c, row, 1);
  }
  jpeg_finish_compress(&c);
  Bytes out(buffer, buffer + size);
  jpeg_destroy_compress(&c);
  std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): jpeg_mem_dest's buffer
  return out;
}

/// A CMYK JPEG's samples as libjpeg hands them out (JCS_CMYK, full size), whatever their convention.
cv::Mat libjpeg_cmyk_samples(const Bytes& jpeg) {
  jpeg_decompress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, jpeg.data(), static_cast<unsigned long>(jpeg.size()));
  jpeg_read_header(&c, TRUE);
  c.out_color_space = JCS_CMYK;
  jpeg_start_decompress(&c);
  cv::Mat out(static_cast<int>(c.output_height), static_cast<int>(c.output_width), CV_8UC4);
  while (c.output_scanline < c.output_height) {
    JSAMPROW row[1] = {out.ptr<JSAMPLE>(static_cast<int>(c.output_scanline))};
    jpeg_read_scanlines(&c, row, 1);
  }
  jpeg_finish_decompress(&c);
  jpeg_destroy_decompress(&c);
  return out;
}

/// Plain CMYK samples (0 = no ink) for sRGB `bgr`: K from the brightest channel, the naive inverse.
cv::Mat plain_cmyk_of(const cv::Mat& bgr) {
  cv::Mat cmyk(bgr.size(), CV_8UC4);
  for (int y = 0; y < bgr.rows; ++y) {
    for (int x = 0; x < bgr.cols; ++x) {
      const cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
      const int top = std::max({p[0], p[1], p[2]});
      cv::Vec4b& out = cmyk.at<cv::Vec4b>(y, x);
      for (int i = 0; i < 3; ++i)  // C from R, M from G, Y from B
        out[i] = static_cast<std::uint8_t>(top == 0 ? 0 : 255 - (p[2 - i] * 255 + top / 2) / top);
      out[3] = static_cast<std::uint8_t>(255 - top);
    }
  }
  return cmyk;
}

/// A PNG written by libpng from BGR(A)/grey(+alpha) 8- or 16-bit `pixels`, with an iCCP chunk when
/// `icc` is not empty.
Bytes libpng_encode(const cv::Mat& pixels, const Bytes& icc = {}) {
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
  const int channels = pixels.channels();
  const int color_type = channels == 1   ? PNG_COLOR_TYPE_GRAY
                         : channels == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                         : channels == 3 ? PNG_COLOR_TYPE_RGB
                                         : PNG_COLOR_TYPE_RGB_ALPHA;
  const int depth = pixels.depth() == CV_16U ? 16 : 8;
  png_set_IHDR(png, info, static_cast<png_uint_32>(pixels.cols), static_cast<png_uint_32>(pixels.rows), depth,
               color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!icc.empty()) png_set_iCCP(png, info, "test", 0, icc.data(), static_cast<png_uint_32>(icc.size()));
  png_write_info(png, info);
  if (channels >= 3) png_set_bgr(png);
  if (depth == 16) png_set_swap(png);  // host (little-endian) order in the matrix
  std::vector<png_bytep> rows;
  for (int y = 0; y < pixels.rows; ++y) rows.push_back(const_cast<png_bytep>(pixels.ptr<png_byte>(y)));  // NOLINT
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

cv::Mat sample_photo(const std::string& name) {
  cv::Mat bgr = cv::imread(photo(name).string(), cv::IMREAD_COLOR);
  REQUIRE_FALSE(bgr.empty());
  return bgr;
}

DecodedImage decoded(const Bytes& bytes, Size box = Size{4096, 4096}) {
  auto image = decode_image(bytes, box);
  REQUIRE(image.has_value());
  return std::move(image).value();
}

/// The check the issue asks for: the thumbnail of `bytes` (decoded for `box`, resized, converted) has
/// the mean colour of LittleCMS's own conversion of the full-size pixels, within ΔE 2; and without the
/// conversion it would not (the test would prove nothing otherwise).
void check_thumbnail_colour(const Bytes& bytes, const Bytes& icc, const std::string& what) {
  const Size box{128, 128};
  const DecodedImage small = decoded(bytes, box);
  REQUIRE(small.icc_profile == icc);
  const cv::Mat thumbnail = make_thumbnail(small, box);
  const DecodedImage full = decoded(bytes);
  const cv::Mat reference = lcms_to_srgb(full.pixels, icc, TYPE_BGR_8, CV_8UC3, TYPE_BGR_8);
  const double converted = delta_e(thumbnail, reference);
  const double unconverted = delta_e(make_thumbnail(small.pixels, box), reference);
  // Measured: ΔE 0.02 .. 0.17 converted, 6.5 .. 14 unconverted (fresh-flower, garden, two-wings).
  INFO(what << ": mean colour ΔE " << converted << " (" << unconverted << " without the conversion)");
  CHECK(converted < 2.0);
  CHECK(unconverted > 2.0);
}

}  // namespace

TEST_CASE("A JPEG in Display P3 or Adobe RGB gets the mean colour of LittleCMS's conversion, within ΔE 2", "[colour]") {
  const Profile p3(display_p3());
  const Profile adobe(adobe_rgb());
  for (const char* name : {"fresh-flower.jpg", "garden.png", "two-wings.jpg"}) {
    const cv::Mat srgb = sample_photo(name);
    for (const auto* profile : {&p3, &adobe}) {
      const Bytes icc = profile->bytes();
      const Bytes jpeg = libjpeg_encode(from_srgb(srgb, icc), icc);
      check_thumbnail_colour(jpeg, icc, std::string(name) + (profile == &p3 ? " in Display P3" : " in Adobe RGB"));
    }
  }
}

TEST_CASE("PNG iCCP (8- and 16-bit) and WebP ICCP profiles are converted too", "[colour]") {
  const Profile p3(display_p3());
  const Bytes icc = p3.bytes();
  const cv::Mat wide = from_srgb(sample_photo("fresh-flower.jpg"), icc);
  check_thumbnail_colour(libpng_encode(wide, icc), icc, "PNG iCCP");
  cv::Mat deep;
  wide.convertTo(deep, CV_16U, 257.0);
  check_thumbnail_colour(libpng_encode(deep, icc), icc, "16-bit PNG iCCP");
  Bytes webp;
  REQUIRE(cv::imencode(".webp", wide, webp, std::vector<int>{cv::IMWRITE_WEBP_QUALITY, 95}));
  const auto tagged = embed_icc_profile(webp, ImageFormat::webp, icc);
  REQUIRE(tagged.has_value());
  check_thumbnail_colour(*tagged, icc, "WebP ICCP");
}

TEST_CASE("The pipeline writes thumbnails of a Display P3 JPEG in sRGB", "[colour][pipeline]") {
  const Profile p3(display_p3());
  const Bytes icc = p3.bytes();
  TempDir in;
  TempDir out;
  const Bytes jpeg = libjpeg_encode(from_srgb(sample_photo("fresh-flower.jpg"), icc), icc);
  pixflow::test::write_text(in / "p3.jpg", std::string(jpeg.begin(), jpeg.end()));
  PipelineOptions options;
  options.out = out.path();
  options.save_originals = false;
  options.config.threads = 2;
  const PipelineReport report = run_pipeline(FolderSource{in.path()}, options);
  REQUIRE(report.count(ItemStatus::ok) == 1);
  const DecodedImage thumbnail = decoded(read_bytes(out / "p3_thumbnail.jpg"));
  CHECK(thumbnail.icc_profile.empty());  // no metadata unless thumbnail.keep_metadata
  const cv::Mat reference = lcms_to_srgb(decoded(jpeg).pixels, icc, TYPE_BGR_8, CV_8UC3, TYPE_BGR_8);
  const double error = delta_e(thumbnail.pixels, reference);
  INFO("ΔE " << error);
  CHECK(error < 2.0);
}

TEST_CASE("CMYK JPEGs come out right: plain, Adobe's inverted CMYK and YCCK, without a profile", "[colour]") {
  cv::Mat photo_bgr;
  cv::resize(sample_photo("fresh-flower.jpg"), photo_bgr, cv::Size(320, 240), 0, 0, cv::INTER_AREA);
  const cv::Mat plain = plain_cmyk_of(photo_bgr);
  cv::Mat inverted;
  cv::bitwise_not(plain, inverted);
  struct Case {
    const char* name;
    Bytes jpeg;
  };
  const Case cases[] = {
      {"plain CMYK (no Adobe marker)", libjpeg_encode(plain, {}, JCS_CMYK, false)},
      {"Adobe inverted CMYK", libjpeg_encode(inverted, {}, JCS_CMYK, true)},
      {"Adobe inverted YCCK", libjpeg_encode(inverted, {}, JCS_YCCK, true)},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const DecodedImage image = decoded(c.jpeg);
    REQUIRE(image.pixels.type() == CV_8UC3);
    CHECK(image.icc_profile.empty());
    // The naive conversion inverts plain_cmyk_of up to JPEG's loss: close to the photo, pixel by pixel.
    cv::Mat difference;
    cv::absdiff(image.pixels, photo_bgr, difference);
    const cv::Scalar mean_difference = cv::mean(difference);
    CHECK(mean_difference[0] + mean_difference[1] + mean_difference[2] < 3 * 4.0);
    CHECK(delta_e(image.pixels, photo_bgr) < 2.0);
  }
}

TEST_CASE("A CMYK JPEG with a CMYK profile is converted through it (plain and Adobe-inverted)", "[colour]") {
  const Profile cmyk_profile(made_up_cmyk());
  const Bytes icc = cmyk_profile.bytes();
  cv::Mat photo_bgr;
  cv::resize(sample_photo("garden.png"), photo_bgr, cv::Size(320, 200), 0, 0, cv::INTER_AREA);
  const cv::Mat plain = plain_cmyk_of(photo_bgr);
  cv::Mat inverted;
  cv::bitwise_not(plain, inverted);
  for (const bool adobe : {false, true}) {
    INFO((adobe ? "Adobe-inverted" : "plain"));
    const Bytes jpeg = libjpeg_encode(adobe ? inverted : plain, icc, JCS_CMYK, adobe);
    const DecodedImage image = decoded(jpeg);
    CHECK(image.icc_profile.empty());  // the pixels are sRGB now
    const cv::Mat samples = libjpeg_cmyk_samples(jpeg);
    const cv::Mat reference =
        lcms_to_srgb(samples, icc, adobe ? TYPE_CMYK_8_REV : TYPE_CMYK_8, CV_8UC3, TYPE_BGR_8);
    CHECK(cv::norm(image.pixels, reference, cv::NORM_INF) <= 1.0);
    // Not the naive conversion: the profile's yellow cast and darker shadows are there.
    CHECK(delta_e(image.pixels, photo_bgr) > 3.0);
  }
}

TEST_CASE("Grey images keep their look; a grey profile converts them as grey", "[colour]") {
  const Profile grey_profile(linear_grey());
  const Bytes icc = grey_profile.bytes();
  cv::Mat grey(60, 80, CV_8UC1);
  for (int y = 0; y < grey.rows; ++y)
    for (int x = 0; x < grey.cols; ++x) grey.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(x * 3);
  cv::Mat expected_row(1, 256, CV_8UC1);
  for (int v = 0; v < 256; ++v) expected_row.at<std::uint8_t>(0, v) = static_cast<std::uint8_t>(v);
  const cv::Mat expected = lcms_to_srgb(expected_row, icc, TYPE_GRAY_8, CV_8UC3, TYPE_BGR_8);
  CHECK(expected.at<cv::Vec3b>(0, 128)[1] > 180);  // linear 50 % is light grey in sRGB
  const auto check_grey = [&](const cv::Mat& pixels, const cv::Mat& source) {
    for (int y = 0; y < pixels.rows; ++y) {
      for (int x = 0; x < pixels.cols; ++x) {
        const auto* p = pixels.ptr<std::uint8_t>(y) + x * pixels.channels();
        const int value = source.at<std::uint8_t>(y, x);
        const cv::Vec3b want = expected.at<cv::Vec3b>(0, value);
        for (int i = 0; i < 3; ++i) REQUIRE(std::abs(p[i] - want[i]) <= 1);
      }
    }
  };

  SECTION("a grey JPEG without a profile is unchanged") {
    const DecodedImage image = decoded(libjpeg_encode(grey));
    const cv::Mat thumb = make_thumbnail(image, Size{128, 128});
    CHECK(cv::norm(thumb, image.pixels, cv::NORM_INF) == 0.0);
  }
  SECTION("a grey JPEG with a grey profile: neutral, as LittleCMS converts it") {
    const DecodedImage image = decoded(libjpeg_encode(grey, icc));
    REQUIRE(image.icc_profile == icc);
    const cv::Mat thumb = make_thumbnail(image, Size{128, 128});
    REQUIRE(thumb.type() == CV_8UC3);
    cv::Mat stored;  // what the decoder read, before conversion (JPEG's loss included)
    cv::extractChannel(image.pixels, stored, 0);
    check_grey(thumb, stored);
  }
  SECTION("a grey+alpha PNG with a grey profile keeps its alpha") {
    cv::Mat grey_alpha(grey.size(), CV_8UC2);
    const int from_to[] = {0, 0, 0, 1};
    cv::mixChannels(&grey, 1, &grey_alpha, 1, from_to, 2);  // alpha = the grey value
    const DecodedImage image = decoded(libpng_encode(grey_alpha, icc));
    REQUIRE(image.pixels.type() == CV_8UC4);
    REQUIRE(image.icc_profile == icc);
    cv::Mat thumb = image.pixels.clone();
    REQUIRE(convert_to_srgb(thumb, icc).ok());
    REQUIRE(thumb.type() == CV_8UC4);
    cv::Mat alpha;
    cv::extractChannel(thumb, alpha, 3);
    CHECK(cv::norm(alpha, grey, cv::NORM_INF) == 0.0);
    check_grey(thumb, grey);
  }
}

TEST_CASE("convert_to_srgb keeps alpha and leaves pixels alone on a broken or foreign profile", "[colour]") {
  const Profile p3(display_p3());
  const Bytes icc = p3.bytes();
  const cv::Mat wide = from_srgb(sample_photo("aqua.jpg"), icc);

  SECTION("BGRA: colour converted, alpha copied") {
    cv::Mat bgra;
    cv::cvtColor(wide, bgra, cv::COLOR_BGR2BGRA);
    for (int y = 0; y < bgra.rows; ++y) bgra.at<cv::Vec4b>(y, y % bgra.cols)[3] = static_cast<std::uint8_t>(y % 256);
    cv::Mat converted = bgra.clone();
    REQUIRE(convert_to_srgb(converted, icc).ok());
    cv::Mat alpha_before;
    cv::Mat alpha_after;
    cv::extractChannel(bgra, alpha_before, 3);
    cv::extractChannel(converted, alpha_after, 3);
    CHECK(cv::norm(alpha_before, alpha_after, cv::NORM_INF) == 0.0);
    const cv::Mat reference = lcms_to_srgb(bgra, icc, TYPE_BGRA_8, CV_8UC4, TYPE_BGRA_8);
    cv::Mat colour_after;
    cv::Mat colour_reference;
    cv::cvtColor(converted, colour_after, cv::COLOR_BGRA2BGR);
    cv::cvtColor(reference, colour_reference, cv::COLOR_BGRA2BGR);
    CHECK(cv::norm(colour_after, colour_reference, cv::NORM_INF) <= 1.0);
  }
  SECTION("no profile: nothing to do") {
    cv::Mat same = wide.clone();
    CHECK(convert_to_srgb(same, {}).ok());
    CHECK(cv::norm(same, wide, cv::NORM_INF) == 0.0);
  }
  SECTION("garbage, a cut profile, a CMYK profile for RGB pixels: an error, pixels untouched") {
    const Bytes garbage(300, 0x5A);
    const Bytes cut(icc.begin(), icc.begin() + 200);
    const Profile cmyk(made_up_cmyk());
    const std::pair<Bytes, std::string> cases[] = {
        {garbage, "invalid icc profile"}, {cut, "invalid icc profile"}, {cmyk.bytes(), "unsupported icc profile (cmyk)"}};
    for (const auto& [profile, reason] : cases) {
      INFO(reason);
      cv::Mat pixels = wide.clone();
      const auto result = convert_to_srgb(pixels, profile);
      REQUIRE_FALSE(result.ok());
      CHECK(result.failure().reason == reason);
      CHECK(cv::norm(pixels, wide, cv::NORM_INF) == 0.0);
      // In a file, such a profile decodes fine and the thumbnail is made as if it were sRGB.
      const DecodedImage image = decoded(libjpeg_encode(wide, profile), Size{128, 128});
      CHECK(image.icc_profile == profile);
      CHECK(cv::norm(make_thumbnail(image, Size{128, 128}), make_thumbnail(image.pixels, Size{128, 128}), cv::NORM_INF) == 0.0);
    }
  }
  SECTION("pixels that are not 8-bit BGR(A)") {
    cv::Mat deep(4, 4, CV_16UC3, cv::Scalar(1000, 2000, 3000));
    const auto result = convert_to_srgb(deep, icc);
    REQUIRE_FALSE(result.ok());
    CHECK(result.failure().reason == "unsupported pixels");
  }
}

TEST_CASE("A malformed ICC chunk in a JPEG is no profile, not a failure", "[colour]") {
  const Profile p3(display_p3());
  Bytes jpeg = libjpeg_encode(sample_photo("tiny.jpg"));
  // APP2 "ICC_PROFILE" numbered 2 of 1: libjpeg's reader refuses the set (JWRN_BOGUS_ICC).
  const Bytes icc = p3.bytes();
  const std::size_t length = 2 + 14 + icc.size();
  std::string segment("\xFF\xE2", 2);
  segment += static_cast<char>(length >> 8);
  segment += static_cast<char>(length & 0xFF);
  segment += std::string("ICC_PROFILE\0\x02\x01", 14);
  segment += std::string(icc.begin(), icc.end());
  Bytes tagged(jpeg.begin(), jpeg.begin() + 2);
  tagged.reserve(jpeg.size() + segment.size());
  tagged.insert(tagged.end(), segment.begin(), segment.end());
  tagged.insert(tagged.end(), jpeg.begin() + 2, jpeg.end());
  jpeg = std::move(tagged);
  const auto image = decode_image(jpeg, Size{128, 128});
  REQUIRE(image.has_value());
  CHECK(image->icc_profile.empty());
}

TEST_CASE("embed_icc_profile tags JPEG, PNG and WebP files that the decoders read back", "[colour]") {
  const std::span<const std::uint8_t> srgb = srgb_icc_profile();
  REQUIRE(srgb.size() > 128);
  {
    Profile parsed(cmsOpenProfileFromMem(srgb.data(), static_cast<cmsUInt32Number>(srgb.size())));
    CHECK(cmsGetColorSpace(parsed.handle) == cmsSigRgbData);
  }
  const Profile p3(display_p3());
  const Bytes large(200'000, 0x11);  // a profile over several JPEG segments (65519 bytes each)
  const cv::Mat pixels = sample_photo("tiny.jpg");
  for (const ImageFormat format : {ImageFormat::jpeg, ImageFormat::png, ImageFormat::webp}) {
    INFO(name_of(format));
    Bytes plain;
    REQUIRE(cv::imencode(std::string(extension_of(format)), pixels, plain));
    for (const Bytes& icc : {Bytes(srgb.begin(), srgb.end()), p3.bytes(), large}) {
      const auto tagged = embed_icc_profile(plain, format, icc);
      REQUIRE(tagged.has_value());
      const auto image = decode_image(*tagged, Size{128, 128});
      REQUIRE(image.has_value());
      if (format == ImageFormat::png && icc == large) {
        CHECK(image->icc_profile.empty());  // libpng checks iCCP and drops what is not a profile
      } else {
        CHECK(image->icc_profile == icc);
      }
      CHECK(cv::norm(image->pixels, decoded(plain).pixels, cv::NORM_INF) == 0.0);
    }
  }
  CHECK(embed_icc_profile(Bytes{1, 2, 3}, ImageFormat::jpeg, p3.bytes()).error().reason == "cannot embed icc profile in jpeg");
  CHECK(embed_icc_profile(Bytes{1, 2, 3}, ImageFormat::png, p3.bytes()).error().reason == "cannot embed icc profile in png");
  CHECK(embed_icc_profile(Bytes{1, 2, 3}, ImageFormat::webp, p3.bytes()).error().reason == "cannot embed icc profile in webp");
  CHECK(embed_icc_profile(Bytes{1, 2, 3}, ImageFormat::gif, p3.bytes()).error().reason == "cannot embed icc profile in gif");
}

TEST_CASE("convert_to_srgb from many threads at once: one cached transform, the same pixels", "[colour]") {
  const Profile adobe(adobe_rgb());
  const Bytes icc = adobe.bytes();
  cv::Mat source;
  cv::resize(sample_photo("dune.jpg"), source, cv::Size(160, 240), 0, 0, cv::INTER_AREA);
  cv::Mat expected = source.clone();
  // Alternate with other profiles so that the cache is filled and hit concurrently.
  std::vector<Bytes> others;
  for (int i = 0; i < 20; ++i) {
    Bytes other = icc;
    other[other.size() - 1] = static_cast<std::uint8_t>(other[other.size() - 1] ^ (i + 1));  // a different key
    others.push_back(std::move(other));
  }
  REQUIRE(convert_to_srgb(expected, icc).ok());
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        cv::Mat pixels = source.clone();
        const Bytes& profile = (i + t) % 3 == 0 ? others[static_cast<std::size_t>((i * 4 + t) % 20)] : icc;
        (void)convert_to_srgb(pixels, profile);
        if (&profile == &icc && cv::norm(pixels, expected, cv::NORM_INF) != 0.0) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}
