// The worker: claim/read a batch of stream entries, run it through run_pipeline, record + XACK each
// item as it finishes (through the Acker). See pixflow/queue/worker.hpp.
#include "pixflow/queue/worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "acker.hpp"
#include "connection.hpp"
#include "layout.hpp"
#include "pixflow/engine/cancel.hpp"
#include "pixflow/engine/executor.hpp"

namespace pixflow::queue {
namespace {

using namespace detail;
using tasks::ItemReport;
using tasks::ItemStatus;

constexpr int kLocalWriteAttempts = 3;  // a write failure is retried by the same worker this often

std::string default_consumer() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "worker");
  return std::string(host) + "-" + std::to_string(getpid());
}

class Worker {
 public:
  explicit Worker(const WorkerOptions& options)
      : options_(options),
        keys_(options.queue),
        consumer_(options.consumer.empty() ? default_consumer() : options.consumer),
        claim_idle_ms_(static_cast<long long>(std::llround(options.queue_config.claim_idle_s * 1000))),
        block_ms_(std::clamp<long long>(claim_idle_ms_ / 2, 100, 1000)),
        outage_(options.log),
        main_(options.redis, options.queue_config.connect_timeout_s, static_cast<double>(block_ms_) / 1000.0) {
    if (!valid_queue_name(options.queue)) throw std::invalid_argument("invalid queue name: \"" + options.queue + "\"");
    if (options.queue_config.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
    if (claim_idle_ms_ < 1) claim_idle_ms_ = 1;
    report_.consumer = consumer_;
  }

  WorkerReport run() {
    const auto start = Clock::now();
    // Held shared for the worker's whole life: other workers may share OUT, a local run may not.
    auto output = tasks::OutputLock::acquire(options_.pipeline.out, tasks::OutputLock::Mode::shared);
    if (!output) throw tasks::OutputFolderError(output.error().reason);
    main_.connect();  // the first connection must work: a wrong address fails fast
    ensure_group(main_, keys_);
    const double tick_s = std::clamp(options_.queue_config.claim_idle_s / 3, 0.05, 1.0);
    Acker acker(options_.redis, options_.queue_config.connect_timeout_s, keys_, consumer_, tick_s, outage_);
    say("worker " + consumer_ + " joined queue " + options_.queue + " on " + options_.redis.to_string());
    try {
      loop(acker);
    } catch (...) {
      acker.stop();
      throw;
    }
    acker.stop();
    if (auto fatal = acker.fatal()) throw *fatal;
    leave();
    report_.outages = outage_.outages();
    report_.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    return report_;
  }

 private:
  bool stopping() const { return pixflow::interrupt_requested(); }

  void say(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  template <class F>
  auto retry(F&& f) {
    return with_retry(main_, outage_, [this] { return stopping(); }, std::forward<F>(f));
  }

  void loop(Acker& acker) {
    while (!stopping()) {
      if (auto fatal = acker.fatal()) throw *fatal;
      std::vector<Entry> batch = std::move(retry_);
      retry_.clear();
      const std::size_t size = options_.queue_config.batch_size;
      if (batch.size() < size) {
        auto claimed = retry([&] { return claim(size - batch.size(), acker); });
        if (!claimed) break;
        std::move(claimed->begin(), claimed->end(), std::back_inserter(batch));
      }
      if (batch.size() < size) {
        auto fresh = retry([&] { return read_new(size - batch.size(), false); });
        if (!fresh) break;
        std::move(fresh->begin(), fresh->end(), std::back_inserter(batch));
      }
      if (batch.empty()) {
        if (options_.exit_when_empty) {
          auto held = retry([&] { return held_by_group(); });
          if (!held || *held == 0) break;  // nothing new, nothing held by anyone: done
        }
        // Wait a little for new entries (the loop comes back to claim stale ones meanwhile).
        auto fresh = retry([&] { return read_new(size, true); });
        if (!fresh) break;
        batch = std::move(*fresh);
        if (batch.empty()) continue;
      }
      process(std::move(batch), acker);
    }
    report_.interrupted = stopping();
  }

  /// XAUTOCLAIM: entries idle for claim_idle_s (their worker died or lost its connection for that long).
  std::vector<Entry> claim(std::size_t count, Acker& acker) {
    Reply r = main_.command({"XAUTOCLAIM", keys_.items, kGroup, consumer_, std::to_string(claim_idle_ms_),
                             claim_cursor_, "COUNT", std::to_string(count)});
    if (r.error_is("NOGROUP")) {
      ensure_group(main_, keys_);
      return {};
    }
    checked(r, "XAUTOCLAIM");
    if (!r.is_array() || r.elements.size() < 2 || !r.elements[0].is_text()) unexpected("XAUTOCLAIM");
    claim_cursor_ = r.elements[0].str;
    std::vector<Entry> entries = parse_entries(r.elements[1], "XAUTOCLAIM");
    if (entries.empty()) return entries;
    // Entries claimed too often: the workers that took them keep dying. Fail them for good.
    std::vector<Args> queries;
    for (const auto& e : entries) queries.push_back({"XPENDING", keys_.items, kGroup, e.id, e.id, "1"});
    std::map<std::string, std::uint64_t> deliveries;
    for (const Reply& reply : main_.pipeline(queries)) {
      checked(reply, "XPENDING");
      for (const Reply& p : reply.elements)
        if (p.is_array() && p.elements.size() == 4) deliveries[p.elements[0].str] = to_size(p.elements[3].integer);
    }
    std::vector<Entry> keep;
    for (auto& e : entries) {
      const auto it = deliveries.find(e.id);
      const std::uint64_t n = it == deliveries.end() ? 1 : it->second;
      if (!e.url.empty() && n > options_.queue_config.max_deliveries) {
        ItemReport item;
        item.input = e.url;
        item.status = ItemStatus::failed;
        item.stage = "queue";
        item.reason = "gave up after " + std::to_string(n) + " deliveries (its workers died or stopped)";
        record_failure_now(e, item, acker);
        continue;
      }
      keep.push_back(std::move(e));
    }
    report_.reclaimed += keep.size();
    if (!keep.empty()) say("claimed " + std::to_string(keep.size()) + " item(s) left by another worker");
    return keep;
  }

  void record_failure_now(const Entry& e, const ItemReport& item, Acker& acker) {
    acker.finish({e.url, result_json(item, consumer_, e.index), {e.id}});
    ++report_.items;
    ++report_.failed;
  }

  /// XREADGROUP: entries never delivered. Blocks a short while when the batch is empty so far.
  std::vector<Entry> read_new(std::size_t count, bool block) {
    Args args{"XREADGROUP", "GROUP", kGroup, consumer_, "COUNT", std::to_string(count)};
    if (block) {
      args.push_back("BLOCK");
      args.push_back(std::to_string(block_ms_));
    }
    args.insert(args.end(), {"STREAMS", keys_.items, ">"});
    Reply r = main_.command(args);
    if (r.error_is("NOGROUP")) {
      ensure_group(main_, keys_);
      return {};
    }
    checked(r, "XREADGROUP");
    if (r.is_nil()) return {};
    if (!r.is_array() || r.elements.empty() || !r.elements[0].is_array() || r.elements[0].elements.size() != 2)
      unexpected("XREADGROUP");
    return parse_entries(r.elements[0].elements[1], "XREADGROUP");
  }

  /// Entries delivered to any consumer and not acknowledged.
  std::size_t held_by_group() {
    Reply r = main_.command({"XPENDING", keys_.items, kGroup});
    if (r.error_is("NOGROUP")) return 0;
    checked(r, "XPENDING");
    if (!r.is_array() || r.elements.empty()) unexpected("XPENDING");
    return to_size(r.elements[0].integer);
  }

  void process(std::vector<Entry> batch, Acker& acker) {
    ++report_.batches;
    std::map<std::string, std::vector<Entry>> by_url;
    std::vector<std::string> urls, ids;
    for (auto& e : batch) {
      if (e.url.empty()) {  // not an item (no url field): acknowledge it, nothing to do
        acker.finish({"", "", {e.id}});
        continue;
      }
      ids.push_back(e.id);
      auto& slot = by_url[e.url];
      if (slot.empty()) urls.push_back(e.url);
      slot.push_back(std::move(e));
    }
    acker.hold(ids);

    std::mutex mutex;
    std::vector<ItemReport> failures;
    auto finish = [&](const ItemReport& item) {
      const auto& entries = by_url.at(item.input);
      std::vector<std::string> entry_ids;
      for (const auto& e : entries) entry_ids.push_back(e.id);
      acker.finish({item.input, result_json(item, consumer_, entries.front().index), std::move(entry_ids)});
      ++report_.items;
      if (item.status == ItemStatus::ok) ++report_.ok;
      if (item.status == ItemStatus::skipped) ++report_.skipped;
      if (item.status == ItemStatus::failed) ++report_.failed;
    };

    tasks::PipelineOptions options = options_.pipeline;
    if (options.executor == nullptr) options.executor = &executor_;  // one set of threads for every batch
    options.output_lock = tasks::OutputLock::Mode::shared;
    options.on_item = [&](const ItemReport& item) {
      if (by_url.count(item.input) != 0) {
        std::lock_guard lock(mutex);
        if (item.status == ItemStatus::failed)
          failures.push_back(item);  // decided once the run is over: a cancelled run's failures are not final
        else
          finish(item);
      }
      if (options_.pipeline.on_item) options_.pipeline.on_item(item);
    };
    const tasks::PipelineReport report = run_pipeline(tasks::UrlListSource{urls}, options);

    std::lock_guard lock(mutex);
    for (const auto& item : failures) {
      if (report.run.cancelled && (item.reason == report.run.cancel_reason || item.reason == "cancelled")) {
        // Not the item's fault: it stays pending, handed back when the worker leaves.
        for (const auto& e : by_url.at(item.input)) released_.push_back(e.id);
        continue;
      }
      if (item.reason.starts_with("cannot write")) {
        // A problem of this machine's disk, not of the item: try again here, then give up.
        bool again = false;
        for (const auto& e : by_url.at(item.input))
          if (++write_attempts_[e.id] < kLocalWriteAttempts) {
            retry_.push_back(e);
            again = true;
          }
        if (again) continue;
      }
      finish(item);
    }
    acker.release(ids);
    std::vector<std::string> still_held;
    for (const auto& e : retry_) still_held.push_back(e.id);
    acker.hold(still_held);
    acker.wait_flushed();
  }

  /// A clean exit: no heartbeat any more, and the consumer leaves the group if it holds nothing.
  void leave() {
    try {
      if (!main_.connected()) main_.connect();
      main_.command({"ZREM", keys_.workers, consumer_});
      for (const auto& e : retry_) released_.push_back(e.id);
      if (!released_.empty()) {
        // Hand the unfinished items back: made look idle for a year, any worker's XAUTOCLAIM takes them now.
        Args back{"XCLAIM", keys_.items, kGroup, consumer_, "0"};
        back.insert(back.end(), released_.begin(), released_.end());
        back.insert(back.end(), {"IDLE", "31536000000", "JUSTID"});
        checked(main_.command(back), "XCLAIM (hand back)");
        say("handed " + std::to_string(released_.size()) + " unfinished item(s) back to the queue");
      }
      Reply mine = main_.command({"XPENDING", keys_.items, kGroup, "-", "+", "1", consumer_});
      if (mine.is_array() && mine.elements.empty()) main_.command({"XGROUP", "DELCONSUMER", keys_.items, kGroup, consumer_});
    } catch (const QueueError&) {
      // Best effort: a stale consumer only shows in `status` until it is cleaned up.
    }
  }

  const WorkerOptions& options_;
  const Keys keys_;
  const std::string consumer_;
  long long claim_idle_ms_;
  const long long block_ms_;
  OutageLog outage_;
  Connection main_;
  std::string claim_cursor_ = "0-0";
  std::vector<Entry> retry_;
  std::vector<std::string> released_;  // entries of a cancelled run, handed back on leaving
  std::map<std::string, int> write_attempts_;
  WorkerReport report_;
  pixflow::Executor executor_{options_.pipeline.config.threads};
};

}  // namespace

nlohmann::ordered_json to_json(const WorkerReport& r) {
  return nlohmann::ordered_json{{"worker", r.consumer},   {"items", r.items},     {"ok", r.ok},           {"failed", r.failed},
          {"skipped", r.skipped},   {"reclaimed", r.reclaimed}, {"batches", r.batches}, {"outages", r.outages},
          {"wall_s", std::round(r.wall_s * 1000) / 1000}, {"interrupted", r.interrupted}};
}

WorkerReport run_worker(const WorkerOptions& options) {
  Worker worker(options);
  return worker.run();
}

}  // namespace pixflow::queue
