// The one place that wires the tasks into engine stages. Everything image- or HTTP-specific stays in
// the task functions; this file only decides the order, the concurrency and what travels between them.
#include "pixflow/tasks/pipeline.hpp"

#include <opencv2/core/utility.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cctype>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "pixflow/engine/cancel.hpp"
#include "pixflow/engine/graph.hpp"
#include "pixflow/tasks/blocking_pool.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/naming.hpp"
#include "pixflow/tasks/output_lock.hpp"
#include "pixflow/tasks/sources.hpp"
#include "pixflow/tasks/thumbnail.hpp"
#include "pixflow/tasks/write.hpp"

namespace pixflow::tasks {
namespace {

using Bytes = std::vector<std::uint8_t>;

/// A thumbnail planned when its item is listed: its box, format and file name are fixed up front.
struct PlannedThumbnail {
  Size box;
  ImageFormat format = ImageFormat::png;
  std::string name;
};

/// One item on its way through the graph; `id` is its place in the ledger.
struct Job {
  std::size_t id = 0;
  std::string url;                          // gallery and URL-list items
  std::filesystem::path path;               // folder items
  std::string name;                         // the original's file name in OUT, safe and distinct
  std::vector<PlannedThumbnail> thumbnails;
  bool original_on_disk = false;            // resume: read OUT/name instead of downloading
};
struct Fetched {
  Job job;
  Bytes bytes;
};
struct Decoded {
  Job job;
  Bytes original;  // kept only when the original is written
  DecodedImage image;
};
struct Rendered {
  Job job;
  Bytes original;
  ThumbnailSet set;
};
struct Encoded {
  Job job;
  Bytes original;
  std::vector<std::pair<std::string, Bytes>> thumbnails;  // file name → encoded bytes
};
struct Written {
  std::size_t id = 0;                // the item's place in the ledger
  std::vector<std::string> outputs;  // file names in OUT
};
/// A listing page as it leaves the fetch node: its images, or why it could not be read.
struct Page {
  int number = 0;
  GalleryPage listing;
  std::string error;
};

/// Every item of the run with its status, in input order, and the mapping from graph keys to items.
/// Thread-safe; `on_item` is called under its lock, so one call at a time.
class Ledger {
 public:
  explicit Ledger(std::function<void(const ItemReport&)> on_item) : on_item_(std::move(on_item)) {}

