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
#include <thread>
#include <utility>

#include "pixflow/engine/cancel.hpp"
#include "pixflow/engine/graph.hpp"
#include "pixflow/tasks/animation.hpp"
#include "pixflow/tasks/blocking_pool.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/listing.hpp"
#include "pixflow/tasks/naming.hpp"
#include "pixflow/tasks/output_lock.hpp"
#include "pixflow/tasks/sources.hpp"
#include "pixflow/tasks/thumbnail.hpp"
#include "pixflow/tasks/video.hpp"
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

/// Where an item stands in OUT when it is planned: what the `resume` route decides on.
enum class Resume : std::size_t {
  done = 0,             ///< every output is there: skipped, "already done"
  original_in_out = 1,  ///< the original is there (an earlier run): read it instead of downloading
  fetch = 2,            ///< download it (or, for a folder, read the file)
};

/// One item on its way through the graph; `id` is its entry in the ledger.
struct Job {
  std::size_t id = 0;
  std::string url;                          // gallery, URL-list and stream items
  std::filesystem::path path;               // folder items
  std::string name;                         // the original's file name in OUT, safe and distinct
  std::vector<PlannedThumbnail> thumbnails;
  Resume resume = Resume::fetch;
};
struct Fetched {
  Job job;
  Bytes bytes;
  bool from_out = false;  // read back from OUT (resume): not written again
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
  std::size_t id = 0;                // the item's entry in the ledger
  std::vector<std::string> outputs;  // file names in OUT
};

/// Every item of the run with its status, and the mapping from graph keys to items. Items are kept
/// (for the report, in input order: ids are given in input order) or forgotten once finished and
/// passed to `on_item` (PipelineOptions::keep_items false, and streams): then the ledger holds only
/// the items alive, whatever the size of the input. Thread-safe; `on_item` is called under its lock,
/// so one call at a time.
class Ledger {
 public:
  Ledger(std::function<void(const ItemReport&)> on_item, bool keep_finished)
      : on_item_(std::move(on_item)), keep_finished_(keep_finished) {}

