#pragma once
/// @file
/// run_pipeline: the image pipeline — fetch → download → decode → thumbnail → write — assembled from
/// the tasks as engine stages, run on one graph. `pixflow <command> --dump-graph` prints the graph that
/// runs (pipeline_dot); for a gallery:
///
/// ```
/// pages ─▶ fetch (io: a page and its albums) ─▶ list (in order, each link once) ─▶ limit
///   (a URL list or a folder: its planned items; a stream: items pushed while it runs)   │
///                                                                                       ▼
///                  ┌───────────────────────── resume (route) ─────────────────────────┐
///                done                    original in OUT                           fetch
///                  ▼                           ▼                                      ▼
///                skip            read original (io, disk pool)     download (io) — a folder: read
///                                              └──────────▶ fetched (merge) ◀─────────┘
///                                                                 ▼
///     record ◀── write (io, disk pool) ◀── encode ◀── [your stages] ◀── thumbnail ◀── decode
/// ```
/// The I/O stages run on one HTTP loop thread (libcurl multi) or the disk pool and bound the operations
/// in flight; the compute stages use every core. Failed items are reported with their reason; the run
/// goes on.
///
/// @code
/// using namespace pixflow::tasks;
/// PipelineOptions options;
/// options.out = "thumbs";
/// options.config.thumbnail.sizes = {{128, 128}, {512, 512}};
/// PipelineReport report = run_pipeline(UrlListSource{{"https://i.imgur.com/abc.jpg"}}, options);
/// std::cout << report.count(ItemStatus::ok) << " done\n";
/// @endcode
#include <opencv2/core/mat.hpp>

#include <filesystem>
#include <functional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <variant>
#include <vector>

#include "pixflow/engine/concurrency.hpp"
#include "pixflow/engine/executor.hpp"
#include "pixflow/engine/result.hpp"
#include "pixflow/engine/stats.hpp"
#include "pixflow/tasks/config.hpp"
#include "pixflow/tasks/http.hpp"
#include "pixflow/tasks/image_types.hpp"
#include "pixflow/tasks/imgur.hpp"
#include "pixflow/tasks/output_lock.hpp"
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

/// What a StreamSource's producer pushes into a running pipeline. Used from the producer's thread.
///
/// @code
/// StreamSource source{[&](ItemFeed& feed) {
///   while (auto url = next_url_from_somewhere())       // e.g. XREADGROUP, COUNT feed.room()
///     if (!feed.push(*url)) return;                     // the run is stopping: stop producing
/// }};
/// @endcode
class ItemFeed {
 public:
  ItemFeed(std::function<bool(std::string)> push, std::function<std::size_t()> room)
      : push_(std::move(push)), room_(std::move(room)) {}
  /// Adds one URL to the run, waiting while the run holds max_in_flight items. False when the run is
  /// stopping (cancelled, timed out, interrupted): the URL was not taken, and the producer should return.
  bool push(std::string url) { return push_(std::move(url)); }
  /// Items the run can take now without waiting (for sizing a read from a queue).
  [[nodiscard]] std::size_t room() const { return room_(); }

 private:
  std::function<bool(std::string)> push_;
  std::function<std::size_t()> room_;
};

/// Items fed while the run goes on (a Redis stream): `produce(feed)` runs on a thread of its own; the
/// run ends once it has returned and every pushed item has finished. Finished items are reported only
/// through PipelineOptions::on_item, not kept in PipelineReport::items (a worker runs for days). Output
/// names come from the URL alone (name_from_url), so every worker gives an item the same names. An
/// exception from `produce` cancels the run and is rethrown by run_pipeline.
struct StreamSource {
  std::function<void(ItemFeed&)> produce;
};
using Source = std::variant<GallerySource, UrlListSource, FolderSource, StreamSource>;

/// One thumbnail before it is encoded: what a custom stage sees and may change.
struct Thumbnail {
  Size box;              ///< the box it was fitted into
  cv::Mat pixels;        ///< 8-bit BGR or BGRA, already fitted
  ImageFormat format;    ///< what it will be encoded as
  std::string name;      ///< its file name in OUT
};
/// Every thumbnail of one input image.
struct ThumbnailSet {
  std::string input;     ///< the URL or the path
  std::vector<Thumbnail> thumbnails;
};

