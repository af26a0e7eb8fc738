// The one place that wires the tasks into engine stages. Everything image- or HTTP-specific stays in
// the task functions; this file only decides the order, the concurrency and what travels between them.
#include "pixflow/tasks/pipeline.hpp"

#include <opencv2/core/utility.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "pixflow/engine/graph.hpp"
#include "pixflow/tasks/decode.hpp"
#include "pixflow/tasks/http.hpp"
#include "pixflow/tasks/naming.hpp"
#include "pixflow/tasks/sources.hpp"
#include "pixflow/tasks/thumbnail.hpp"
#include "pixflow/tasks/write.hpp"

namespace pixflow::tasks {
namespace {

using Bytes = std::vector<std::uint8_t>;

/// One item on its way through the graph; `id` is its place in the ledger.
struct Job {
  std::size_t id = 0;
  std::string url;              // gallery and URL-list items
  std::filesystem::path path;   // folder items
  std::string name;             // the original's file name in OUT, already made safe and distinct
};
struct Fetched {
  Job job;
  Bytes bytes;
};
struct Decoded {
  Job job;
  Bytes original;  // kept only when the original is saved
  DecodedImage image;
};
struct Rendered {
  Job job;
  Bytes original;
  std::vector<std::pair<std::string, Bytes>> thumbnails;  // file name → encoded bytes
};
struct Page {
  int number = 0;
  GalleryPage listing;
};

/// Every item of the run with its status, in input order, and the mapping from graph keys to items.
/// Thread-safe; `on_item` is called under its lock, so one call at a time.
class Ledger {
 public:
  explicit Ledger(std::function<void(const ItemReport&)> on_item) : on_item_(std::move(on_item)) {}

  /// Adds an item ordered by `order` (input order) and returns its id.
  std::size_t add(ItemReport item, std::pair<std::uint64_t, std::uint64_t> order) {
    std::lock_guard lock(mutex_);
    entries_.push_back({order, std::move(item)});
    return entries_.size() - 1;
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
  /// The items in input order; those never finished fail with `unfinished_reason`.
  std::vector<ItemReport> take(const std::string& unfinished_reason) {
    std::lock_guard lock(mutex_);
    std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.order < b.order; });
    std::vector<ItemReport> items;
    items.reserve(entries_.size());
    for (auto& e : entries_) {
      if (e.item.status == ItemStatus::pending) {
        e.item.status = ItemStatus::failed;
        e.item.reason = unfinished_reason;
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
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
  std::map<pixflow::ItemKey, std::size_t> by_key_;
  std::function<void(const ItemReport&)> on_item_;
};

/// The smallest box holding every requested box: what the decoder must keep enough pixels for.
Size largest_box(const std::vector<Size>& sizes) {
  Size box;
  for (const auto& s : sizes) {
    box.width = std::max(box.width, s.width);
    box.height = std::max(box.height, s.height);
  }
  return box;
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
  options.stall_timeout_s = d.stall_timeout_s;
  options.max_bytes = d.max_bytes;
  options.max_redirects = d.max_redirects;
  return options;
}

Expected<Bytes> read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read file"};
  Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Error{"cannot read file"};
  return bytes;
}

/// Everything one run shares: the stages' common state and the graph they are wired into.
class PipelineRun {
 public:
  PipelineRun(const PipelineOptions& options)
      : options_(options),
        config_(options.config),
        box_(largest_box(config_.thumbnail.sizes)),
        several_sizes_(config_.thumbnail.sizes.size() > 1),
        ledger_(options.on_item),
        graph_({.threads = config_.threads,
                .max_in_flight = config_.max_in_flight,
                .timeout_s = config_.timeout_s,
                .stop_on_interrupt = options.stop_on_interrupt}) {
    graph_.on_failure([this](const pixflow::ItemFailure& f) {
      if (!ledger_.fail(f.key, f.stage, f.reason)) {
        std::lock_guard lock(listing_mutex_);
        listing_errors_.push_back({static_cast<int>(f.key.seq), f.reason});
      }
    });
  }

  PipelineReport run(const Source& source) {
    std::visit([this](const auto& s) { build(s); }, source);
    PipelineReport report;
    report.run = graph_.run();
    report.items = ledger_.take(report.run.cancelled ? report.run.cancel_reason : "not processed");
    {
      std::lock_guard lock(listing_mutex_);
      std::sort(listing_errors_.begin(), listing_errors_.end(), [](const auto& a, const auto& b) { return a.page < b.page; });
      report.listing_errors = listing_errors_;
    }
    return report;
  }