  /// Adds an item (in input order) and returns its id, which is also its input index.
  std::size_t add(ItemReport item) {
    std::lock_guard lock(mutex_);
    const std::size_t id = next_id_++;
    item.index = id;
    entries_.emplace(id, Entry{std::move(item), {}, std::nullopt});
    ++listed_;
    return id;
  }
  /// Drops item `id` as if it had never been added (a stream push that was refused).
  void forget(std::size_t id) {
    std::lock_guard lock(mutex_);
    erase_locked(entries_.find(id));
    --listed_;
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
    entries_.at(id).key = std::move(key);
  }
  void finish(std::size_t id, ItemStatus status, std::string stage, std::string reason, std::vector<std::string> outputs = {}) {
    {
      std::lock_guard lock(mutex_);
      const auto it = entries_.find(id);
      ItemReport& item = it->second.item;
      item.status = status;
      item.stage = std::move(stage);
      item.reason = std::move(reason);
      item.outputs = std::move(outputs);
      tally_.add(item);
      if (on_item_) on_item_(item);
      if (it->second.key) by_key_.erase(*it->second.key);
      it->second.key.reset();
      it->second.planned.clear();
      if (!keep_finished_) erase_locked(it);
    }
    if (after_finish_) after_finish_();
  }
  /// Called after each finish(), outside the ledger's lock (set before the run).
  void after_finish(std::function<void()> hook) { after_finish_ = std::move(hook); }
  /// Items added and not finished yet.
  std::size_t unfinished() {
    std::lock_guard lock(mutex_);
    return listed_ - tally_.total;
  }
  void set_detail(std::size_t id, std::string detail) {
    std::lock_guard lock(mutex_);
    entries_.at(id).item.detail = std::move(detail);
  }
  void set_attempts(std::size_t id, int attempts) {
    std::lock_guard lock(mutex_);
    entries_.at(id).item.attempts = attempts;
  }
  /// Items known so far (listed), and the counts of those finished.
  std::pair<std::size_t, ItemTally> counts() {
    std::lock_guard lock(mutex_);
    return {listed_, tally_};
  }
  /// Returns false when `key` is not an item (a listing page).
  bool fail(const pixflow::ItemKey& key, const std::string& stage, const std::string& reason) {
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
  /// The items kept, in input order. One never finished (the run was stopped) is `ok` when `complete`
  /// says its planned outputs are all in OUT (its writes ended, the stop came before it was recorded),
  /// else it fails with `unfinished_reason`; either way it is passed to `on_item` now.
  std::vector<ItemReport> take(const std::string& unfinished_reason,
                               const std::function<bool(const std::vector<std::string>&)>& complete) {
    std::lock_guard lock(mutex_);
    std::vector<ItemReport> items;
    items.reserve(entries_.size());
    for (auto& [id, e] : entries_) {
      if (e.item.status == ItemStatus::pending) {
        if (!e.planned.empty() && complete(e.planned)) {
          e.item.status = ItemStatus::ok;
          e.item.outputs = std::move(e.planned);
        } else {
          e.item.status = ItemStatus::failed;
          e.item.reason = unfinished_reason;
        }
        tally_.add(e.item);
        if (on_item_) on_item_(e.item);
      }
      if (keep_finished_) items.push_back(std::move(e.item));
    }
    entries_.clear();
    by_key_.clear();
    return items;
  }
  /// The counts of every item finished (after take(): of every item).
  ItemTally tally() {
    std::lock_guard lock(mutex_);
    return tally_;
  }

 private:
  struct Entry {
    ItemReport item;
    std::vector<std::string> planned;   // outputs, once planned, until finished
    std::optional<pixflow::ItemKey> key;  // its graph key, while it is in the graph
  };
  void erase_locked(std::map<std::size_t, Entry>::iterator it) {
    if (it == entries_.end()) return;
    if (it->second.key) by_key_.erase(*it->second.key);
    entries_.erase(it);
  }
  std::mutex mutex_;
  std::map<std::size_t, Entry> entries_;  // by id: input order
  std::size_t next_id_ = 0;
  std::map<pixflow::ItemKey, std::size_t> by_key_;
  std::size_t listed_ = 0;
  ItemTally tally_;
  std::function<void(const ItemReport&)> on_item_;
  std::function<void()> after_finish_;
  const bool keep_finished_;
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

/// The disk pool's threads: one per write in flight (they mostly sleep in fsync).
std::size_t disk_threads(const PipelineConfig& config) {
  return config.write_concurrency.is_unlimited() ? 16 : config.write_concurrency.limit();
}

/// Everything one run shares: the stages' common state and the graph they are wired into.
///
/// The graph (pipeline_dot prints it; README.md draws it):
///   sources — gallery: pages → fetch (a page and its albums) → list (in order, each link once);
///             URL list, folder: the planned items; stream: items pushed while the run goes on —
///   → resume (route: done → skip; original in OUT → read original; else → download, or read for a
///     folder) → fetched (merge) → decode → thumbnail → [custom stages] → encode → write → record.
class PipelineRun {
 public:
  PipelineRun(const PipelineOptions& options, bool keep_items, const OutputSync* output_sync = nullptr)
      : options_(options),
        output_sync_(output_sync),
        config_(options.config),
        box_(largest_box(config_.thumbnail.sizes)),
        several_sizes_(config_.thumbnail.sizes.size() > 1),
        ledger_(options.on_item, keep_items),
        graph_(make_graph()) {
    graph_.on_failure([this](const pixflow::ItemFailure& f) {
      if (!ledger_.fail(f.key, f.stage, f.reason)) {
        note_listing_error(static_cast<int>(f.key.seq()), f.reason);
        open_listing_gate();  // a page lost this way never reaches the listing: nothing may wait for it
      }
    });
  }

  PipelineReport run(const Source& source) {
    const auto started = std::chrono::steady_clock::now();
    std::visit([this](const auto& s) { build(s); }, source);
    PipelineReport report;
    report.run = graph_.run();
    if (producer_.joinable()) producer_.join();
    if (report_unplanned_) report_unplanned_();
    // Durability "at-end": everything this run wrote reaches the disk before it reports (one syncfs
    // on a descriptor held since before the run, so a write-back error at any time is seen).
    if (config_.durability == Durability::at_end && output_sync_ != nullptr) {
      if (auto synced = output_sync_->sync(); !synced) report.sync_error = synced.failure().reason;
    }
    // The run's wall time counts the planning before the graph started, too.
    report.run.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    report.items = ledger_.take(report.run.cancelled ? report.run.cancel_reason : "not processed",
                                [this](const std::vector<std::string>& outputs) { return written_by_this_run(outputs); });
    report.tally = ledger_.tally();
    {
      std::lock_guard lock(listing_mutex_);
      std::sort(listing_errors_.begin(), listing_errors_.end(), [](const auto& a, const auto& b) { return a.page < b.page; });
      report.listing_errors = listing_errors_;
    }
    if (producer_error_) std::rethrow_exception(producer_error_);
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
        const auto [listed, c] = ledger_.counts();
        options_.on_progress(Progress{listed, c.ok, c.failed, c.skipped, listing_done_.load(),
                                      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                                      nodes});
      };
    }
    return g;
  }

