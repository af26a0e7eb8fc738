// embed — pixflow inside your own program: grey thumbnails of a folder's images, with a stage of our own.
//
//   files ─▶ limit(16) ─▶ decode (every core) ─▶ grayscale (ours, every core) ─▶ thumbnail (every core) ─▶ write (≤4)
//                                └──────────── a failed item (its reason) ─▶ on_failure; the others go on
//
// Built against the installed package: find_package(pixflow CONFIG REQUIRED), link pixflow::tasks.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <pixflow/engine/graph.hpp>
#include <pixflow/tasks/decode.hpp>
#include <pixflow/tasks/naming.hpp>
#include <pixflow/tasks/sources.hpp>
#include <pixflow/tasks/thumbnail.hpp>
#include <pixflow/tasks/write.hpp>

namespace pt = pixflow::tasks;
struct Photo { std::string name; pt::DecodedImage image; };
struct Encoded { std::string name; std::vector<std::uint8_t> bytes; };

int main(int argc, char** argv) {
  const std::string arg = argc > 1 ? argv[1] : "", usage = "usage: embed IN_DIR OUT_DIR  (grey 128x128 thumbnails)\n";
  if (arg == "--version") std::cout << "embed (pixflow " PIXFLOW_VERSION ")\n";
  if (arg == "--help" || arg == "-h") std::cout << usage;
  if (arg == "--version" || arg == "--help" || arg == "-h") return 0;
  if (argc != 3) {
    std::cerr << usage;
    return 2;
  }
  auto files = pt::list_image_folder(argv[1]);
  if (!files) {
    std::cerr << "embed: " << files.error().reason << '\n';
    return 2;
  }
  const std::filesystem::path out = argv[2];
  std::filesystem::create_directories(out);
  const pt::Size box{128, 128};
  cv::setNumThreads(1);  // TBB owns the cores

  pixflow::Graph graph;
  int failed = 0;  // on_failure is called one item at a time
  graph.on_failure([&](const pixflow::ItemFailure& f) {
    std::cerr << files->at(f.key.seq).filename().string() << ": " << f.stage << ": " << f.reason << '\n';
    ++failed;
  });
  auto next = files->begin();
  graph.source("files", [&]() { return next == files->end() ? std::nullopt : std::optional(*next++); })
      .limit(16)
      .compute("decode", pixflow::Concurrency::unlimited(), [&](std::filesystem::path file) -> pixflow::Result<Photo> {
        std::ifstream in(file, std::ios::binary);
        const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
        auto image = pt::decode_image(bytes, box);
        if (!image) return pixflow::Failure{image.error().reason};
        return Photo{file.filename().string(), std::move(*image)};
      })
      .compute("grayscale", pixflow::Concurrency::unlimited(), [](Photo photo) -> pixflow::Result<Photo> {
        const float b = 0.114f, g = 0.587f, r = 0.299f;  // BGR(A) → grey in every colour channel, alpha kept
        const cv::Mat weights = photo.image.pixels.channels() == 4
            ? cv::Mat(cv::Matx44f(b, g, r, 0, b, g, r, 0, b, g, r, 0, 0, 0, 0, 1))
            : cv::Mat(cv::Matx33f(b, g, r, b, g, r, b, g, r));
        cv::Mat grey;
        cv::transform(photo.image.pixels, grey, weights);
        photo.image.pixels = grey;
        return photo;
      })
      .compute("thumbnail", pixflow::Concurrency::unlimited(), [&](Photo photo) -> pixflow::Result<Encoded> {
        const auto format = pt::output_format(photo.image.source_format, pt::ImageFormat::same);
        auto bytes = pt::encode_image(pt::make_thumbnail(photo.image.pixels, box), format);
        if (!bytes) return pixflow::Failure{bytes.error().reason};
        return Encoded{pt::thumbnail_name(photo.name, box, false, format), std::move(*bytes)};
      })
      .sink("write", pixflow::Concurrency(4), [&](Encoded e) -> pixflow::Result<void> {
        auto path = pt::write_file_atomically(out, e.name, e.bytes);
        if (!path) return pixflow::Failure{path.error().reason};
        return pixflow::ok();
      });
  const pixflow::RunReport report = graph.run();
  for (const auto& node : report.nodes)
    std::printf("%-10s %-8s %4llu items %3llu failed %8.3f s busy\n", node.name.c_str(), node.kind.c_str(),
                static_cast<unsigned long long>(node.items), static_cast<unsigned long long>(node.failed), node.busy_s);
  std::printf("wall %.3f s\n", report.wall_s);
  return failed == 0 ? 0 : 1;
}