 private:
  /// Starts the HTTP loop; called while the graph is built, before any stage can use it.
  void start_http() {
    http_ = std::make_unique<HttpClient>(http_options(config_));
    graph_.on_cancel([this] { http_->cancel_all(); });
  }
  HttpClient& http() { return *http_; }

  /// A new pending item, in input order.
  std::size_t add_item(std::string input, bool is_path, std::pair<std::uint64_t, std::uint64_t> order) {
    ItemReport item;
    item.input = std::move(input);
    item.is_path = is_path;
    return ledger_.add(std::move(item), order);
  }

  /// A job for a URL: its original's name is claimed here, in listing order, so names are stable.
  Job url_job(std::size_t id, const std::string& url) {
    return Job{id, url, {}, names_.claim(name_from_url(url), url)};
  }

  // --- sources ---------------------------------------------------------------------------------

  void build(const UrlListSource& source) {
    start_http();
    auto urls = std::make_shared<std::vector<std::string>>(source.urls);
    auto next = std::make_shared<std::size_t>(0);
    downloads(graph_.source("source", [this, urls, next]() -> std::optional<Job> {
      if (*next >= urls->size()) return std::nullopt;
      const std::size_t n = (*next)++;
      const std::size_t id = add_item((*urls)[n], false, {n, 0});
      ledger_.bind(pixflow::ItemKey{n, 0}, id);
      return url_job(id, (*urls)[n]);
    }).limit());
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
                                 list_page(page, emit);
                                 return pixflow::ok();
                               })
                  .limit());
  }

  void build(const FolderSource& source) {
    auto files = list_image_folder(source.dir);
    if (!files) {
      std::lock_guard lock(listing_mutex_);
      listing_errors_.push_back({0, files.error().reason});
      return;
    }
    auto list = std::make_shared<std::vector<std::filesystem::path>>(std::move(files).value());
    auto next = std::make_shared<std::size_t>(0);
    decode_and_write(
        graph_.source("source", [this, list, next]() -> std::optional<Job> {
          if (*next >= list->size()) return std::nullopt;
          const std::size_t n = (*next)++;
          const auto& path = (*list)[n];
          const std::size_t id = add_item(path.string(), true, {n, 0});
          ledger_.bind(pixflow::ItemKey{n, 0}, id);
          const std::string name = path.filename().string();
          return Job{id, {}, path, names_.claim(sanitize_name(name), path.string())};
        })
            .limit()
            .compute("read", config_.download.concurrency, [](Job job) -> pixflow::Result<Fetched> {
              auto bytes = read_whole_file(job.path);
              if (!bytes) return pixflow::Failure{bytes.error().reason};
              return Fetched{std::move(job), std::move(bytes).value()};
            }));
  }

  // --- the listing -------------------------------------------------------------------------------

  /// Requests one gallery page, then the albums it names only by id; completes with all of it.
  void fetch_page(int page, pixflow::Completion<Page> done) {
    http().submit(HttpRequest{gallery_page_url(query_, page), imgur_headers(query_)},
                  [this, page, done](HttpResponse response) {
                    if (!response.ok()) {
                      done(pixflow::Failure{"listing page " + std::to_string(page) + ": " + response.failure_reason()});
                      return;
                    }
                    const std::string_view text(reinterpret_cast<const char*>(response.body.data()), response.body.size());
                    auto parsed = parse_gallery_page(text);
                    if (!parsed) {
                      done(pixflow::Failure{"listing page " + std::to_string(page) + ": " + parsed.error().reason});
                      return;
                    }
                    if (parsed->end) listing_ended_.store(true);
                    expand_albums(Page{page, std::move(parsed).value()}, done);
                  });
  }

  void expand_albums(Page page, pixflow::Completion<Page> done) {
    if (page.listing.albums_to_expand.empty()) {
      done(std::move(page));
      return;
    }
    const std::string album = page.listing.albums_to_expand.back();
    page.listing.albums_to_expand.pop_back();
    auto shared = std::make_shared<Page>(std::move(page));
    http().submit(HttpRequest{album_images_url(query_, album), imgur_headers(query_)},
                  [this, shared, album, done](HttpResponse response) {
                    if (!response.ok()) {
                      note_listing_error(shared->number, "album " + album + ": " + response.failure_reason());
                    } else {
                      const std::string_view text(reinterpret_cast<const char*>(response.body.data()), response.body.size());
                      auto images = parse_album_images(text);
                      if (images)
                        std::move(images->begin(), images->end(), std::back_inserter(shared->listing.images));
                      else
                        note_listing_error(shared->number, "album " + album + ": " + images.error().reason);
                    }
                    expand_albums(std::move(*shared), done);
                  });
  }

