// libFuzzer target: any bytes through decode_image, with a 64x64 box (so JPEGs shrink on load the most)
// and a 64 MiB budget, so that a claimed size the budget lets through is still cheap to fuzz. It must
// return pixels or an Error with a reason (a crash, a leak, a hang or an allocation past libFuzzer's
// -rss_limit_mb is a bug), and pixels it returns must be 8-bit BGR or BGRA of the size it reports.
// Seeded with tests/fixtures/photos; built by tests/fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "pixflow/tasks/decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pixflow::tasks;
  const std::span<const std::uint8_t> bytes(data, size);
  (void)read_image_size(bytes);
  const auto decoded = decode_image(bytes, Size{64, 64}, DecodeLimits{std::size_t{64} << 20});
  if (!decoded) {
    if (decoded.error().reason.empty()) std::abort();
    return 0;
  }
  const cv::Mat& pixels = decoded->pixels;
  if (pixels.empty() || pixels.depth() != CV_8U || (pixels.channels() != 3 && pixels.channels() != 4)) std::abort();
  const int factor = decoded->reduce_factor;
  if (factor != 1 && factor != 2 && factor != 4 && factor != 8) std::abort();
  // The source size is the reduced one times the factor, rounded up by libjpeg.
  if ((decoded->source_size.width + factor - 1) / factor != pixels.cols ||
      (decoded->source_size.height + factor - 1) / factor != pixels.rows)
    std::abort();
  return 0;
}
