// pixflow — download image galleries and make thumbnails, in one work-stealing flow graph.
// (enqueue / worker / status spread one gallery over many machines through Redis: queue_commands.hpp;
// built only with -DPIXFLOW_WITH_REDIS=ON, the default)
//
//   gallery:  pages ─▶ limit ─▶ fetch (io: a page and its albums) ─▶ list ─▶ limit ─┐
//   urls:     source ─▶ limit ────────────────────────────────────────────────────────┤
//   thumbs:   source ─▶ limit ────────────────────────────────────────────────────────┤
//                                                                                     ▼
//   resume (route) ─┬─ done ─────────────▶ skip
//                   ├─ original in OUT ──▶ read original (io, disk pool) ─┐
//                   └─ fetch ────────────▶ download (io; thumbs: read) ───┴─▶ fetched (merge)
//   ─▶ decode ─▶ thumbnail ─▶ encode ─▶ write (io, disk pool) ─▶ record (into the report)
// (`--index` writes OUT/index.html from the report once the run has ended: index_page.hpp.)
// (`--dump-graph` prints the graph as built, in DOT; `--trace FILE` records a run for chrome://tracing.)
//
// Parses the command line and the config, runs pixflow::tasks::run_pipeline, prints a summary and
// writes the report. Exit codes: 0 all done, 1 some items failed, 2 usage or config error,
// 3 the source itself is unusable.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <pixflow/engine/cancel.hpp>
#include <pixflow/tasks/allocator.hpp>
#include <pixflow/tasks/config.hpp>
#include <pixflow/tasks/index_page.hpp>
#include <pixflow/tasks/pipeline.hpp>
#include <pixflow/tasks/sources.hpp>

#include "exit_codes.hpp"
#if PIXFLOW_WITH_REDIS
#include "queue_commands.hpp"
#endif

namespace {

using namespace pixflow::tasks;

using namespace pixflow::cli;

/// The options every subcommand shares.
struct CommonOptions {
  std::string out;
  std::vector<std::string> sizes;
  std::string format;
  std::string mode;
  std::string config_file;
  std::string report_file;
  std::optional<std::size_t> threads;
  bool quiet = false;
  bool progress = false;
  bool force = false;
  bool dump_config = false;
  std::string trace_file;
  bool dump_graph = false;
  bool index = false;
};

void add_common_options(CLI::App& cmd, CommonOptions& common) {
  cmd.add_option("--out,-o", common.out, "Output folder, created if missing (required)");
  cmd.add_option("--size", common.sizes, "Thumbnail box WxH, repeatable (default 128x128)")->take_all();
  cmd.add_option("--format", common.format, "Thumbnail format: same|jpg|png|webp (default same)");
  cmd.add_option("--mode", common.mode, "Thumbnail mode: fit (inside the box) | fill (exactly the box, centre crop) | fill-attention (exactly the box, cropped where the eye goes); default fit");
  cmd.add_option("--config", common.config_file, "Tuning config (JSON); options given here override it");
  cmd.add_option("--report", common.report_file, "Write the JSON report to FILE ('-' for stdout)");
  cmd.add_option("--threads", common.threads, "Worker threads (0 = all cores)")
      ->check(CLI::Range(0.0, static_cast<double>(kMaxThreads)));  // a string check: "-1" never wraps
  cmd.add_flag("--quiet,-q", common.quiet, "Print nothing but errors");
  cmd.add_flag("--progress", common.progress, "Show the live progress line even when stderr is not a terminal");
  cmd.add_flag("--force", common.force, "Redo items whose outputs already exist in the output folder");
  cmd.add_flag("--dump-config", common.dump_config, "Print the effective config as JSON and exit");
  cmd.add_option("--trace", common.trace_file,
                 "Write a Chrome-trace JSON of the run to FILE (chrome://tracing, ui.perfetto.dev)");
  cmd.add_flag("--dump-graph", common.dump_graph, "Print the task graph as Graphviz DOT and exit");
  cmd.add_flag("--index", common.index,
               "After the run, write OUT/index.html: the thumbnails linked to their originals, failures with reasons");
}

/// The config file merged with the command-line overrides. Throws ConfigError naming what is wrong.
PipelineConfig effective_config(const CommonOptions& common) {
  PipelineConfig config = common.config_file.empty() ? PipelineConfig{} : load_config(common.config_file);
  return apply_overrides(std::move(config), ConfigOverrides{common.sizes, common.format, common.threads, common.mode});
}

std::string seconds(double s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << s << " s";
  return out.str();
}

void print_summary(const PipelineReport& report, const std::string& out) {
  std::cerr << "pixflow: " << report.tally.total << " items: " << report.count(ItemStatus::ok) << " done, "
            << report.count(ItemStatus::failed) << " failed, " << report.count(ItemStatus::skipped) << " skipped in "
            << seconds(report.run.wall_s) << " → " << out << '\n';
  if (report.run.cancelled) std::cerr << "pixflow: stopped early: " << report.run.cancel_reason << '\n';
  for (const auto& e : report.listing_errors) std::cerr << "pixflow: listing: " << e.reason << '\n';
  for (const auto& [reason, n] : report.failures_by_reason()) std::cerr << "  failed ×" << n << ": " << reason << '\n';
  std::cerr << "  node        conc.      items  failed   busy     peak\n";
  for (const auto& node : report.run.nodes) {
    std::cerr << "  " << std::left << std::setw(11) << node.name << ' ' << std::setw(10) << node.concurrency.to_string()
              << std::right << std::setw(6) << node.items << std::setw(8) << node.failed << std::setw(9)
              << seconds(node.busy_s) << std::setw(6) << node.peak_active << '\n';
  }
}

/// Why the report cannot be written to `file`, found before the run rather than after it: its folder
/// must exist and be writable, and the file, if there, must be a writable regular file.
std::optional<std::string> report_path_problem(const std::string& file) {
  if (file.empty() || file == "-") return std::nullopt;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path path(file);
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::is_directory(folder, ec)) return "no such folder: " + folder.string();
  const auto status = fs::status(path, ec);
  if (fs::exists(status) && !fs::is_regular_file(status)) return "not a regular file";
  const bool writable = fs::exists(status) ? ::access(file.c_str(), W_OK) == 0 : ::access(folder.c_str(), W_OK | X_OK) == 0;
  if (!writable) return std::strerror(errno);
  return std::nullopt;
}