  /// Adds an item ordered by `order` (input order) and returns its id.
  std::size_t add(ItemReport item, std::pair<std::uint64_t, std::uint64_t> order) {
    std::lock_guard lock(mutex_);
    entries_.push_back({order, std::move(item), {}});
    return entries_.size() - 1;
  }
  /// The files item `id` will have written once it is done (relative to OUT).
  void plan_outputs(std::size_t id, std::vector<std::string> outputs) {
    std::lock_guard lock(mutex_);
    entries_.at(id).planned = std::move(outputs);
  }
  /// From now on a failure of graph item `key` is a failure of item `id`.
  void bind(pixflow::ItemKey key, std::size_t id) {
    std::lock_guard lock(mutex_);
    by_key_[key] = id;
  }
  void finish(std::size_t id, ItemStatus status, std::string stage, std::string reason, std::vector<std::string> outputs = {}) {
    std::lock_guard lock(mutex_);
    ItemReport& item = entries_.at(id).item;
    item.status = status;
    item.stage = std::move(stage);
    item.reason = std::move(reason);
    item.outputs = std::move(outputs);
    if (on_item_) on_item_(item);
  }
  void set_detail(std::size_t id, std::string detail) {
    std::lock_guard lock(mutex_);
    entries_.at(id).item.detail = std::move(detail);
  }
  void set_attempts(std::size_t id, int attempts) {
    std::lock_guard lock(mutex_);
    entries_.at(id).item.attempts = attempts;
  }
  /// Counts for progress: {listed, ok, failed, skipped}.
  std::array<std::size_t, 4> counts() {
    std::lock_guard lock(mutex_);
    std::array<std::size_t, 4> c{entries_.size(), 0, 0, 0};
    for (const auto& e : entries_) {
      if (e.item.status == ItemStatus::ok) ++c[1];
      if (e.item.status == ItemStatus::failed) ++c[2];
      if (e.item.status == ItemStatus::skipped) ++c[3];
    }
    return c;
  }
  /// Returns false when `key` is not an item (a listing page).
  bool fail(pixflow::ItemKey key, const std::string& stage, const std::string& reason) {
    std::size_t id = 0;
    {
      std::lock_guard lock(mutex_);
      auto it = by_key_.find(key);
      if (it == by_key_.end()) return false;
      id = it->second;
    }
    finish(id, ItemStatus::failed, stage, reason);
    return true;
  }
  /// The items in input order. One never finished (the run was stopped) is `ok` when `complete` says
  /// its planned outputs are all in OUT (its writes ended, the stop came before it was recorded), else
  /// it fails with `unfinished_reason`.
  std::vector<ItemReport> take(const std::string& unfinished_reason,
                               const std::function<bool(const std::vector<std::string>&)>& complete) {
    std::lock_guard lock(mutex_);
    const auto by_order = [](const Entry& a, const Entry& b) { return a.order < b.order; };
    // Lists are added in input order already; a gallery's albums may not be.
    if (!std::is_sorted(entries_.begin(), entries_.end(), by_order)) std::stable_sort(entries_.begin(), entries_.end(), by_order);
    std::vector<ItemReport> items;
    items.reserve(entries_.size());
    for (auto& e : entries_) {
      if (e.item.status == ItemStatus::pending) {
        if (!e.planned.empty() && complete(e.planned)) {
          e.item.status = ItemStatus::ok;
          e.item.outputs = std::move(e.planned);
        } else {
          e.item.status = ItemStatus::failed;
          e.item.reason = unfinished_reason;
        }
        if (on_item_) on_item_(e.item);
      }
      items.push_back(std::move(e.item));
    }
    return items;
  }

 private:
  struct Entry {
    std::pair<std::uint64_t, std::uint64_t> order;
    ItemReport item;
    std::vector<std::string> planned;  // outputs, once planned
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
  std::map<pixflow::ItemKey, std::size_t> by_key_;
  std::function<void(const ItemReport&)> on_item_;
};

/// The report entry of an input, not finished yet.
ItemReport input_item(std::string input, bool is_path) {
  ItemReport item;
  item.input = std::move(input);
  item.is_path = is_path;
  return item;
}

/// The smallest box holding every requested box: what the decoder must keep enough pixels for.
Size largest_box(const std::vector<Size>& sizes) {
  Size box;
  for (const auto& s : sizes) {
    box.width = std::max(box.width, s.width);
    box.height = std::max(box.height, s.height);
  }
  return box;
}

/// The thumbnail format of an original called `name`: the requested one, or for `same` the format
/// its name says (.jpg/.jpeg, .png, .webp), PNG for anything else. Known before the download, so
/// names can be planned (and resumed) in input order.
ImageFormat planned_format(std::string_view name, ImageFormat requested) {
  if (requested != ImageFormat::same) return requested;
  const auto ext = std::filesystem::path(name).extension().string();
  std::string lower;
  for (char c : ext) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == ".jpg" || lower == ".jpeg") return ImageFormat::jpeg;
  if (lower == ".webp") return ImageFormat::webp;
  return ImageFormat::png;
}

/// The disk pool's threads: one per write in flight (they mostly sleep in fsync).
std::size_t disk_threads(const PipelineConfig& config) {
  return config.write_concurrency.is_unlimited() ? 16 : config.write_concurrency.limit();
}

/// Everything one run shares: the stages' common state and the graph they are wired into.
class PipelineRun {
 public:
  explicit PipelineRun(const PipelineOptions& options)
      : options_(options),
        config_(options.config),
        box_(largest_box(config_.thumbnail.sizes)),
        several_sizes_(config_.thumbnail.sizes.size() > 1),
        ledger_(options.on_item),
        graph_(make_graph()) {
    graph_.on_failure([this](const pixflow::ItemFailure& f) {
      if (!ledger_.fail(f.key, f.stage, f.reason)) note_listing_error(static_cast<int>(f.key.seq()), f.reason);
    });
  }