  void note_listing_error(int page, std::string reason) {
    std::lock_guard lock(listing_mutex_);
    listing_errors_.push_back({page, std::move(reason)});
  }

  /// Turns one page into items: skipped ones are reported at once, duplicates dropped, the rest emitted.
  void list_page(const Page& page, pixflow::Emitter<Job>& emit) {
    std::uint64_t position = 0;
    for (const auto& image : page.listing.images) {
      const std::pair<std::uint64_t, std::uint64_t> order{static_cast<std::uint64_t>(page.number), position++};
      if (!links_.first_time(image.link)) continue;
      const std::size_t id = add_item(image.link, false, order);
      if (!image.skip_reason.empty()) {
        ledger_.finish(id, ItemStatus::skipped, "fetch", image.skip_reason);
        continue;
      }
      ledger_.bind(emit.next_key(), id);
      emit(url_job(id, image.link));
    }
  }

  // --- download → decode → thumbnail → write -------------------------------------------------

  void downloads(pixflow::Stream<Job> jobs) {
    decode_and_write(jobs.io<Fetched>("download", config_.download.concurrency,
                                      [this](Job job, pixflow::Completion<Fetched> done) { download(std::move(job), done); }));
  }

  void download(Job job, pixflow::Completion<Fetched> done) {
    std::string url = job.url;
    http().submit(HttpRequest{std::move(url), {}}, [job = std::move(job), done](HttpResponse response) mutable {
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
    const EncodeOptions encode{config_.thumbnail.jpeg_quality, config_.thumbnail.webp_quality, config_.thumbnail.png_compression};
    fetched
        .compute("decode", config_.decode_concurrency,
                 [this](Fetched item) -> pixflow::Result<Decoded> {
                   auto image = decode_image(item.bytes, box_);
                   if (!image) return pixflow::Failure{image.error().reason};
                   Bytes original = options_.save_originals ? std::move(item.bytes) : Bytes{};
                   return Decoded{std::move(item.job), std::move(original), std::move(image).value()};
                 })
        .compute("thumbnail", config_.thumbnail.concurrency,
                 [this, encode](Decoded item) -> pixflow::Result<Rendered> {
                   // One decode feeds every requested size.
                   Rendered out{std::move(item.job), std::move(item.original), {}};
                   const ImageFormat format = output_format(item.image.source_format, config_.thumbnail.format);
                   for (const Size& box : config_.thumbnail.sizes) {
                     auto bytes = encode_image(make_thumbnail(item.image.pixels, box), format, encode);
                     if (!bytes) return pixflow::Failure{bytes.error().reason};
                     std::string name = names_.claim(thumbnail_name(out.job.name, box, several_sizes_, format),
                                                     out.job.name + "\n" + to_string(box));
                     out.thumbnails.emplace_back(std::move(name), std::move(bytes).value());
                   }
                   return out;
                 })
        .sink("write", config_.write_concurrency, [this](Rendered item) -> pixflow::Result<void> {
          std::vector<std::string> outputs;
          if (options_.save_originals) {
            auto written = write_file_atomically(options_.out, item.job.name, item.original);
            if (!written) return pixflow::Failure{written.error().reason};
            outputs.push_back(item.job.name);
          }
          for (const auto& [name, bytes] : item.thumbnails) {
            auto written = write_file_atomically(options_.out, name, bytes);
            if (!written) return pixflow::Failure{written.error().reason};
            outputs.push_back(name);
          }
          ledger_.finish(item.job.id, ItemStatus::ok, "", "", std::move(outputs));
          return pixflow::ok();
        });
  }

  const PipelineOptions& options_;
  const PipelineConfig& config_;
  const Size box_;
  const bool several_sizes_;
  GalleryQuery query_;
  Ledger ledger_;
  NameRegistry names_;
  LinkDeduplicator links_;
  std::atomic<bool> listing_ended_{false};
  std::mutex listing_mutex_;
  std::vector<ListingError> listing_errors_;
  pixflow::Graph graph_;
  std::unique_ptr<HttpClient> http_;  // after graph_: destroyed first, completing what it still holds
};

}  // namespace

PipelineReport run_pipeline(const Source& source, const PipelineOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.out, ec);
  if (ec) throw std::runtime_error("cannot create output folder " + options.out.string() + ": " + ec.message());
  remove_stale_temporaries(options.out);
  // TBB owns the cores: OpenCV must not start threads of its own inside a node.
  cv::setNumThreads(1);
  PipelineRun run(options);
  return run.run(source);
}

}  // namespace pixflow::tasks
