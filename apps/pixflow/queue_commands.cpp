// The Redis scale-out subcommands: enqueue (list a source, one stream entry per item), worker (claim and
// run items through the local graph) and status (counts and failures). See queue_commands.hpp.
#include "queue_commands.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <pixflow/engine/cancel.hpp>
#include <pixflow/queue/address.hpp>
#include <pixflow/queue/config.hpp>
#include <pixflow/queue/work_queue.hpp>
#include <pixflow/queue/worker.hpp>
#include <pixflow/tasks/config.hpp>
#include <pixflow/tasks/http.hpp>
#include <pixflow/tasks/listing.hpp>
#include <pixflow/tasks/naming.hpp>
#include <pixflow/tasks/sources.hpp>

#include "exit_codes.hpp"

namespace {

using namespace pixflow::tasks;
using namespace pixflow::queue;
using namespace pixflow::cli;

void add_connection_options(CLI::App& cmd, QueueCommandState& state) {
  cmd.add_option("--redis", state.redis_url, "Redis URL redis://[[user]:password@]host[:port][/db]")
      ->envname("PIXFLOW_REDIS")
      ->required();
  cmd.add_option("--queue", state.queue, "Queue name (A-Z a-z 0-9 . _ -)")->required();
}

/// URLs whose output file names would be the same: workers name files from the URL alone, so such
/// items would write over each other (a local run de-duplicates them with "-2", "-3"...).
void warn_about_shared_names(const std::vector<std::string>& urls) {
  std::map<std::string, std::size_t> names;
  for (const auto& url : urls) {
    std::string name = name_from_url(url);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    ++names[name];
  }
  std::size_t shared = 0;
  std::string example;
  for (const auto& [name, n] : names)
    if (n > 1) {
      shared += n;
      if (example.empty()) example = name;
    }
  if (shared > 0)
    std::cerr << "pixflow: warning: " << shared << " URLs share an output file name with another (e.g. \"" << example
              << "\"): their outputs may overwrite each other when run by workers\n";
}

PipelineConfig with_overrides(PipelineConfig config, const QueueCommandState& state) {
  return apply_overrides(std::move(config), ConfigOverrides{state.sizes, state.format, state.threads});
}

int run_enqueue(const QueueCommandState& state, const RedisAddress& address, const WorkerConfig& config) {
  std::vector<std::string> urls;
  std::vector<ItemReport> skipped;
  std::vector<std::string> errors;
  bool unusable = false;
  if (state.enqueue_gallery->parsed()) {
    if (state.query.client_id.empty() && requires_client_id(state.query.api)) {
      std::cerr << "pixflow: --client-id (or IMGUR_CLIENT_ID) is required for " << state.query.api << '\n';
      return exit_usage;
    }
    // The listing a run would make (tasks/listing.hpp), with a run's timeouts, caps and retries.
    HttpClient http(http_options(config.pipeline));
    const std::size_t window = config.pipeline.fetch_concurrency.is_unlimited() ? 16 : config.pipeline.fetch_concurrency.limit();
    GalleryListing listing = list_gallery(http, state.query, window, [] { return pixflow::interrupt_requested(); });
    // Queued largest first by their listed size, as a local run starts a page's downloads: workers take
    // items in queue order, and a large file taken last would make the queue's tail.
    std::stable_sort(listing.images.begin(), listing.images.end(),
                     [](const ListedImage& a, const ListedImage& b) { return a.size > b.size; });
    const bool posters = config.pipeline.thumbnail.video == VideoMode::poster;
    for (auto& image : listing.images) {
      const std::string_view why = listed_skip_reason(image, posters);  // the rule a local run applies
      if (why.empty()) {
        urls.push_back(std::move(image.link));
        continue;
      }
      ItemReport item;
      item.input = std::move(image.link);
      item.status = ItemStatus::skipped;
      item.stage = "list";
      item.reason = std::string(why);
      skipped.push_back(std::move(item));
    }
    for (auto& e : listing.errors) errors.push_back(std::move(e.reason));
    unusable = listing.pages_read == 0 && !errors.empty();
  } else {
    auto list = read_url_list_file(state.url_file);
    if (!list) {
      std::cerr << "pixflow: " << list.error().reason << '\n';
      return exit_source_unusable;
    }
    urls = std::move(list).value();
  }
  for (const auto& e : errors) std::cerr << "pixflow: " << e << '\n';
  if (unusable) return exit_source_unusable;
  warn_about_shared_names(urls);

  WorkQueue queue(address, state.queue, config.queue.connect_timeout_s);
  const EnqueueResult result = queue.enqueue(urls, skipped);
  std::cout << "queued " << result.queued << " items on " << state.queue << " (" << result.already_queued
            << " already queued, " << result.skipped << " skipped)\n";
  return errors.empty() ? exit_ok : exit_items_failed;
}

int run_worker_command(const QueueCommandState& state, const RedisAddress& address, const WorkerConfig& config) {
  if (state.out.empty()) {
    std::cerr << "pixflow: --out is required\n";
    return exit_usage;
  }
  WorkerOptions options;
  options.redis = address;
  options.queue = state.queue;
  options.queue_config = config.queue;
  options.pipeline.config = config.pipeline;
  options.pipeline.out = state.out;
  options.pipeline.stop_on_interrupt = true;
  options.consumer = state.consumer;
  options.exit_when_empty = state.exit_when_empty;
  const bool quiet = state.quiet;
  options.log = [quiet](const std::string& line) {
    if (!quiet) std::cerr << "pixflow worker: " << line << '\n';
  };
  pixflow::install_interrupt_handler();
  WorkerReport report;
  try {
    report = run_worker(options);
  } catch (const QueueError&) {
    throw;
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const OutputFolderError& e) {  // not a folder, read-only, or in use by a local run
    std::cerr << "pixflow: --out: " << e.what() << '\n';
    return exit_usage;
  }
  std::cout << to_json(report).dump() << '\n';
  if (!quiet)
    std::cerr << "pixflow worker: " << report.consumer << ": " << report.items << " items (" << report.ok << " ok, "
              << report.failed << " failed, " << report.skipped << " skipped, " << report.reclaimed << " reclaimed) in "
              << std::fixed << std::setprecision(2) << report.wall_s << " s\n";
  return report.failed > 0 || report.interrupted ? exit_items_failed : exit_ok;
}

int run_status(const QueueCommandState& state, const RedisAddress& address, const WorkerConfig& config) {
  WorkQueue queue(address, state.queue, config.queue.connect_timeout_s);
  std::cout << to_json(queue.status()).dump(2) << '\n';
  return exit_ok;
}

}  // namespace