  PipelineReport run(const Source& source) {
    const auto started = std::chrono::steady_clock::now();
    std::visit([this](const auto& s) { build(s); }, source);
    PipelineReport report;
    report.run = graph_.run();
    // The run's wall time counts the planning before the graph started, too.
    report.run.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    report.items = ledger_.take(report.run.cancelled ? report.run.cancel_reason : "not processed",
                                [this](const std::vector<std::string>& outputs) { return written_by_this_run(outputs); });
    {
      std::lock_guard lock(listing_mutex_);
      std::sort(listing_errors_.begin(), listing_errors_.end(), [](const auto& a, const auto& b) { return a.page < b.page; });
      report.listing_errors = listing_errors_;
    }
    return report;
  }

  /// The graph's shape for `source`, built with no items (nothing listed, planned or run).
  std::string dot(const Source& source) {
    shape_only_ = true;
    std::visit([this](const auto& s) { build(s); }, source);
    return graph_.dot();
  }

 private:
  pixflow::Graph make_graph() {
    return options_.executor != nullptr ? pixflow::Graph(*options_.executor, graph_options()) : pixflow::Graph(graph_options());
  }

  pixflow::GraphOptions graph_options() {
    pixflow::GraphOptions g{.threads = config_.threads,
                            .max_in_flight = config_.max_in_flight,
                            .timeout_s = config_.timeout_s,
                            .stop_on_interrupt = options_.stop_on_interrupt,
                            .stop = options_.stop,
                            .trace_path = options_.trace_path};
    if (options_.on_progress) {
      g.progress_interval_s = options_.progress_interval_s;
      g.on_progress = [this, started = std::chrono::steady_clock::now()](const std::vector<pixflow::NodeReport>& nodes) {
        const auto c = ledger_.counts();
        options_.on_progress(Progress{c[0], c[1], c[2], c[3], listing_done_.load(),
                                      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                                      nodes});
      };
    }
    return g;
  }

  /// Starts the HTTP loop; called while the graph is built, before any stage can use it.
  void start_http() {
    http_ = std::make_unique<HttpClient>(http_options(config_));
    graph_.on_cancel([this] { http_->cancel_all(); });
  }

  /// Whether every file of `outputs` stands complete in OUT, written by this run: files only ever
  /// appear under their final name complete (temporary + rename). Without --force, an item that is not
  /// skipped lacked one of them when planned, so their presence means this run wrote them; with --force
  /// they must also be newer than the run's start.
  bool written_by_this_run(const std::vector<std::string>& outputs) const {
    return all_complete(outputs) && (!options_.force || std::all_of(outputs.begin(), outputs.end(), [this](const std::string& name) {
      std::error_code ec;
      return std::filesystem::last_write_time(options_.out / name, ec) >= started_on_disk_clock_;
    }));
  }

  /// Every file of `outputs` stands complete in OUT (output_complete: a regular file, never opened).
  bool all_complete(const std::vector<std::string>& outputs) const {
    return std::all_of(outputs.begin(), outputs.end(), [this](const std::string& name) { return output_complete(options_.out, name); });
  }

  /// Why the run must stop before its graph starts (while planning a long list): the same requests the
  /// graph watches once it runs. Checked every few thousand items, so a stop is honoured in well under
  /// a second at any size.
  [[nodiscard]] std::optional<std::string> stop_requested_while_planning() const {
    if (options_.stop.stop_requested()) return "cancelled";
    if (options_.stop_on_interrupt && pixflow::interrupt_requested()) return "interrupted";
    return std::nullopt;
  }