/// Where `--report` goes: nowhere, stdout, or a file; the report is written item by item as the run
/// goes (ReportWriter), so nothing of a finished item is held in memory.
class ReportSink {
 public:
  explicit ReportSink(std::string file) : file_(std::move(file)) {}
  void item(const ItemReport& item) {
    if (open()) writer_->item(item);
  }
  /// Ends the report; exit_ok, or exit_items_failed when it could not be written.
  int finish(const PipelineReport& report) {
    if (!open()) return exit_ok;
    writer_->finish(report);
    if (file_ != "-" && !file_stream_) {
      std::cerr << "pixflow: cannot write the report to " << file_ << '\n';
      return exit_items_failed;
    }
    return exit_ok;
  }

 private:
  /// Opened with the first item (or at the end): a run that never starts leaves the file alone.
  bool open() {
    if (file_.empty()) return false;
    if (!writer_) {
      if (file_ != "-") file_stream_.open(file_);
      writer_.emplace(file_ == "-" ? std::cout : file_stream_);
    }
    return true;
  }
  std::string file_;
  std::ofstream file_stream_;
  std::optional<ReportWriter> writer_;
};

/// The live line: done/failed/total, items per second, ETA, and items in flight per node.
void print_progress(const Progress& p) {
  const std::size_t finished = p.ok + p.failed + p.skipped;
  const double rate = p.elapsed_s > 0 ? static_cast<double>(p.ok + p.failed) / p.elapsed_s : 0;
  std::ostringstream line;
  line << "\r\033[K" << p.ok << " done, " << p.failed << " failed, " << p.skipped << " skipped / " << p.listed
       << (p.listing_done ? "" : "+") << "  " << std::fixed << std::setprecision(1) << rate << " items/s";
  if (p.listing_done && rate > 0 && finished < p.listed)
    line << "  ETA " << std::setprecision(0) << static_cast<double>(p.listed - finished) / rate << " s";
  line << "  |";
  for (const auto& node : p.nodes)
    if (node.active + node.queued > 0) line << ' ' << node.name << ' ' << node.active << '+' << node.queued;
  std::cerr << line.str() << std::flush;
}