void add_queue_commands(CLI::App& app, QueueCommandState& state) {
  if (const char* id = std::getenv("IMGUR_CLIENT_ID")) state.query.client_id = id;

  state.enqueue = app.add_subcommand("enqueue", "List a gallery or a URL list and queue its items on Redis");
  add_connection_options(*state.enqueue, state);
  state.enqueue->add_option("--config", state.config_file, "Config (JSON): download limits for the listing, /redis");
  state.enqueue->require_subcommand(1);
  auto* gallery = state.enqueue_gallery =
      state.enqueue->add_subcommand("gallery", "Queue the images of an Imgur API v3 gallery");
  gallery->add_option("--api", state.query.api, "API base URL")->capture_default_str();
  gallery->add_option("--section", state.query.section, "Gallery section (hot, top, user)")->capture_default_str();
  gallery->add_option("--sort", state.query.sort, "Sort (viral, top, time)")->capture_default_str();
  gallery->add_option("--pages", state.query.pages, "Pages to list at most; 0 = until an empty page")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  gallery->add_option("--client-id", state.query.client_id, "Imgur Client-ID (default: $IMGUR_CLIENT_ID)");
  gallery->fallthrough();
  state.enqueue_urls = state.enqueue->add_subcommand("urls", "Queue a list of image URLs");
  state.enqueue_urls->add_option("file", state.url_file, "File with one URL per line ('-' for stdin; # comments)")->required();
  state.enqueue_urls->fallthrough();

  state.worker = app.add_subcommand("worker", "Take items from a Redis queue and run them through the local graph");
  add_connection_options(*state.worker, state);
  state.worker->add_option("--out,-o", state.out, "Output folder, created if missing (required)");
  state.worker->add_option("--size", state.sizes, "Thumbnail box WxH, repeatable (default 128x128)")->take_all();
  state.worker->add_option("--format", state.format, "Thumbnail format: same|jpg|png|webp (default same)");
  state.worker->add_option("--config", state.config_file, "Tuning config (JSON), with /redis for the queue");
  state.worker->add_option("--threads", state.threads, "Worker threads (0 = all cores)");
  state.worker->add_option("--consumer", state.consumer, "This worker's name in the group (default HOST-PID)");
  state.worker->add_flag("--exit-when-empty", state.exit_when_empty, "Exit once nothing is waiting or held by any worker");
  state.worker->add_flag("--quiet,-q", state.quiet, "Print nothing but errors and the final JSON line");

  state.status = app.add_subcommand("status", "Print a queue's counts and failures as JSON");
  add_connection_options(*state.status, state);
  state.status->add_option("--config", state.config_file, "Config (JSON): /redis/connect_timeout_s");
}

std::optional<int> run_queue_command(const QueueCommandState& state) {
  const bool enqueue = state.enqueue != nullptr && state.enqueue->parsed();
  const bool worker = state.worker != nullptr && state.worker->parsed();
  const bool status = state.status != nullptr && state.status->parsed();
  if (!enqueue && !worker && !status) return std::nullopt;

  auto address = parse_redis_url(state.redis_url);
  if (!address) {
    std::cerr << "pixflow: --redis: " << address.error().reason << '\n';
    return exit_usage;
  }
  if (!valid_queue_name(state.queue)) {
    std::cerr << "pixflow: --queue: invalid name \"" << state.queue << "\" (use 1..100 of A-Z a-z 0-9 . _ -)\n";
    return exit_usage;
  }
  WorkerConfig config;
  try {
    if (!state.config_file.empty()) config = load_worker_config(state.config_file);
    config.pipeline = with_overrides(config.pipeline, state);
  } catch (const ConfigError& e) {
    std::cerr << "pixflow: config error: " << e.what() << '\n';
    return exit_usage;
  }

  try {
    if (enqueue) return run_enqueue(state, *address, config);
    if (worker) return run_worker_command(state, *address, config);
    return run_status(state, *address, config);
  } catch (const QueueError& e) {
    std::cerr << "pixflow: " << e.what() << '\n';
    return e.kind() == QueueError::Kind::rejected ? exit_usage : exit_source_unusable;
  } catch (const std::invalid_argument& e) {
    std::cerr << "pixflow: " << e.what() << '\n';
    return exit_usage;
  }
}
