// The pipeline's I/O alone, for the overlap figure: what `pixflow gallery` would take if decoding and
// thumbnails cost nothing. Same HttpClient, same limits (from PipelineConfig's defaults, mapped to
// HttpOptions as the pipeline does), same atomic writes of the originals with the same durability (one
// syncfs at the end by default), no graph and no decode.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include <pixflow/tasks/blocking_pool.hpp>
#include <pixflow/tasks/config.hpp>
#include <pixflow/tasks/http.hpp>
#include <pixflow/tasks/listing.hpp>
#include <pixflow/tasks/naming.hpp>
#include <pixflow/tasks/pipeline.hpp>
#include <pixflow/tasks/write.hpp>

#include "bench.hpp"

namespace pixflow::bench {
namespace {

using Bytes = std::vector<std::uint8_t>;

class DownloadRun {
 public:
  DownloadRun(const DownloadOptions& options, const pixflow::tasks::PipelineConfig& config)
      : options_(options),
        window_(config.fetch_concurrency.limit()),
        max_alive_(config.max_in_flight),
        durability_(config.durability),
        disk_(config.write_concurrency.limit()),
        lister_(http_, query_of(options)),
        http_(pixflow::tasks::http_options(config)) {}

  DownloadRun(const DownloadRun&) = delete;
  DownloadRun& operator=(const DownloadRun&) = delete;

  void run() {
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < window_; ++i) submit_page_locked();
    }
    for (;;) {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return (!urls_.empty() && alive_ < max_alive_) || (listing_done() && urls_.empty()); });
      if (urls_.empty()) break;
      std::string url = std::move(urls_.front());
      urls_.pop_front();
      ++alive_;
      lock.unlock();
      http_.submit({url, {}}, [this, url](pixflow::tasks::HttpResponse response) {
        std::lock_guard inner(mutex_);
        if (!response.ok()) {
          std::cerr << "download " << url << ": " << response.failure_reason() << '\n';
          finish_locked(false, 0);
          changed_.notify_all();
        } else {
          disk_.submit([this, url, body = std::move(response.body)] { write(url, body); });
        }
      });
    }
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return alive_ == 0; });
    if (!listing_error_.empty()) throw std::runtime_error(listing_error_);
  }

  std::size_t done() const { return done_; }
  std::size_t failed() const { return failed_; }
  std::size_t bytes() const { return bytes_; }

 private:
  bool listing_done() const { return pages_pending_ == 0 && !order_.wanted(next_page_); }

  /// Asks for the next page, through the listing every command uses (tasks/listing.hpp).
  void submit_page_locked() {
    if (!order_.wanted(next_page_)) return;
    ++pages_pending_;
    lister_.fetch(next_page_++, [this](pixflow::tasks::ListedPage page) {
      std::lock_guard lock(mutex_);
      --pages_pending_;
      order_.add(
          std::move(page),
          [this](int, pixflow::tasks::ListedImage image, std::size_t) {
            if (image.skip_reason.empty()) urls_.push_back(std::move(image.link));
          },
          [this](pixflow::tasks::ListingError error) { listing_error_ = std::move(error.reason); });
      submit_page_locked();
      changed_.notify_all();
    });
  }

  void finish_locked(bool ok, std::size_t bytes) {
    --alive_;
    if (ok) {
      ++done_;
      bytes_ += bytes;
    } else {
      ++failed_;
    }
  }

  /// On the disk pool, as the pipeline's write node.
  void write(const std::string& url, const Bytes& body) {
    auto written = pixflow::tasks::write_file_atomically(options_.out, pixflow::tasks::name_from_url(url), body, durability_);
    std::lock_guard lock(mutex_);
    if (!written) std::cerr << "write " << url << ": " << written.error().reason << '\n';
    finish_locked(static_cast<bool>(written), body.size());
    changed_.notify_all();
  }

  static pixflow::tasks::GalleryQuery query_of(const DownloadOptions& options) {
    return {.api = options.api, .section = options.section, .pages = 0, .client_id = options.client_id};
  }

  const DownloadOptions& options_;
  const std::size_t window_;
  const std::size_t max_alive_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> urls_;
  std::size_t alive_ = 0;
  std::size_t done_ = 0;
  std::size_t failed_ = 0;
  std::size_t bytes_ = 0;
  int next_page_ = 0;
  int pages_pending_ = 0;
  std::string listing_error_;
  const pixflow::tasks::Durability durability_;
  pixflow::tasks::BlockingPool disk_;  // destroyed after http_, before the state its jobs use
  pixflow::tasks::ListingOrder order_{0};
  pixflow::tasks::GalleryLister lister_;  // before http_ (bound to it, used only once it is built): outlives its callbacks
  pixflow::tasks::HttpClient http_;       // destroyed first, so no callback outlives the state above
};

}  // namespace

int run_download(const DownloadOptions& options) {
  std::filesystem::create_directories(options.out);
  // The pipeline's defaults, or the config file's (a CA for https, http2, durability, limits).
  const pixflow::tasks::PipelineConfig config =
      options.config.empty() ? pixflow::tasks::PipelineConfig{} : pixflow::tasks::load_config(options.config);
  const auto started = std::chrono::steady_clock::now();
  std::size_t done = 0;
  std::size_t failed = 0;
  std::size_t bytes = 0;
  {
    auto durable = pixflow::tasks::OutputSync::open(options.out);  // held for the run, as the pipeline does
    if (!durable) throw std::runtime_error(durable.error().reason + " (" + durable.error().detail + ")");
    DownloadRun run(options, config);
    run.run();
    if (config.durability == pixflow::tasks::Durability::at_end) {  // one syncfs at the end of the run
      if (auto synced = durable->sync(); !synced)
        throw std::runtime_error(synced.failure().reason + " (" + synced.failure().detail + ")");
    }
    done = run.done();
    failed = run.failed();
    bytes = run.bytes();
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "{\"items\": " << done << ", \"failed\": " << failed << ", \"bytes\": " << bytes
            << ", \"wall_s\": " << wall << "}\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace pixflow::bench