  /// Plans the items of a list source in input order, `plan_one(n)` each; a stop request ends the
  /// planning, cancels the run before it starts, and leaves the unplanned items in the report as
  /// not processed (they fail with the stop's reason).
  template <typename PlanOne, typename Describe>
  void plan_all(std::size_t count, PlanOne plan_one, Describe describe) {
    constexpr std::size_t check_every = 4096;
    for (std::size_t n = 0; n < count; ++n) {
      if (n % check_every == 0) {
        if (auto reason = stop_requested_while_planning()) {
          for (std::size_t rest = n; rest < count; ++rest) ledger_.add(describe(rest), {rest, 0});
          graph_.cancel(*reason);
          return;
        }
      }
      plan_one(n);
    }
  }

  void note_listing_error(int page, std::string reason) {
    std::lock_guard lock(listing_mutex_);
    listing_errors_.push_back({page, std::move(reason)});
  }

  /// Registers an item (in input order) and plans its outputs. Returns the job to run, or nothing
  /// when the item is already done (resume) and was reported `skipped`.
  std::optional<Job> plan(std::string input, bool is_path, std::pair<std::uint64_t, std::uint64_t> order,
                          std::string original_name) {
    Job job;
    job.id = ledger_.add(input_item(input, is_path), order);
    if (is_path)
      job.path = input;
    else
      job.url = input;
    // Names are claimed here, in input order, so the same input gives the same names every run.
    job.name = names_.claim(original_name, input);
    for (const Size& box : config_.thumbnail.sizes) {
      const ImageFormat format = planned_format(job.name, config_.thumbnail.format);
      job.thumbnails.push_back(
          {box, format, names_.claim(thumbnail_name(job.name, box, several_sizes_, format), input + "\n" + to_string(box))});
    }
    std::vector<std::string> outputs;
    if (options_.save_originals) outputs.push_back(job.name);
    for (const auto& t : job.thumbnails) outputs.push_back(t.name);
    if (!options_.force) {
      // Files only ever appear under their final name complete (temporary + rename).
      if (all_complete(outputs)) {
        ledger_.finish(job.id, ItemStatus::skipped, "", "already done", std::move(outputs));
        return std::nullopt;
      }
      job.original_on_disk = options_.save_originals && output_complete(options_.out, job.name);
    }
    ledger_.plan_outputs(job.id, std::move(outputs));
    return job;
  }

  // --- sources ---------------------------------------------------------------------------------

  /// Every item of a list source is registered (and its outputs planned) before the run, so an item
  /// the run never reaches (a timeout, Ctrl-C) is still in the report. The source then hands out the
  /// jobs still to do; the engine numbers what it emits 0, 1, 2..., which binds each job's key.
  static auto job_source(std::shared_ptr<std::vector<Job>> jobs, Ledger& ledger) {
    return [jobs, &ledger, next = std::size_t{0}]() mutable -> std::optional<Job> {
      if (next >= jobs->size()) return std::nullopt;
      const std::uint64_t seq = next;
      Job& job = (*jobs)[next++];
      ledger.bind(pixflow::ItemKey{seq}, job.id);
      return std::move(job);
    };
  }

  void build(const UrlListSource& source) {
    start_http();
    listing_done_.store(true);
    auto jobs = std::make_shared<std::vector<Job>>();
    plan_all(
        source.urls.size(),
        [&](std::size_t n) {
          if (auto job = plan(source.urls[n], false, {n, 0}, name_from_url(source.urls[n]))) jobs->push_back(std::move(*job));
        },
        [&](std::size_t n) { return input_item(source.urls[n], false); });
    downloads(graph_.source("source", job_source(jobs, ledger_)).limit());
  }