  /// Starts the HTTP loop; called while the graph is built, before any stage can use it.
  void start_http() {
    http_ = std::make_unique<HttpClient>(http_options(config_));
    graph_.on_cancel([this] {
      http_->cancel_all();
      release_parked_pages();
    });
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

  void note_listing_error(int page, std::string reason) {
    std::lock_guard lock(listing_mutex_);
    listing_errors_.push_back({page, std::move(reason)});
  }

  /// A file name in OUT for `key`'s output: distinct in the run (input order decides who gets
  /// "-2"), or, for a stream, the name alone — every worker must give an item the same names.
  std::string claim(std::string name, const std::string& key) { return stream_ ? name : names_.claim(name, key); }

  /// The thumbnail format of an original called `name` (known before the download, so names can be
  /// planned): output_format's, or, when animations are kept ("animate"), animated_output_format's for
  /// a .gif or a .webp (they may be animated; an animated file named otherwise gets a still).
  ImageFormat planned_format(const std::string& name) const {
    const ImageFormat by_name = format_of_name(name);
    const bool may_animate = by_name == ImageFormat::gif || by_name == ImageFormat::webp;
    if (config_.thumbnail.animated == AnimatedMode::animate && may_animate)
      return animated_output_format(by_name, config_.thumbnail.format);
    return output_format(by_name, config_.thumbnail.format);
  }

  /// Registers an item (in input order), plans its outputs and finds where it stands in OUT.
  Job plan(std::string input, bool is_path, std::string original_name) {
    Job job;
    job.id = ledger_.add(input_item(input, is_path));
    if (is_path)
      job.path = input;
    else
      job.url = input;
    // Names are claimed here, in input order, so the same input gives the same names every run.
    job.name = claim(original_name, input);
    const ImageFormat format = planned_format(job.name);
    for (const Size& box : config_.thumbnail.sizes)
      job.thumbnails.push_back({box, format, claim(thumbnail_name(job.name, box, several_sizes_, format), input + "\n" + to_string(box))});
    std::vector<std::string> outputs = outputs_of(job);
    // Files only ever appear under their final name complete (temporary + rename).
    if (!options_.force && all_complete(outputs))
      job.resume = Resume::done;
    else if (!options_.force && options_.save_originals && output_complete(options_.out, job.name))
      job.resume = Resume::original_in_out;
    ledger_.plan_outputs(job.id, std::move(outputs));
    return job;
  }

  // --- sources ---------------------------------------------------------------------------------

  /// The items of a list source (a URL list, a folder's entries), planned one by one as the graph
  /// asks for them: only the items alive are in memory, whatever the length of the list. `take(n)`
  /// plans entry n and returns its job, or nothing when the entry is reported at once (skipped). The
  /// engine numbers what the source emits 0, 1, 2..., which binds each job's key. Entries the run
  /// never reached (a timeout, Ctrl-C) are added when it ends, so the report still has every one.
  template <class Take, class Describe>
  auto list_source(std::size_t count, Take take, Describe describe) {
    auto next = std::make_shared<std::size_t>(0);
    report_unplanned_ = [this, next, count, describe] {
      for (; *next < count; ++*next) ledger_.add(describe(*next));
    };
    return graph_.source("source", [this, next, count, take, emitted = std::uint64_t{0}]() mutable -> std::optional<Job> {
      while (*next < count) {
        std::optional<Job> job = take((*next)++);
        if (!job) continue;
        ledger_.bind(pixflow::ItemKey{emitted++}, job->id);
        return job;
      }
      return std::nullopt;
    });
  }

  void build(const UrlListSource& source) {
    start_http();
    listing_done_.store(true);
    const auto& urls = source.urls;
    fetch_and_thumbnail(list_source(
                            urls.size(), [this, &urls](std::size_t n) { return std::optional(plan(urls[n], false, name_from_url(urls[n]))); },
                            [&urls](std::size_t n) { return input_item(urls[n], false); })
                            .limit(),
                        &PipelineRun::downloads);
  }

  void build(const GallerySource& source) {
    start_http();
    lister_ = std::make_unique<GalleryLister>(*http_, source.query);
    order_ = std::make_unique<ListingOrder>(source.query.pages);
    const std::size_t window = config_.fetch_concurrency.is_unlimited() ? 16 : config_.fetch_concurrency.limit();
    auto pages =
        graph_.source("pages", [this, next = 0]() mutable -> std::optional<int> {
          std::lock_guard lock(listing_mutex_);
          if (!order_->wanted(next)) return std::nullopt;
          return next++;
        })
            .limit(window)  // pages are asked for only as fast as they are fetched
            .io<ListedPage>("fetch", config_.fetch_concurrency, [this](int page, pixflow::Completion<ListedPage> done) {
              fetch_page_when_room(page, std::move(done));
            });
    ledger_.after_finish([this] { fetch_parked_pages(); });
    auto items = pages.expand<Job>("list", pixflow::Concurrency(1), [this](ListedPage page, pixflow::Emitter<Job>& emit) -> pixflow::Result<void> {
      list(std::move(page), emit);
      return pixflow::ok();
    });
    fetch_and_thumbnail(items.limit(), &PipelineRun::downloads);
  }

  void build(const FolderSource& source) {
    listing_done_.store(true);
    // Every entry of the folder is in the report: the files it takes, and the others skipped with why
    // (not an image, not a regular file, pixflow's own outputs when OUT is that folder).
    auto scanned = shape_only_ ? decltype(scan_image_folder(source.dir))(std::vector<FolderEntry>{})
                               : scan_image_folder(source.dir, options_.out);
    if (!scanned) {
      note_listing_error(0, scanned.error().reason);
      return;
    }
    auto entries = std::make_shared<std::vector<FolderEntry>>(std::move(scanned).value());
    const auto take = [this, entries](std::size_t n) -> std::optional<Job> {
      const FolderEntry& entry = (*entries)[n];
      if (entry.skip_reason.empty()) return plan(entry.path.string(), true, sanitize_name(entry.path.filename().string()));
      ledger_.finish(ledger_.add(input_item(entry.path.string(), true)), ItemStatus::skipped, "list", entry.skip_reason);
      return std::nullopt;
    };
    const auto describe = [entries](std::size_t n) { return input_item((*entries)[n].path.string(), true); };
    fetch_and_thumbnail(list_source(entries->size(), take, describe).limit(), &PipelineRun::read_files);
  }

  void build(const StreamSource& source) {
    start_http();
    stream_ = true;
    auto input = graph_.input<Job>("stream", config_.max_in_flight);
    fetch_and_thumbnail(input.stream(), &PipelineRun::downloads);
    if (shape_only_) return;
    // The producer runs on a thread of its own; the feed plans each URL and pushes it. The engine
    // numbers the input's items 0, 1, 2... in the order they are pushed (the only input, pushes one
    // at a time), which binds each job's key before its push.
    producer_ = std::jthread([this, input, produce = source.produce]() mutable {
      std::mutex push_mutex;
      std::uint64_t pushed = 0;
      ItemFeed feed(
          [&](std::string url) {
            std::lock_guard lock(push_mutex);
            Job job = plan(url, false, name_from_url(url));
            const std::size_t id = job.id;
            ledger_.bind(pixflow::ItemKey{pushed}, id);
            if (!input.push(std::move(job))) {
              ledger_.forget(id);
              return false;
            }
            ++pushed;
            return true;
          },
          [&] { return input.room(); });
      try {
        produce(feed);
      } catch (...) {
        producer_error_ = std::current_exception();
        graph_.cancel("stream source failed");
      }
      input.close();
    });
  }

  // --- the listing -------------------------------------------------------------------------------

  /// Turns pages, in listing order, into items: links not images are reported skipped at once, the
  /// rest planned (names, in listing order) and emitted largest first by their listed size, so the
  /// largest downloads of a page start first and do not make the run's tail. Only the serial `list`
  /// stage calls it.
  void list(ListedPage page, pixflow::Emitter<Job>& emit) {
    std::vector<std::pair<std::uint64_t, Job>> jobs;
    std::vector<std::pair<std::size_t, std::string>> skipped;  // finished once the listing's lock is let go
    {
      std::lock_guard lock(listing_mutex_);
      order_->add(
          std::move(page),
          [&](int, ListedImage image, std::size_t) {
            const std::string_view why = listed_skip_reason(image, config_.thumbnail.video == VideoMode::poster);
            if (!why.empty())
              skipped.emplace_back(ledger_.add(input_item(image.link, false)), std::string(why));
            else
              jobs.emplace_back(image.size, plan(image.link, false, name_from_url(image.link)));
          },
          [&](ListingError error) { listing_errors_.push_back(std::move(error)); });
      if (order_->finished()) listing_done_.store(true);
      next_page_to_list_.store(order_->next_page());
      pages_held_back_.store(order_->held_back());
    }
    for (auto& [id, why] : skipped) ledger_.finish(id, ItemStatus::skipped, "list", std::move(why));
    std::stable_sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (auto& [size, job] : jobs) {
      ledger_.bind(emit.next_key(), job.id);
      emit(std::move(job));
    }
    fetch_parked_pages();  // the listing moved on: a page it held back may no longer hold the others
  }

  // --- listing ahead, and no further --------------------------------------------------------------
  //
  // Pages list faster than items run (a page of 60 links in a few ms), and a listed item waits for its
  // place with its Job (URL, names, outputs). So a page is fetched only while fewer than
  // kListedAhead × max_in_flight listed items are unfinished and no page is held back for page order
  // (its items are not counted yet); otherwise its fetch waits here (holding its page place) until
  // items finish or the listing moves on. The page the listing waits for is never held, so held-back
  // pages always drain. Memory then stays flat in the gallery's length.

  static constexpr std::size_t kListedAhead = 2;

  bool room_to_list(int page) {
    if (listing_gate_open_) return true;
    if (pages_held_back_.load() > 0) return page == next_page_to_list_.load();
    return ledger_.unfinished() < kListedAhead * std::max<std::size_t>(config_.max_in_flight, 1);
  }

  void fetch_page(int page, pixflow::Completion<ListedPage> done) {
    lister_->fetch(page, [done](ListedPage listed) { done(std::move(listed)); });
  }

  void fetch_page_when_room(int page, pixflow::Completion<ListedPage> done) {
    {
      std::lock_guard lock(parked_mutex_);
      if (!room_to_list(page)) {
        parked_pages_.emplace(page, std::move(done));
        return;
      }
    }
    fetch_page(page, std::move(done));
  }

  /// After an item finished or a page was listed: the waiting pages there is room for now, in page order.
  void fetch_parked_pages() {
    std::vector<std::pair<int, pixflow::Completion<ListedPage>>> ready;
    {
      std::lock_guard lock(parked_mutex_);
      while (!parked_pages_.empty() && room_to_list(parked_pages_.begin()->first)) {
        ready.emplace_back(parked_pages_.begin()->first, std::move(parked_pages_.begin()->second));
        parked_pages_.erase(parked_pages_.begin());
      }
    }
    for (auto& [page, done] : ready) fetch_page(page, std::move(done));  // outside the lock: may complete at once
  }

  /// A page failed in the graph (not a listing error: those reach the listing as pages): the listing
  /// may wait for it forever, so no page waits for room from now on.
  void open_listing_gate() {
    {
      std::lock_guard lock(parked_mutex_);
      listing_gate_open_ = true;
    }
    fetch_parked_pages();
  }

  /// The run is cancelled: a waiting page fails as cancelled (the graph waits for every operation), and
  /// no page waits from now on.
  void release_parked_pages() {
    std::map<int, pixflow::Completion<ListedPage>> waiting;
    {
      std::lock_guard lock(parked_mutex_);
      listing_gate_open_ = true;
      waiting.swap(parked_pages_);
    }
    for (auto& [page, done] : waiting) done(pixflow::Failure{"cancelled"});
  }

  // --- resume → fetch → decode → thumbnail → [custom] → encode → write → record -------------------

  /// How a source's items are fetched when they are not in OUT yet: downloaded, or read from disk.
  using FetchBranch = pixflow::Stream<Fetched> (PipelineRun::*)(pixflow::Stream<Job>);

  void fetch_and_thumbnail(pixflow::Stream<Job> jobs, FetchBranch fetch) {
    auto [already_done, in_out, to_fetch] = jobs.route("resume", {"done", "original in OUT", "fetch"},
                                                       [](const Job& job) { return static_cast<std::size_t>(job.resume); });
    already_done.sink("skip", pixflow::Concurrency::unlimited(), [this](Job job) -> pixflow::Result<void> {
      ledger_.finish(job.id, ItemStatus::skipped, "", "already done", outputs_of(job));
      return pixflow::ok();
    });
    // Resume: the original was written by an earlier run (atomically, so it is complete); read it on
    // the disk pool, not written again.
    auto read_back = in_out.io<Fetched>("read original", config_.write_concurrency, [this](Job job, pixflow::Completion<Fetched> done) {
      disk_->submit([this, job = std::move(job), done]() mutable {
        auto bytes = read_file(options_.out / job.name, config_.download.max_bytes);
        if (!bytes) return done(pixflow::Failure{"cannot read the original in OUT: " + bytes.error().reason});
        done(Fetched{std::move(job), std::move(bytes).value(), true});
      });
    });
    thumbnails(pixflow::merge("fetched", read_back, (this->*fetch)(to_fetch)));
  }

  /// Every output an item plans, the original first when it is saved.
  std::vector<std::string> outputs_of(const Job& job) const {
    std::vector<std::string> outputs;
    if (options_.save_originals) outputs.push_back(job.name);
    for (const auto& t : job.thumbnails) outputs.push_back(t.name);
    return outputs;
  }

  pixflow::Stream<Fetched> downloads(pixflow::Stream<Job> jobs) {
    return jobs.io<Fetched>("download", config_.download.concurrency, [this](Job job, pixflow::Completion<Fetched> done) {
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
    });
  }

  pixflow::Stream<Fetched> read_files(pixflow::Stream<Job> jobs) {
    return jobs.compute("read", config_.download.concurrency, [max_bytes = config_.download.max_bytes](Job job) -> pixflow::Result<Fetched> {
      auto bytes = read_file(job.path, max_bytes);
      if (!bytes) return std::move(bytes).error();
      return Fetched{std::move(job), std::move(bytes).value()};
    });
  }

  /// What a fetched item is, by its bytes (media_kind), and so which branch decodes it: a still, an
  /// animation kept as one ("animate", planned as .gif/.webp), a video's poster, or a video passed
  /// over ("skip").
  enum class Kind : std::size_t { still = 0, animation = 1, video = 2, skipped_video = 3 };
  Kind kind_of(const Fetched& item) const {
    switch (media_kind(item.bytes)) {
      case MediaKind::video:
        return config_.thumbnail.video == VideoMode::poster ? Kind::video : Kind::skipped_video;
      case MediaKind::animated: {
        const ImageFormat planned = item.job.thumbnails.front().format;
        const bool animates = planned == ImageFormat::gif || planned == ImageFormat::webp;
        return config_.thumbnail.animated == AnimatedMode::animate && animates ? Kind::animation : Kind::still;
      }
      case MediaKind::still: break;
    }
    return Kind::still;
  }

  void thumbnails(pixflow::Stream<Fetched> fetched) {
    auto [stills, animations, videos, skipped_videos] =
        fetched.route("kind", {"still", "animated", "video", "video (skip)"},
                      [this](const Fetched& item) { return static_cast<std::size_t>(kind_of(item)); });
    skipped_videos.sink("skip video", pixflow::Concurrency::unlimited(), [this](Fetched item) -> pixflow::Result<void> {
      ledger_.finish(item.job.id, ItemStatus::skipped, "kind", "not an image (video)");
      return pixflow::ok();
    });
    const auto keep_original = [this](Fetched& item) {
      // An original read back from OUT (resume) is not written again.
      return options_.save_originals && !item.from_out ? std::move(item.bytes) : Bytes{};
    };
    auto decoded = pixflow::merge(
        "decoded",
        stills.compute("decode", config_.decode_concurrency,
                       [this, keep_original](Fetched item) -> pixflow::Result<Decoded> {
                         auto image = decode_image(item.bytes, box_, decode_limits_, config_.thumbnail.mode);
                         if (!image) return std::move(image).error();
                         return Decoded{std::move(item.job), keep_original(item), std::move(image).value()};
                       }),
        videos.compute("poster", config_.decode_concurrency, [this, keep_original](Fetched item) -> pixflow::Result<Decoded> {
          auto poster = decode_video_poster(item.bytes, box_, video_limits_);
          if (!poster) return std::move(poster).error();
          return Decoded{std::move(item.job), keep_original(item), std::move(poster).value()};
        }));
    auto rendered =
        decoded
            .compute("thumbnail", config_.thumbnail.concurrency, [mode = config_.thumbnail.mode](Decoded item) -> pixflow::Result<Rendered> {
              // One decode feeds every requested size; each is converted to sRGB after its resize.
              Rendered out{std::move(item.job), std::move(item.original), {}};
              out.set.input = out.job.url.empty() ? out.job.path.string() : out.job.url;
              for (const auto& planned : out.job.thumbnails)
                out.set.thumbnails.push_back(
                    {planned.box, make_thumbnail(item.image, planned.box, mode), planned.format, planned.name});
              return out;
            });
    for (const auto& stage : options_.stages) {
      rendered = rendered.compute(stage.name, stage.concurrency, [body = stage.body](Rendered item) -> pixflow::Result<Rendered> {
        auto result = body(item.set);
        if (!result) return std::move(result).failure();
        return item;
      });
    }
    const EncodeOptions encode{config_.thumbnail.jpeg_quality, config_.thumbnail.webp_quality, config_.thumbnail.png_compression,
                               config_.thumbnail.keep_metadata};
    auto encoded_stills = rendered.compute("encode", config_.thumbnail.concurrency,
                                           [encode](Rendered item) -> pixflow::Result<Encoded> {
                                             Encoded out{std::move(item.job), std::move(item.original), {}};
                                             for (const auto& t : item.set.thumbnails) {
                                               auto bytes = encode_image(t.pixels, t.format, encode);
                                               if (!bytes) return std::move(bytes).error();
                                               out.thumbnails.emplace_back(t.name, std::move(bytes).value());
                                             }
                                             return out;
                                           });
    // Animations keep every frame: decoded once, each size resized and encoded as an animation (custom
    // stages see stills only).
    auto encoded_animations =
        animations.compute("decode frames", config_.decode_concurrency,
                           [this, keep_original](Fetched item) -> pixflow::Result<std::pair<Fetched, Animation>> {
                             auto animation = decode_animation(item.bytes, box_, decode_limits_,
                                                               AnimationLimits{.max_frames = config_.thumbnail.max_frames},
                                                               config_.thumbnail.mode);
                             if (!animation) return std::move(animation).error();
                             item.bytes = keep_original(item);
                             return std::pair{std::move(item), std::move(animation).value()};
                           })
            .compute("animate", config_.thumbnail.concurrency,
                     [encode, mode = config_.thumbnail.mode](std::pair<Fetched, Animation> item) -> pixflow::Result<Encoded> {
                       auto& [source, animation] = item;
                       Encoded out{std::move(source.job), std::move(source.bytes), {}};
                       for (const auto& planned : out.job.thumbnails) {
                         auto bytes = encode_animation(make_animated_thumbnail(animation, planned.box, mode), planned.format, encode);
                         if (!bytes) return std::move(bytes).error();
                         out.thumbnails.emplace_back(planned.name, std::move(bytes).value());
                       }
                       return out;
                     });
    pixflow::merge("encoded", encoded_stills, encoded_animations)
        // Writes run on the disk pool (with durability "per-item" each fsyncs), so no compute worker
        // waits on the disk.
        .io<Written>("write", config_.write_concurrency,
                     [this](Encoded item, pixflow::Completion<Written> done) {
                       disk_->submit([this, item = std::move(item), done] { done(write_outputs(item)); });
                     })
        .sink("record", pixflow::Concurrency::unlimited(), [this](Written item) -> pixflow::Result<void> {
          ledger_.finish(item.id, ItemStatus::ok, "", "", std::move(item.outputs));
          return pixflow::ok();
        });
  }

  /// Writes an item's original (unless it came from OUT) and its thumbnails, each atomically. A
  /// failure's reason is the same for every item ("cannot write: no space left on device"), so they
  /// group; the file at fault goes into the item's `detail`.
  pixflow::Result<Written> write_outputs(const Encoded& item) {
    Written written{item.job.id, {}};
    const auto failed = [&](Error error) {
      ledger_.set_detail(item.job.id, std::move(error.detail));
      return pixflow::Failure{std::move(error.reason)};
    };
    if (options_.save_originals) {
      if (item.job.resume != Resume::original_in_out) {
        auto path = write_file_atomically(options_.out, item.job.name, item.original, config_.durability);
        if (!path) return failed(std::move(path).error());
      }
      written.outputs.push_back(item.job.name);
    }
    for (const auto& [name, bytes] : item.thumbnails) {
      auto path = write_file_atomically(options_.out, name, bytes, config_.durability);
      if (!path) return failed(std::move(path).error());
      written.outputs.push_back(name);
    }
    return written;
  }

  const PipelineOptions& options_;
  const OutputSync* const output_sync_;  // run_pipeline's: OUT, opened before the run (durability at-end)
  const std::filesystem::file_time_type started_on_disk_clock_ = std::filesystem::file_time_type::clock::now();
  const PipelineConfig& config_;
  const Size box_;
  const DecodeLimits decode_limits_{.max_memory_bytes = config_.decode_max_memory_mb << 20};
  const VideoLimits video_limits_{.max_bytes = config_.download.max_bytes, .max_memory_bytes = config_.decode_max_memory_mb << 20};
  const bool several_sizes_;
  Ledger ledger_;
  NameRegistry names_;
  bool stream_ = false;                     // names from the URL alone (see claim)
  std::atomic<bool> listing_done_{false};   // every item is known
  std::mutex listing_mutex_;                // order_, listing_errors_
  std::unique_ptr<ListingOrder> order_;     // gallery: pages back in order, the end
  std::vector<ListingError> listing_errors_;
  std::mutex parked_mutex_;                 // parked_pages_, listing_gate_open_
  std::map<int, pixflow::Completion<ListedPage>> parked_pages_;  // fetches waiting for room, by page
  std::atomic<std::size_t> pages_held_back_{0};  // order_->held_back(), as of the last list()
  std::atomic<int> next_page_to_list_{0};        // order_->next_page(), as of the last list()
  bool listing_gate_open_ = false;          // cancelled, or a page failed in the graph: no page waits
  bool shape_only_ = false;                 // dot(): the graph is built, never run
  std::exception_ptr producer_error_;
  std::function<void()> report_unplanned_;  // list sources: adds the entries the run never reached
  std::jthread producer_;                   // stream: runs StreamSource::produce; joined after the graph is gone
  pixflow::Graph graph_;
  std::unique_ptr<GalleryLister> lister_;   // before http_: outlives the callbacks http_ completes
  std::unique_ptr<HttpClient> http_;  // after graph_: destroyed first, completing what it still holds
  std::unique_ptr<BlockingPool> disk_ = std::make_unique<BlockingPool>(disk_threads(config_));
};

}  // namespace

std::string pipeline_dot(const Source& source, const PipelineOptions& options) {
  PipelineRun run(options, true);
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
  auto output_sync = OutputSync::open(options.out);
  if (!output_sync) throw OutputFolderError(output_sync.error().reason);
  // TBB owns the cores: OpenCV must not start threads of its own inside a node.
  cv::setNumThreads(1);
  // A stream's items are not kept once finished (a worker runs for days): on_item has them.
  PipelineRun run(options, options.keep_items && !std::holds_alternative<StreamSource>(source), &*output_sync);
  return run.run(source);
}

}  // namespace pixflow::tasks
