// embed — pixflow inside a program of your own: the image pipeline on a folder, with a stage of ours.
//
//   folder ─▶ limit(max_in_flight) ─▶ read ─▶ decode ─▶ thumbnail ─▶ grayscale (ours) ─▶ encode ─▶ write
//                                           (decode, thumbnail, grayscale, encode: every core)
//              a failed item (a GIF cut short: "truncated gif") is reported; the others go on
//
// `embed IN_DIR OUT_DIR TRACE.json` also writes a Chrome trace of the run (chrome://tracing, ui.perfetto.dev).
//
// A standalone CMake project, built against the installed package (see CMakeLists.txt):
// find_package(pixflow CONFIG REQUIRED), then link pixflow::tasks.
#include <cstdio>
#include <iostream>
#include <string>

#include <opencv2/core.hpp>
#include <pixflow/pixflow.hpp>

namespace pt = pixflow::tasks;

namespace {

/// Our stage: every thumbnail turned grey (each colour channel gets the luma; alpha, if any, stays).
pixflow::Result<void> grayscale(pt::ThumbnailSet& set) {
  const float b = 0.114f, g = 0.587f, r = 0.299f;
  for (pt::Thumbnail& t : set.thumbnails) {
    const cv::Mat weights = t.pixels.channels() == 4
                                ? cv::Mat(cv::Matx44f(b, g, r, 0, b, g, r, 0, b, g, r, 0, 0, 0, 0, 1))
                                : cv::Mat(cv::Matx33f(b, g, r, b, g, r, b, g, r));
    cv::Mat grey;
    cv::transform(t.pixels, grey, weights);
    t.pixels = grey;
  }
  return pixflow::ok();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string arg = argc > 1 ? argv[1] : "";
  const bool help = arg == "--help" || arg == "-h";
  if (arg == "--version") {
    std::cout << "embed (pixflow " PIXFLOW_VERSION ")\n";
    return 0;
  }
  if (help || argc < 3 || argc > 4) {
    (help ? std::cout : std::cerr) << "usage: embed IN_DIR OUT_DIR [TRACE.json]   grey 128x128 thumbnails of IN_DIR's images\n";
    return help ? 0 : 2;
  }

  pt::PipelineOptions options;
  options.out = argv[2];
  options.save_originals = false;  // thumbnails only
  options.force = true;            // redo thumbnails already in OUT_DIR
  if (argc == 4) options.trace_path = argv[3];  // a span per read, decode, thumbnail, grayscale, encode, write
  options.stages.push_back({"grayscale", pixflow::Concurrency::unlimited(), grayscale});
  options.on_item = [](const pt::ItemReport& item) {  // one call at a time
    if (item.status == pt::ItemStatus::failed) std::cerr << item.input << ": " << item.stage << ": " << item.reason << '\n';
  };
  const pt::PipelineReport report = pt::run_pipeline(pt::FolderSource{argv[1]}, options);
  for (const pt::ListingError& e : report.listing_errors) std::cerr << "embed: " << e.reason << '\n';

  for (const pixflow::NodeReport& node : report.run.nodes)
    std::printf("%-10s %-8s %4llu items %3llu failed %8.3f s busy\n", node.name.c_str(), node.kind.c_str(),
                static_cast<unsigned long long>(node.items), static_cast<unsigned long long>(node.failed), node.busy_s);
  std::printf("%zu done, %zu failed in %.3f s\n", report.count(pt::ItemStatus::ok),
              report.count(pt::ItemStatus::failed), report.run.wall_s);
  return report.count(pt::ItemStatus::failed) == 0 && !report.source_unusable() ? 0 : 1;
}