  void build(const GallerySource& source) {
    query_ = source.query;
    start_http();
    const std::size_t window = config_.fetch_concurrency.is_unlimited() ? 16 : config_.fetch_concurrency.limit();
    auto next_page = std::make_shared<int>(0);
    auto pages =
        graph_.source("pages", [this, next_page]() -> std::optional<int> {
          const bool bounded = query_.pages > 0;
          if (listing_ended_.load() || (bounded && *next_page >= query_.pages)) return std::nullopt;
          return (*next_page)++;
        })
            .limit(window)  // pages are asked for only as fast as they are fetched
            .io<Page>("fetch", config_.fetch_concurrency, [this](int page, pixflow::Completion<Page> done) {
              fetch_page(page, std::move(done));
            });
    downloads(pages
                  .expand<Job>("list", pixflow::Concurrency(1),
                               [this](Page page, pixflow::Emitter<Job>& emit) -> pixflow::Result<void> {
                                 list_in_order(std::move(page), emit);
                                 return pixflow::ok();
                               })
                  .limit());
  }

  void build(const FolderSource& source) {
    listing_done_.store(true);
    // Every entry of the folder is in the report: the files it takes, and the others skipped with why
    // (not an image, not a regular file, pixflow's own outputs when OUT is that folder).
    auto entries = shape_only_ ? decltype(scan_image_folder(source.dir))(std::vector<FolderEntry>{})
                               : scan_image_folder(source.dir, options_.out);
    if (!entries) {
      note_listing_error(0, entries.error().reason);
      return;
    }
    auto jobs = std::make_shared<std::vector<Job>>();
    plan_all(
        entries->size(),
        [&](std::size_t n) {
          const FolderEntry& entry = (*entries)[n];
          if (!entry.skip_reason.empty()) {
            ledger_.finish(ledger_.add(input_item(entry.path.string(), true), {n, 0}), ItemStatus::skipped, "list",
                           entry.skip_reason);
            return;
          }
          if (auto job = plan(entry.path.string(), true, {n, 0}, sanitize_name(entry.path.filename().string())))
            jobs->push_back(std::move(*job));
        },
        [&](std::size_t n) { return input_item((*entries)[n].path.string(), true); });
    decode_and_write(graph_.source("source", job_source(jobs, ledger_))
                         .limit()
                         .compute("read", config_.download.concurrency,
                                  [max_bytes = config_.download.max_bytes](Job job) -> pixflow::Result<Fetched> {
                                    auto bytes = read_file(job.path, max_bytes);
                                    if (!bytes) return pixflow::Failure{bytes.error().reason};
                                    return Fetched{std::move(job), std::move(bytes).value()};
                                  }));
  }

  // --- the listing -------------------------------------------------------------------------------

  /// Requests one gallery page, then the albums it names only by id; completes with all of it. A page
  /// that cannot be read still completes (with its error), so the listing order can move past it.
  void fetch_page(int page, pixflow::Completion<Page> done) {
    http_->submit(HttpRequest{gallery_page_url(query_, page), imgur_headers(query_)},
                  [this, page, done](HttpResponse response) {
                    const std::string where = "listing page " + std::to_string(page) + ": ";
                    if (!response.ok()) {
                      listing_ended_.store(true);  // a page that cannot be read ends the paging (--pages 0)
                      return done(Page{page, {}, where + response.failure_reason()});
                    }
                    const std::string_view text(reinterpret_cast<const char*>(response.body.data()), response.body.size());
                    auto parsed = parse_gallery_page(text);
                    if (!parsed) {
                      listing_ended_.store(true);
                      return done(Page{page, {}, where + parsed.error().reason});
                    }
                    if (parsed->end) listing_ended_.store(true);
                    expand_albums(Page{page, std::move(parsed).value(), {}}, done);
                  });
  }