/// A stage of your own between thumbnail and encode (a watermark, a filter). Return a Failure to fail
/// the item with that reason; the run goes on.
///
/// @code
/// pixflow::tasks::CustomStage gray{"grayscale", pixflow::Concurrency::unlimited(),
///   [](pixflow::tasks::ThumbnailSet& set) -> pixflow::Result<void> {
///     for (auto& t : set.thumbnails) cv::cvtColor(t.pixels, t.pixels, cv::COLOR_BGR2GRAY);
///     return pixflow::ok();
///   }};
/// options.stages.push_back(gray);
/// @endcode
struct CustomStage {
  std::string name;
  pixflow::Concurrency concurrency = pixflow::Concurrency::unlimited();
  std::function<pixflow::Result<void>(ThumbnailSet&)> body;
};

/// Where a run stands, for progress lines.
struct Progress {
  std::size_t listed = 0;    ///< items known so far (grows while a gallery is listed)
  std::size_t ok = 0, failed = 0, skipped = 0;
  bool listing_done = false; ///< `listed` is final
  double elapsed_s = 0;
  std::vector<pixflow::NodeReport> nodes;  ///< live: active/queued per node
};

struct PipelineOptions {
  PipelineConfig config;
  std::filesystem::path out;       ///< created if missing
  /// How the run holds OUT (output_lock.hpp): exclusively (a second local run into it fails at once),
  /// or shared (Redis workers, which hold it shared for their whole life and cooperate).
  OutputLock::Mode output_lock = OutputLock::Mode::exclusive;
  bool save_originals = true;      ///< also write each downloaded original as OUT/<name>
  /// Redo items whose outputs already exist. Without it, an item whose outputs are all in OUT is
  /// `skipped` ("already done"), and one whose original is there is thumbnailed from that file.
  bool force = false;
  bool stop_on_interrupt = false;  ///< cancel cleanly on Ctrl-C (install_interrupt_handler first)
  std::stop_token stop;            ///< cancel cleanly when a stop is requested, from any thread
  std::vector<CustomStage> stages; ///< run in order between thumbnail and encode
  /// Called once per item when it is finished (ok, failed or skipped), from any thread, one call at a time.
  std::function<void(const ItemReport&)> on_item;
  /// Keep every item's report for PipelineReport::items (input order). False: items are only passed
  /// to `on_item` as they finish (with ReportWriter, the report is written as the run goes), and the
  /// run's memory does not grow with the length of the input (PipelineReport::tally still counts them).
  bool keep_items = true;
  /// Called about every `progress_interval_s` during the run, from a watchdog thread.
  std::function<void(const Progress&)> on_progress;
  double progress_interval_s = 0.5;
  /// Write a Chrome-trace JSON of the run here (chrome://tracing, ui.perfetto.dev): a span per body
  /// and per download/write, a counter of items in flight per node. "" = none.
  std::string trace_path;
  /// Run on this executor's threads (e.g. one set for several runs in one process) instead of
  /// threads of the run's own; `config.threads` is then not used. Must outlive the run.
  pixflow::Executor* executor = nullptr;
};

/// The HTTP client options a run uses for `config` (the one mapping of the config's download keys):
/// transfers in flight for downloads plus listing pages, the per-host cap, timeouts, size cap, retries.
///
/// @code
/// pixflow::tasks::HttpClient http(pixflow::tasks::http_options(config));
/// @endcode
HttpOptions http_options(const PipelineConfig& config);

/// The output folder cannot be used: it cannot be created or locked (not a folder, read-only), or
/// another run holds it. Thrown by run_pipeline before anything ran.
struct OutputFolderError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Runs the pipeline to the end (or until cancelled by timeout, interrupt or `stop`). Never throws for
/// a bad item; throws OutputFolderError, before anything ran, when OUT cannot be used. Takes OUT's lock
/// (`output_lock`) for the whole run.
///
/// Thumbnail formats: `format: same` keeps the format the file's name says (.jpg/.jpeg, .png, .webp);
/// other names (.gif, .bmp, .tif, none) get PNG. Names are planned when an item is listed, in input
/// order, so the same input gives the same names in every run (what resuming relies on).
PipelineReport run_pipeline(const Source& source, const PipelineOptions& options);

/// The graph run_pipeline would run for this kind of source and these options, in Graphviz DOT
/// (nodes with their kinds and concurrency, edges), without listing, planning or running anything.
std::string pipeline_dot(const Source& source, const PipelineOptions& options);

}  // namespace pixflow::tasks
