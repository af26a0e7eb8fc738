#include "pixflow/tasks/thumbnail.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pixflow/tasks/colour.hpp"

namespace pixflow::tasks {

namespace {

/// a * b / c rounded to nearest, in 64 bits (sizes up to INT_MAX do not overflow).
int scaled(int a, int b, int c) {
  const std::int64_t numerator = std::int64_t{a} * b;
  return static_cast<int>((2 * numerator + c) / (2 * std::int64_t{c}));
}

bool fully_opaque(const cv::Mat& bgra) {
  cv::Mat alpha;
  cv::extractChannel(bgra, alpha, 3);
  double lowest = 0.0;
  cv::minMaxLoc(alpha, &lowest);
  return lowest >= 255.0;
}

/// BGRA resized in premultiplied-alpha space: colours are weighted by their coverage.
cv::Mat resize_premultiplied(const cv::Mat& bgra, cv::Size target) {
  cv::Mat work;
  bgra.convertTo(work, CV_32FC4, 1.0 / 255.0);
  std::vector<cv::Mat> channels;
  cv::split(work, channels);
  for (int c = 0; c < 3; ++c) channels[static_cast<std::size_t>(c)] = channels[static_cast<std::size_t>(c)].mul(channels[3]);
  cv::merge(channels, work);
  cv::resize(work, work, target, 0.0, 0.0, cv::INTER_AREA);
  cv::split(work, channels);
  cv::Mat coverage = cv::max(channels[3], 1e-6);
  for (int c = 0; c < 3; ++c) cv::divide(channels[static_cast<std::size_t>(c)], coverage, channels[static_cast<std::size_t>(c)]);
  cv::merge(channels, work);
  cv::Mat result;
  work.convertTo(result, CV_8UC4, 255.0);  // saturating: rounding noise above 1.0 clips to 255
  return result;
}

/// BGRA composited on white, as BGR.
cv::Mat on_white(const cv::Mat& bgra) {
  cv::Mat work;
  bgra.convertTo(work, CV_32FC4, 1.0 / 255.0);
  std::vector<cv::Mat> channels;
  cv::split(work, channels);
  const cv::Mat& alpha = channels[3];
  cv::Mat transparent = 1.0 - alpha;
  std::vector<cv::Mat> bgr(3);
  for (std::size_t c = 0; c < 3; ++c) bgr[c] = channels[c].mul(alpha) + transparent;
  cv::merge(bgr, work);
  cv::Mat result;
  work.convertTo(result, CV_8UC3, 255.0);
  return result;
}

/// True when `source` is at least `box` on both axes: it can fill the box without upscaling.
bool covers(Size source, Size box) { return source.width >= box.width && source.height >= box.height; }

/// The centred region of `source` with the box's aspect ratio: its full height when it is wider than
/// the box (proportionally), else its full width.
cv::Rect fill_region(Size source, Size box) {
  if (std::int64_t{source.width} * box.height >= std::int64_t{source.height} * box.width) {
    const int width = std::clamp(scaled(source.height, box.width, box.height), 1, source.width);
    return {(source.width - width) / 2, 0, width, source.height};
  }
  const int height = std::clamp(scaled(source.width, box.height, box.width), 1, source.height);
  return {0, (source.height - height) / 2, source.width, height};
}

/// Where the eye goes, per pixel of `image` (BGR or BGRA, 8- or 16-bit), as libvips' "attention"
/// smartcrop measures it: Sobel edges of the lightness, plus skin tones (a* 3..22, b* 4..31, L* >= 15),
/// plus saturated colours (chroma > 60), each of those two worth 255. Transparent pixels count for
/// nothing.
cv::Mat interest_of(const cv::Mat& image) {
  cv::Mat work;
  image.convertTo(work, CV_MAKETYPE(CV_32F, image.channels()), image.depth() == CV_16U ? 1.0 / 65535.0 : 1.0 / 255.0);
  cv::Mat alpha;
  if (work.channels() == 4) {
    cv::extractChannel(work, alpha, 3);
    cv::cvtColor(work, work, cv::COLOR_BGRA2BGR);
  } else if (work.channels() == 1) {
    cv::cvtColor(work, work, cv::COLOR_GRAY2BGR);
  }
  cv::Mat lab;
  cv::cvtColor(work, lab, cv::COLOR_BGR2Lab);  // from floats in 0..1: L* 0..100, a* and b* about -128..127
  std::vector<cv::Mat> l_a_b;
  cv::split(lab, l_a_b);
  const cv::Mat &l = l_a_b[0], &a = l_a_b[1], &b = l_a_b[2];
  cv::Mat dx, dy;
  cv::Sobel(l, dx, CV_32F, 1, 0);
  cv::Sobel(l, dy, CV_32F, 0, 1);
  cv::Mat interest = cv::abs(dx) + cv::abs(dy);
  cv::Mat chroma;
  cv::magnitude(a, b, chroma);
  const cv::Mat skin = (a >= 3.0) & (a <= 22.0) & (b >= 4.0) & (b <= 31.0) & (l >= 15.0);  // 0 or 255
  const cv::Mat saturated = chroma > 60.0;
  cv::Mat mask;
  skin.convertTo(mask, CV_32F);
  interest += mask;
  saturated.convertTo(mask, CV_32F);
  interest += mask;
  if (!alpha.empty()) interest = interest.mul(alpha);
  return interest;
}

/// The region of `centred`'s size that holds the most interest (interest_of), sliding along the one
/// axis the crop leaves free; measured on a copy at most 256 pixels long, so that a 12-megapixel PNG
/// costs no more than a thumbnail. Equal scores keep the offset nearest the centre; an image with no
/// interest anywhere keeps `centred`.
cv::Rect attention_region(const cv::Mat& image, const cv::Rect& centred) {
  const bool across = centred.width < image.cols;  // the crop slides left-right (else top-bottom)
  if (!across && centred.height >= image.rows) return centred;
  const double shrink = std::max(1.0, std::max(image.cols, image.rows) / 256.0);
  cv::Mat small = image;
  if (shrink > 1.0) {
    const cv::Size size(std::max(1, static_cast<int>(image.cols / shrink + 0.5)), std::max(1, static_cast<int>(image.rows / shrink + 0.5)));
    cv::resize(image, small, size, 0.0, 0.0, cv::INTER_AREA);
  }
  cv::Mat profile;  // the interest of each column (or row) of `small`
  cv::reduce(interest_of(small), profile, across ? 0 : 1, cv::REDUCE_SUM, CV_64F);
  const int full = across ? image.cols : image.rows;
  const int length = across ? centred.width : centred.height;
  const int n = static_cast<int>(profile.total());
  const int window = std::clamp(static_cast<int>(std::lround(static_cast<double>(length) * n / full)), 1, n);
  std::vector<double> sum(static_cast<std::size_t>(n) + 1, 0.0);  // prefix sums
  for (int i = 0; i < n; ++i) sum[static_cast<std::size_t>(i) + 1] = sum[static_cast<std::size_t>(i)] + profile.at<double>(i);
  if (sum[static_cast<std::size_t>(n)] <= 0.0) return centred;
  const auto score = [&](int at) { return sum[static_cast<std::size_t>(at + window)] - sum[static_cast<std::size_t>(at)]; };
  const int last = n - window, middle = last / 2;
  int best = middle;
  for (int step = 1; step <= last; ++step)  // outwards from the centre, so a tie keeps the nearer offset
    for (const int at : {middle - step, middle + step})
      if (at >= 0 && at <= last && score(at) > score(best)) best = at;
  const int offset = std::clamp(static_cast<int>(std::lround(static_cast<double>(best) * full / n)), 0, full - length);
  return across ? cv::Rect(offset, 0, centred.width, centred.height) : cv::Rect(0, offset, centred.width, centred.height);
}

void check_sizes(const char* what, Size source, Size box) {
  if (source.width <= 0 || source.height <= 0 || box.width <= 0 || box.height <= 0)
    throw std::invalid_argument(std::string(what) + ": sizes must be positive, got " + to_string(source) + " into " +
                                to_string(box));
}

void check_range(int value, int low, int high, const char* what) {
  if (value < low || value > high)
    throw std::invalid_argument(std::string(what) + " must be in " + std::to_string(low) + ".." +
                                std::to_string(high) + ", got " + std::to_string(value));
}

}  // namespace

Size fit_within(Size source, Size box) {
  check_sizes("fit_within", source, box);
  if (source.width <= box.width && source.height <= box.height) return source;
  // Width-limited when source.w / source.h >= box.w / box.h (compared without division).
  if (std::int64_t{source.width} * box.height >= std::int64_t{source.height} * box.width) {
    return Size{box.width, std::clamp(scaled(source.height, box.width, source.width), 1, box.height)};
  }
  return Size{std::clamp(scaled(source.width, box.height, source.height), 1, box.width), box.height};
}

Size cover_size(Size source, Size box) {
  check_sizes("cover_size", source, box);
  if (!covers(source, box)) return source;
  // Height-limited when source.w / source.h >= box.w / box.h (the source is wider than the box).
  if (std::int64_t{source.width} * box.height >= std::int64_t{source.height} * box.width)
    return Size{std::clamp(scaled(source.width, box.height, source.height), box.width, source.width), box.height};
  return Size{box.width, std::clamp(scaled(source.height, box.width, source.width), box.height, source.height)};
}

cv::Rect thumbnail_region(const cv::Mat& image, Size box, ThumbnailMode mode) {
  if (image.empty()) throw std::invalid_argument("thumbnail_region: empty image");
  if (!fills_box(mode)) return {0, 0, image.cols, image.rows};
  check_sizes("thumbnail_region", Size{image.cols, image.rows}, box);
  const cv::Rect centred = fill_region(Size{image.cols, image.rows}, box);
  return mode == ThumbnailMode::fill_attention ? attention_region(image, centred) : centred;
}

cv::Mat make_thumbnail(const cv::Mat& original, Size box, ThumbnailMode mode) {
  if (original.empty()) throw std::invalid_argument("make_thumbnail: empty image");
  cv::Mat image = original;
  if (mode == ThumbnailMode::fill_attention) {
    // Scaled first to cover the box, then cropped: the interest is measured at the scale it is seen at,
    // and a 12-megapixel PNG is scaled once, not once more for the measure.
    check_sizes("make_thumbnail", Size{image.cols, image.rows}, box);
    const Size cover = cover_size(Size{image.cols, image.rows}, box);
    if (cover != Size{image.cols, image.rows}) image = make_thumbnail(original, cover, ThumbnailMode::fit);
  }
  const Size size_of_image{image.cols, image.rows};
  cv::Mat source = image;
  Size target;
  if (fills_box(mode)) {
    check_sizes("make_thumbnail", size_of_image, box);
    const cv::Rect region = thumbnail_region(image, box, mode);
    source = image(region);  // a view: nothing copied
    target = covers(size_of_image, box) ? box : Size{region.width, region.height};
  } else {
    target = fit_within(size_of_image, box);
  }
  if (target.width == source.cols && target.height == source.rows) return source.clone();
  const cv::Size size(target.width, target.height);
  if (source.channels() == 4 && source.depth() == CV_8U && !fully_opaque(source)) return resize_premultiplied(source, size);
  cv::Mat result;
  cv::resize(source, result, size, 0.0, 0.0, cv::INTER_AREA);
  return result;
}

cv::Mat make_thumbnail(const DecodedImage& image, Size box, ThumbnailMode mode) {
  cv::Mat thumbnail = make_thumbnail(image.pixels, box, mode);
  // A profile LittleCMS cannot use leaves the pixels as they are: shown as sRGB, like libvips' "no profile".
  if (!image.icc_profile.empty()) (void)convert_to_srgb(thumbnail, image.icc_profile);
  return thumbnail;
}

Expected<std::vector<std::uint8_t>> encode_image(const cv::Mat& image, ImageFormat format,
                                                 const EncodeOptions& options) {
  check_range(options.jpeg_quality, 0, 100, "jpeg quality");
  check_range(options.webp_quality, 1, 100, "webp quality");
  check_range(options.png_compression, 0, 9, "png compression");
  const Error failed{"cannot encode as " + std::string(name_of(format))};
  if (image.empty()) return failed;

  std::vector<int> params;
  const cv::Mat* source = &image;
  cv::Mat flattened;
  const char* extension = nullptr;
  switch (format) {
    case ImageFormat::jpeg:
      extension = ".jpg";
      params = {cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
      if (image.channels() == 4) {
        flattened = on_white(image);
        source = &flattened;
      }
      break;
    case ImageFormat::png:
      extension = ".png";
      params = {cv::IMWRITE_PNG_COMPRESSION, options.png_compression};
      break;
    case ImageFormat::webp:
      extension = ".webp";
      params = {cv::IMWRITE_WEBP_QUALITY, options.webp_quality};
      break;
    default:
      return failed;
  }
  std::vector<std::uint8_t> bytes;
  try {
    if (!cv::imencode(extension, *source, bytes, params) || bytes.empty()) return failed;
  } catch (const cv::Exception&) {
    return failed;
  }
  if (options.embed_srgb_profile) return embed_icc_profile(bytes, format, srgb_icc_profile());
  return bytes;
}

ImageFormat output_format(ImageFormat source, ImageFormat requested) {
  if (requested != ImageFormat::same) return requested;
  switch (source) {
    case ImageFormat::jpeg:
    case ImageFormat::png:
    case ImageFormat::webp: return source;
    case ImageFormat::mp4:
    case ImageFormat::webm: return ImageFormat::jpeg;  // a video frame is a photograph: JPEG is a fraction of PNG
    default: return ImageFormat::png;
  }
}

}  // namespace pixflow::tasks