  /// A page whose cover-only albums are being fetched, one after the other.
  struct AlbumExpansion {
    Page page;
    std::vector<std::vector<ListedImage>> albums;  // images of albums_to_expand[0..], as fetched
  };

  void expand_albums(Page page, pixflow::Completion<Page> done) {
    expand_next_album(std::make_shared<AlbumExpansion>(AlbumExpansion{std::move(page), {}}), std::move(done));
  }

  /// Fetches the next album of `state`, or, when all are in, puts each album's images where the album
  /// was listed and completes the page.
  void expand_next_album(std::shared_ptr<AlbumExpansion> state, pixflow::Completion<Page> done) {
    GalleryPage& listing = state->page.listing;
    const std::size_t i = state->albums.size();
    if (i == listing.albums_to_expand.size()) {
      for (std::size_t k = i; k-- > 0;) {  // last first, so earlier positions stay valid
        auto& images = state->albums[k];
        const auto at = listing.images.begin() + static_cast<std::ptrdiff_t>(listing.album_positions[k]);
        listing.images.insert(at, std::make_move_iterator(images.begin()), std::make_move_iterator(images.end()));
      }
      return done(std::move(state->page));
    }
    const std::string album = listing.albums_to_expand[i];
    http_->submit(HttpRequest{album_images_url(query_, album), imgur_headers(query_)},
                  [this, state, done, album](HttpResponse response) {
                    std::vector<ListedImage> images;
                    const std::string where = "album " + album + ": ";
                    if (!response.ok()) {
                      note_listing_error(state->page.number, where + response.failure_reason());
                    } else {
                      const std::string_view text(reinterpret_cast<const char*>(response.body.data()), response.body.size());
                      auto parsed = parse_album_images(text);
                      if (parsed)
                        images = std::move(parsed).value();
                      else
                        note_listing_error(state->page.number, where + parsed.error().reason);
                    }
                    state->albums.push_back(std::move(images));
                    expand_next_album(state, done);
                  });
  }

  /// Lists pages in page order whatever order they arrive in, so items (and their names) come in
  /// listing order. Only the serial `list` stage touches the waiting pages.
  void list_in_order(Page page, pixflow::Emitter<Job>& emit) {
    waiting_pages_.emplace(page.number, std::move(page));
    while (!waiting_pages_.empty() && waiting_pages_.begin()->first == next_page_to_list_) {
      list_page(waiting_pages_.begin()->second, emit);
      waiting_pages_.erase(waiting_pages_.begin());
      ++next_page_to_list_;
    }
    if (listing_ended_.load() && waiting_pages_.empty()) listing_done_.store(true);
  }

  /// Turns one page into items: skipped ones are reported at once, duplicates dropped, the rest emitted.
  void list_page(const Page& page, pixflow::Emitter<Job>& emit) {
    if (!page.error.empty()) {
      note_listing_error(page.number, page.error);
      return;
    }
    std::uint64_t position = 0;
    for (const auto& image : page.listing.images) {
      const std::pair<std::uint64_t, std::uint64_t> order{static_cast<std::uint64_t>(page.number), position++};
      if (!links_.first_time(image.link)) continue;
      if (!image.skip_reason.empty()) {
        ledger_.finish(ledger_.add(input_item(image.link, false), order), ItemStatus::skipped, "list", image.skip_reason);
        continue;
      }
      if (auto job = plan(image.link, false, order, name_from_url(image.link))) {
        ledger_.bind(emit.next_key(), job->id);
        emit(std::move(*job));
      }
    }
  }

  // --- download → decode → thumbnail → [custom] → encode → write ---------------------------------

  void downloads(pixflow::Stream<Job> jobs) {
    decode_and_write(jobs.io<Fetched>("download", config_.download.concurrency,
                                      [this](Job job, pixflow::Completion<Fetched> done) { download(std::move(job), done); }));
  }

