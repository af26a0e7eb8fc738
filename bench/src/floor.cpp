// The floor: the cost of the work itself (docs/design.md §5), with the task functions pixflow uses and
// nothing else: no graph, no threads, no file I/O in the timed part.
#include <opencv2/core/utility.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <vector>

#include <pixflow/tasks/allocator.hpp>
#include <pixflow/tasks/decode.hpp>
#include <pixflow/tasks/sources.hpp>
#include <pixflow/tasks/thumbnail.hpp>

#include "bench.hpp"

namespace pixflow::bench {
namespace {

using Clock = std::chrono::steady_clock;

bool is_image_name(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".webp";
}

}  // namespace

int run_floor(const FloorOptions& options) {
  using namespace pixflow::tasks;
  cv::setNumThreads(1);  // as in the pipeline: one thread per body
  tune_malloc_for_images();  // as the pixflow CLI does
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(options.dir))
    if (entry.is_regular_file() && is_image_name(entry.path())) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  std::vector<std::vector<std::uint8_t>> files;
  files.reserve(paths.size());
  for (const auto& p : paths) {
    auto bytes = read_file(p);
    if (!bytes) throw std::runtime_error(p.string() + ": " + bytes.error().reason);
    files.push_back(std::move(bytes).value());
  }

  const Size box{options.box, options.box};
  double best = std::numeric_limits<double>::infinity();
  double best_jpeg = 0;
  double best_png = 0;
  std::size_t jpegs = 0;
  std::size_t pngs = 0;
  std::size_t failed = 0;
  std::size_t out_bytes = 0;
  for (int pass = 0; pass < std::max(1, options.repeat); ++pass) {
    double jpeg_s = 0;
    double png_s = 0;
    jpegs = pngs = failed = out_bytes = 0;
    const auto started = Clock::now();
    for (const auto& bytes : files) {
      const auto t0 = Clock::now();
      auto image = decode_image(bytes, box);
      if (!image) {
        ++failed;
        continue;
      }
      auto encoded = encode_image(make_thumbnail(image->pixels, box),
                                  output_format(image->source_format, ImageFormat::same));
      if (!encoded) {
        ++failed;
        continue;
      }
      out_bytes += encoded->size();
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (image->source_format == ImageFormat::png) {
        png_s += s;
        ++pngs;
      } else {
        jpeg_s += s;
        ++jpegs;
      }
    }
    const double total = std::chrono::duration<double>(Clock::now() - started).count();
    if (total < best) {
      best = total;
      best_jpeg = jpeg_s;
      best_png = png_s;
    }
  }
  const auto per = [](double s, std::size_t n) { return n == 0 ? 0.0 : s * 1000.0 / static_cast<double>(n); };
  std::cout << "{\"items\": " << files.size() << ", \"failed\": " << failed << ", \"seconds\": " << best
            << ", \"ms_per_item\": " << per(best, files.size()) << ", \"jpeg_items\": " << jpegs
            << ", \"jpeg_ms\": " << per(best_jpeg, jpegs) << ", \"png_items\": " << pngs
            << ", \"png_ms\": " << per(best_png, pngs) << ", \"thumbnail_bytes\": " << out_bytes << "}\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace pixflow::bench
