#pragma once
/// @file
/// run_pipeline: the image pipeline — fetch → download → decode → thumbnail → write — assembled from
/// the tasks as engine stages, run on one graph.
///
/// ```
/// pages ─▶ fetch (io) ─▶ list (expand) ─▶ limit(max_in_flight) ─▶ download (io) ─▶ decode ─▶ thumbnail ─▶ write
///  (gallery only)                          urls / files enter here   (folder: read)
/// ```
/// The I/O stages run on one HTTP loop thread (libcurl multi) and bound the transfers in flight; the
/// compute stages use every core. Failed items are reported with their reason; the run goes on.
///
/// @code
/// using namespace pixflow::tasks;
/// PipelineOptions options;
/// options.out = "thumbs";
/// options.config.thumbnail.sizes = {{128, 128}, {512, 512}};
/// PipelineReport report = run_pipeline(UrlListSource{{"https://i.imgur.com/abc.jpg"}}, options);
/// std::cout << report.count(ItemStatus::ok) << " done\n";
/// @endcode
#include <filesystem>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "pixflow/tasks/config.hpp"
#include "pixflow/tasks/imgur.hpp"
#include "pixflow/tasks/report.hpp"

namespace pixflow::tasks {

/// An Imgur API v3 gallery listing (`query.pages` pages at most; 0 = until an empty page).
struct GallerySource {
  GalleryQuery query;
};
/// A list of image URLs.
struct UrlListSource {
  std::vector<std::string> urls;
};
/// A local folder of images (thumbnails only; nothing downloaded).
struct FolderSource {
  std::filesystem::path dir;
};
using Source = std::variant<GallerySource, UrlListSource, FolderSource>;

struct PipelineOptions {
  PipelineConfig config;
  std::filesystem::path out;       ///< created if missing
  bool save_originals = true;      ///< also write each downloaded original as OUT/<name>
  bool stop_on_interrupt = false;  ///< cancel cleanly on Ctrl-C (install_interrupt_handler first)
  /// Called once per item when it is finished (ok, failed or skipped), from any thread, one call at a time.
  std::function<void(const ItemReport&)> on_item;
};

/// Runs the pipeline to the end (or until cancelled by timeout/interrupt). Never throws for a bad item;
/// throws std::runtime_error only when the output folder cannot be created.
PipelineReport run_pipeline(const Source& source, const PipelineOptions& options);

}  // namespace pixflow::tasks