  void download(Job job, pixflow::Completion<Fetched> done) {
    if (job.original_on_disk) {
      // Resume: the original was written by an earlier run (atomically, so it is complete). Read on
      // the disk pool; if it cannot be read after all, download it.
      return disk_->submit([this, job = std::move(job), done]() mutable {
        auto bytes = read_file(options_.out / job.name, config_.download.max_bytes);
        if (bytes) return done(Fetched{std::move(job), std::move(bytes).value()});
        job.original_on_disk = false;
        download(std::move(job), done);
      });
    }
    std::string url = job.url;
    http_->submit(HttpRequest{std::move(url), {}}, [this, job = std::move(job), done](HttpResponse response) mutable {
      ledger_.set_attempts(job.id, response.attempts);
      if (!response.ok()) return done(pixflow::Failure{response.failure_reason()});
      if (response.body.empty()) return done(pixflow::Failure{"empty body"});
      if (sniff_format(response.body) == ImageFormat::unknown) {
        const std::string type = response.content_type.empty() ? "unknown type" : response.content_type;
        return done(pixflow::Failure{"not an image (" + type + ")"});
      }
      done(Fetched{std::move(job), std::move(response.body)});
    });
  }

  void decode_and_write(pixflow::Stream<Fetched> fetched) {
    auto rendered =
        fetched
            .compute("decode", config_.decode_concurrency,
                     [this](Fetched item) -> pixflow::Result<Decoded> {
                       auto image = decode_image(item.bytes, box_, decode_limits_);
                       if (!image) return pixflow::Failure{image.error().reason};
                       // An original read back from OUT (resume) is not written again.
                       const bool write_original = options_.save_originals && !item.job.original_on_disk;
                       Bytes original = write_original ? std::move(item.bytes) : Bytes{};
                       return Decoded{std::move(item.job), std::move(original), std::move(image).value()};
                     })
            .compute("thumbnail", config_.thumbnail.concurrency, [](Decoded item) -> pixflow::Result<Rendered> {
              // One decode feeds every requested size.
              Rendered out{std::move(item.job), std::move(item.original), {}};
              out.set.input = out.job.url.empty() ? out.job.path.string() : out.job.url;
              for (const auto& planned : out.job.thumbnails)
                out.set.thumbnails.push_back(
                    {planned.box, make_thumbnail(item.image.pixels, planned.box), planned.format, planned.name});
              return out;
            });
    for (const auto& stage : options_.stages) {
      rendered = rendered.compute(stage.name, stage.concurrency, [body = stage.body](Rendered item) -> pixflow::Result<Rendered> {
        auto result = body(item.set);
        if (!result) return std::move(result).failure();
        return item;
      });
    }
    const EncodeOptions encode{config_.thumbnail.jpeg_quality, config_.thumbnail.webp_quality, config_.thumbnail.png_compression};
    rendered
        .compute("encode", config_.thumbnail.concurrency,
                 [encode](Rendered item) -> pixflow::Result<Encoded> {
                   Encoded out{std::move(item.job), std::move(item.original), {}};
                   for (const auto& t : item.set.thumbnails) {
                     auto bytes = encode_image(t.pixels, t.format, encode);
                     if (!bytes) return pixflow::Failure{bytes.error().reason};
                     out.thumbnails.emplace_back(t.name, std::move(bytes).value());
                   }
                   return out;
                 })
        // Writes fsync: they run on the disk pool, so no compute worker waits on the disk.
        .io<Written>("write", config_.write_concurrency,
                     [this](Encoded item, pixflow::Completion<Written> done) {
                       disk_->submit([this, item = std::move(item), done] { done(write_outputs(item)); });
                     })
        .sink("record", pixflow::Concurrency::unlimited(), [this](Written item) -> pixflow::Result<void> {
          ledger_.finish(item.id, ItemStatus::ok, "", "", std::move(item.outputs));
          return pixflow::ok();
        });
  }