int run(const Source& source, const CommonOptions& common, const PipelineConfig& config, bool save_originals) {
  PipelineOptions options;
  options.config = config;
  options.out = common.out;
  options.save_originals = save_originals;
  options.force = common.force;
  options.stop_on_interrupt = true;
  options.trace_path = common.trace_file;
  const bool show_progress = !common.quiet && (common.progress || isatty(STDERR_FILENO) == 1);
  if (show_progress) options.on_progress = print_progress;
  ReportSink report_sink(common.report_file);
  // The report is written as items finish: memory flat in the input's length. The index page lists
  // every item in input order, so --index keeps them.
  options.keep_items = common.index;
  options.on_item = [&report_sink](const ItemReport& item) { report_sink.item(item); };
  pixflow::install_interrupt_handler();
  PipelineReport report;
  try {
    report = run_pipeline(source, options);
  } catch (const OutputFolderError& e) {  // not a folder, read-only, or in use by another run
    std::cerr << "pixflow: --out: " << e.what() << '\n';
    return exit_usage;
  }
  if (show_progress) std::cerr << "\r\033[K";
  int code = report_sink.finish(report);
  if (common.index) {
    auto page = write_index_page(common.out, report.items, IndexPageOptions{.originals_saved = save_originals});
    if (!page) {
      std::cerr << "pixflow: --index: " << page.error().reason
                << (page.error().detail.empty() ? "" : " (" + page.error().detail + ")") << '\n';
      code = exit_items_failed;
    }
  }
  if (!common.quiet) print_summary(report, common.out);
  if (report.source_unusable()) {
    if (common.quiet)
      for (const auto& e : report.listing_errors) std::cerr << "pixflow: " << e.reason << '\n';
    return exit_source_unusable;
  }
  if (!report.sync_error.empty()) std::cerr << "pixflow: the outputs may not be on disk: " << report.sync_error << '\n';
  if (report.count(ItemStatus::failed) > 0 || !report.listing_errors.empty() || report.run.cancelled || !report.sync_error.empty())
    return exit_items_failed;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  pixflow::tasks::tune_malloc_for_images();  // image buffers reused, not page-faulted in anew each time
  CLI::App app{"pixflow — download image galleries and make thumbnails in one work-stealing flow graph"};
  app.set_version_flag("--version", std::string("pixflow ") + PIXFLOW_VERSION);
  app.require_subcommand(1);

  CommonOptions common;
  GalleryQuery query;
  if (const char* id = std::getenv("IMGUR_CLIENT_ID")) query.client_id = id;

  auto* gallery = app.add_subcommand("gallery", "Download an Imgur API v3 gallery and make thumbnails");
  gallery->add_option("--api", query.api, "API base URL")->capture_default_str();
  gallery->add_option("--section", query.section, "Gallery section (hot, top, user)")->capture_default_str();
  gallery->add_option("--sort", query.sort, "Sort (viral, top, time)")->capture_default_str();
  gallery->add_option("--pages", query.pages, "Pages to list at most; 0 = until an empty page")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  gallery->add_option("--client-id", query.client_id, "Imgur Client-ID (default: $IMGUR_CLIENT_ID)");
  add_common_options(*gallery, common);

  std::string url_file;
  auto* urls = app.add_subcommand("urls", "Download a list of image URLs and make thumbnails");
  urls->add_option("file", url_file, "File with one URL per line ('-' for stdin; # comments)")->required();
  add_common_options(*urls, common);

  std::string folder;
  auto* thumbs = app.add_subcommand("thumbs", "Make thumbnails of a local folder of images");
  thumbs->add_option("dir", folder, "Folder of images")->required();
  add_common_options(*thumbs, common);

#if PIXFLOW_WITH_REDIS
  QueueCommandState queue_state;
  add_queue_commands(app, queue_state);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? exit_ok : exit_usage;
  }
#if PIXFLOW_WITH_REDIS
  if (auto code = run_queue_command(queue_state)) return *code;
#endif

  PipelineConfig config;
  try {
    config = effective_config(common);
  } catch (const ConfigError& e) {
    std::cerr << "pixflow: config error: " << e.what() << '\n';
    return exit_usage;
  }
  if (common.dump_config) {
    std::cout << to_json(config).dump(2) << '\n';
    return exit_ok;
  }
  if (common.dump_graph) {
    // The shape only: nothing is listed, read or downloaded.
    PipelineOptions options;
    options.config = config;
    options.save_originals = !thumbs->parsed();
    const Source shape = gallery->parsed() ? Source{GallerySource{query}}
                         : urls->parsed()  ? Source{UrlListSource{}}
                                           : Source{FolderSource{folder}};
    std::cout << pipeline_dot(shape, options);
    return exit_ok;
  }
  if (common.out.empty()) {
    std::cerr << "pixflow: --out is required\n";
    return exit_usage;
  }
  if (auto problem = report_path_problem(common.report_file)) {
    std::cerr << "pixflow: --report " << common.report_file << ": " << *problem << '\n';
    return exit_usage;
  }
  if (auto problem = report_path_problem(common.trace_file == "-" ? std::string("./-") : common.trace_file)) {
    std::cerr << "pixflow: --trace " << common.trace_file << ": " << *problem << '\n';
    return exit_usage;
  }

  if (gallery->parsed()) {
    if (query.client_id.empty() && requires_client_id(query.api)) {
      std::cerr << "pixflow: --client-id (or IMGUR_CLIENT_ID) is required for " << query.api << '\n';
      return exit_usage;
    }
    return run(GallerySource{query}, common, config, true);
  }
  if (urls->parsed()) {
    auto list = read_url_list_file(url_file);
    if (!list) {
      std::cerr << "pixflow: " << list.error().reason << '\n';
      return exit_source_unusable;
    }
    return run(UrlListSource{std::move(list).value()}, common, config, true);
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) {
    std::cerr << "pixflow: no such folder: " << folder << '\n';
    return exit_source_unusable;
  }
  return run(FolderSource{folder}, common, config, false);
}