  /// Writes an item's original (unless it is already in OUT) and its thumbnails, each atomically. A
  /// failure's reason is the same for every item ("cannot write: no space left on device"), so they
  /// group; the file at fault goes into the item's `detail`.
  pixflow::Result<Written> write_outputs(const Encoded& item) {
    Written written{item.job.id, {}};
    const auto failed = [&](const Error& error) {
      ledger_.set_detail(item.job.id, error.detail);
      return pixflow::Failure{error.reason};
    };
    if (options_.save_originals) {
      if (!item.job.original_on_disk) {
        auto path = write_file_atomically(options_.out, item.job.name, item.original);
        if (!path) return failed(path.error());
      }
      written.outputs.push_back(item.job.name);
    }
    for (const auto& [name, bytes] : item.thumbnails) {
      auto path = write_file_atomically(options_.out, name, bytes);
      if (!path) return failed(path.error());
      written.outputs.push_back(name);
    }
    return written;
  }

  const PipelineOptions& options_;
  const std::filesystem::file_time_type started_on_disk_clock_ = std::filesystem::file_time_type::clock::now();
  const PipelineConfig& config_;
  const Size box_;
  const DecodeLimits decode_limits_{.max_memory_bytes = config_.decode_max_memory_mb << 20};
  const bool several_sizes_;
  GalleryQuery query_;
  Ledger ledger_;
  NameRegistry names_;
  LinkDeduplicator links_;
  std::atomic<bool> listing_ended_{false};  // a page came back empty: ask for no more
  std::atomic<bool> listing_done_{false};   // every item is known
  std::map<int, Page> waiting_pages_;       // list stage only
  int next_page_to_list_ = 0;               // list stage only
  std::mutex listing_mutex_;
  std::vector<ListingError> listing_errors_;
  bool shape_only_ = false;                 // dot(): the graph is built, never run
  pixflow::Graph graph_;
  std::unique_ptr<HttpClient> http_;  // after graph_: destroyed first, completing what it still holds
  std::unique_ptr<BlockingPool> disk_ = std::make_unique<BlockingPool>(disk_threads(config_));
};

}  // namespace

std::string pipeline_dot(const Source& source, const PipelineOptions& options) {
  PipelineRun run(options);
  return run.dot(source);
}

HttpOptions http_options(const PipelineConfig& config) {
  const auto& d = config.download;
  HttpOptions options;
  const std::size_t downloads = d.concurrency.is_unlimited() ? 256 : d.concurrency.limit();
  const std::size_t pages = config.fetch_concurrency.is_unlimited() ? 16 : config.fetch_concurrency.limit();
  options.max_in_flight = downloads + pages;
  options.per_host = d.per_host;
  options.connect_timeout_s = d.connect_timeout_s;
  options.timeout_s = d.timeout_s;
  options.header_timeout_s = d.header_timeout_s;
  options.stall_timeout_s = d.stall_timeout_s;
  options.min_speed_bytes_s = static_cast<double>(d.min_speed_bytes_s);
  options.max_bytes = d.max_bytes;
  options.max_redirects = d.max_redirects;
  options.retries = d.retries;
  options.backoff_s = d.backoff_s;
  options.max_retry_wait_s = d.max_retry_wait_s;
  options.rate_per_host = d.rate_per_host;
  options.ca_file = d.ca_file;
  options.http2 = d.http2;
  return options;
}

PipelineReport run_pipeline(const Source& source, const PipelineOptions& options) {
  // Creates OUT, proves it writable, keeps other runs out, and (when alone) removes the temporaries
  // of crashed runs.
  auto lock = OutputLock::acquire(options.out, options.output_lock);
  if (!lock) throw OutputFolderError(lock.error().reason);
  // TBB owns the cores: OpenCV must not start threads of its own inside a node.
  cv::setNumThreads(1);
  PipelineRun run(options);
  return run.run(source);
}

}  // namespace pixflow::tasks
