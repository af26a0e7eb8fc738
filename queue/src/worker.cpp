// The worker: one long-lived run_pipeline whose source is the Redis stream. A producer (on the run's
// source thread) claims and reads entries as the run has room and pushes their URLs one by one; each
// item's result is recorded and its entries XACKed, through the Acker, once the pipeline reports it
// finished (outputs written, or failed for good). See pixflow/queue/worker.hpp.
//
//   XAUTOCLAIM (dead workers' items) ─┐
//   XREADGROUP (new items) ───────────┴─▶ feed.push(url) ─▶ run_pipeline(StreamSource) ─▶ on_item
//        ▲ COUNT = min(room, batch_size)                                                    │
//        └──────────────── room (a finish wakes the producer) ◀── acker.finish: HSET + XACK ◀┘
#include "pixflow/queue/worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "acker.hpp"
#include "connection.hpp"
#include "layout.hpp"
#include "pixflow/engine/cancel.hpp"
#include "pixflow/tasks/write.hpp"

namespace pixflow::queue {
namespace {

using namespace detail;
using tasks::ItemReport;
using tasks::ItemStatus;

constexpr int kLocalWriteAttempts = 3;  // a write failure is retried by the same worker this often
// While this worker runs items and the stream has nothing new: look at the stream again this often
// (or at once when an item finishes).
constexpr auto kBusyPoll = std::chrono::milliseconds(50);
// exit_when_empty, nothing held here but items held by other workers: look again this often, so the
// worker leaves soon after the last of them is acknowledged.
constexpr long long kIdlePollMs = 100;

std::string default_consumer() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "worker");
  return std::string(host) + "-" + std::to_string(getpid());
}

/// A failure that may be the run's stop rather than the item's fault: decided when the run is over.
bool may_be_the_stop(const std::string& reason) {
  return reason == "cancelled" || reason == "interrupted" || reason.starts_with("timed out after ") ||
         reason.starts_with("stream source failed");
}

class Worker {
 public:
  explicit Worker(const WorkerOptions& options)
      : options_(options),
        keys_(options.queue),
        consumer_(options.consumer.empty() ? default_consumer() : options.consumer),
        claim_idle_ms_(std::max<long long>(1, std::llround(options.queue_config.claim_idle_s * 1000))),
        block_ms_(std::clamp<long long>(claim_idle_ms_ / 2, 100, 1000)),
        tick_s_(std::clamp(options.queue_config.claim_idle_s / 3, 0.05, 1.0)),
        outage_(options.log),
        main_(options.redis, options.queue_config.connect_timeout_s, static_cast<double>(block_ms_) / 1000.0) {
    if (!valid_queue_name(options.queue)) throw std::invalid_argument("invalid queue name: \"" + options.queue + "\"");
    if (options.queue_config.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
    report_.consumer = consumer_;
  }

  WorkerReport run() {
    const auto start = Clock::now();
    if (options_.pipeline.config.timeout_s > 0)
      deadline_ = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.pipeline.config.timeout_s));
    // Held shared for the worker's whole life: other workers may share OUT, a local run may not.
    auto output = tasks::OutputLock::acquire(options_.pipeline.out, tasks::OutputLock::Mode::shared);
    if (!output) throw tasks::OutputFolderError(output.error().reason);
    main_.connect();  // the first connection must work: a wrong address fails fast
    ensure_group(main_, keys_);
    // Durability "at-end": the outputs of a batch are made durable (one syncfs of OUT) before the batch
    // is acknowledged; "per-item" writes are durable already, "none" promises nothing.
    std::function<bool()> sync_before_ack;
    auto output_sync = tasks::OutputSync::open(options_.pipeline.out);  // held for the worker's life
    if (!output_sync) throw tasks::OutputFolderError(output_sync.error().reason);
    if (options_.pipeline.config.durability == tasks::Durability::at_end)
      sync_before_ack = [this, &output_sync] {
        const auto synced = output_sync->sync();
        if (!synced) say("cannot acknowledge yet: " + synced.failure().reason);
        return synced.ok();
      };
    Acker acker(options_.redis, options_.queue_config.connect_timeout_s, keys_, consumer_, tick_s_, outage_,
                std::move(sync_before_ack));
    acker_ = &acker;
    say("worker " + consumer_ + " joined queue " + options_.queue + " on " + options_.redis.to_string());

    tasks::PipelineOptions pipeline = options_.pipeline;
    pipeline.output_lock = tasks::OutputLock::Mode::shared;
    pipeline.on_item = [this](const ItemReport& item) { on_item(item); };
    try {
      const tasks::PipelineReport done =
          tasks::run_pipeline(tasks::StreamSource{[this](tasks::ItemFeed& feed) { produce(feed); }}, pipeline);
      settle(done.run);
    } catch (...) {
      acker.stop();  // what finished is recorded; what is held stays pending, for other workers to claim
      throw;
    }
    acker.stop();
    if (auto fatal = acker.fatal()) throw *fatal;
    report_.interrupted = stopping();
    leave();
    report_.outages = outage_.outages();
    report_.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    return report_;
  }

 private:
  /// Entries of one URL read by this worker and not finished (usually one; a URL queued twice by
  /// hand, or reclaimed while its first entry runs, shares the item's result).
  struct Held {
    std::vector<Entry> entries;
    int write_attempts = 0;
  };

  /// Ctrl-C/SIGTERM, a stop request, or the config's timeout_s: every cause of a stop the run itself may
  /// have (then its input is closed: a producer waiting for room would wait forever).
  bool stopping() const {
    return pixflow::interrupt_requested() || options_.pipeline.stop.stop_requested() ||
           (deadline_ && Clock::now() >= *deadline_);
  }

  void say(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  template <class F>
  auto retry(F&& f) {
    return with_retry(main_, outage_, [this] { return stopping(); }, std::forward<F>(f));
  }

  // --- the producer: the run's source, on a thread of its own ------------------------------------

  /// Claims and reads entries while the run has room and pushes their URLs; returns when stopping or,
  /// with exit_when_empty, once nothing is waiting or held by any worker. Entries it took and did not
  /// push stay in held_: handed back when the worker leaves.
  void produce(tasks::ItemFeed& feed) {
    auto next_claim = Clock::now();
    const auto claim_every = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(tick_s_));
    while (!stopping()) {
      if (auto fatal = acker_->fatal()) throw *fatal;
      const std::uint64_t seen = events();
      // Items to run again here (their write failed), first.
      for (std::string& url : take_retries())
        if (!feed.push(std::move(url))) return;
      const std::size_t room = feed.room();
      if (room == 0) {
        wait_for_event(seen, claim_every);  // an item finishing makes room
        continue;
      }
      const std::size_t count = std::min(room, options_.queue_config.batch_size);
      std::vector<Entry> entries;
      if (Clock::now() >= next_claim) {
        auto claimed = retry([&] { return claim(count); });
        if (!claimed) return;
        entries = std::move(*claimed);
        // A full claim: more may be waiting (a dead worker's backlog): claim again next time round.
        next_claim = entries.size() == count ? Clock::now() : Clock::now() + claim_every;
      }
      if (entries.size() < count) {
        auto fresh = retry([&] { return read_new(count - entries.size(), 0); });
        if (!fresh) return;
        std::move(fresh->begin(), fresh->end(), std::back_inserter(entries));
      }
      if (entries.empty()) {
        if (holds_items()) {
          wait_for_event(seen, kBusyPoll);  // a finish may make this worker's last room, or its exit
          continue;
        }
        if (options_.exit_when_empty) {
          // This worker's results are recorded first, so XPENDING counts only what others hold.
          if (!acker_->wait_flushed_unless([this] { return stopping(); })) return;
          auto held = retry([&] { return held_by_group(); });
          if (!held || *held == 0) return;  // nothing new, nothing held by anyone: done
        }
        // Wait a little for new entries (the loop comes back to claim stale ones meanwhile).
        auto fresh = retry([&] { return read_new(count, options_.exit_when_empty ? std::min(block_ms_, kIdlePollMs) : block_ms_); });
        if (!fresh) return;
        entries = std::move(*fresh);
        if (entries.empty()) continue;
      }
      if (!push(std::move(entries), feed)) return;
    }
  }

  /// Takes `entries` on (held_, their lease renewed) and pushes each new URL. False when the run is
  /// stopping.
  bool push(std::vector<Entry> entries, tasks::ItemFeed& feed) {
    std::vector<std::string> urls;
    {
      std::lock_guard lock(mutex_);
      for (auto& e : entries) {
        if (e.url.empty()) {  // not an item (no url field): acknowledge it, nothing to do
          acker_->finish({"", "", {e.id}});
          continue;
        }
        auto [it, first] = held_.try_emplace(e.url);
        acker_->hold({e.id});
        if (first) urls.push_back(e.url);  // else the URL runs already: its result covers this entry too
        it->second.entries.push_back(std::move(e));
      }
    }
    for (auto& url : urls)
      if (!feed.push(std::move(url))) return false;
    return true;
  }

  /// XAUTOCLAIM: entries idle for claim_idle_s (their worker died or lost its connection for that long).
  std::vector<Entry> claim(std::size_t count) {
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
    {
      // Entries this worker holds already (a lease renewal that came late): still ours, nothing new.
      std::lock_guard lock(mutex_);
      std::erase_if(entries, [&](const Entry& e) { return holds_entry(e); });
    }
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
    std::lock_guard lock(mutex_);
    for (auto& e : entries) {
      const auto it = deliveries.find(e.id);
      const std::uint64_t n = it == deliveries.end() ? 1 : it->second;
      if (!e.url.empty() && n > options_.queue_config.max_deliveries) {
        ItemReport item;
        item.input = e.url;
        item.status = ItemStatus::failed;
        item.stage = "queue";
        item.reason = "gave up after " + std::to_string(n) + " deliveries (its workers died or stopped)";
        acker_->finish({e.url, result_json(item, consumer_, e.index), {e.id}});
        count_locked(item);
        continue;
      }
      keep.push_back(std::move(e));
    }
    report_.reclaimed += keep.size();
    if (!keep.empty()) say("claimed " + std::to_string(keep.size()) + " item(s) left by another worker");
    return keep;
  }

  /// XREADGROUP: entries never delivered; waits up to `block_ms` for one when > 0.
  std::vector<Entry> read_new(std::size_t count, long long block_ms) {
    Args args{"XREADGROUP", "GROUP", kGroup, consumer_, "COUNT", std::to_string(count)};
    if (block_ms > 0) {
      args.push_back("BLOCK");
      args.push_back(std::to_string(block_ms));
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

  // --- finished items: PipelineOptions::on_item, any thread, one call at a time ---------------------

  void on_item(const ItemReport& item) {
    {
      std::lock_guard lock(mutex_);
      ++events_;
      const auto it = held_.find(item.input);
      if (it != held_.end()) {
        if (item.status == ItemStatus::failed && (stopping() || may_be_the_stop(item.reason))) {
          deferred_.push_back(item);  // a stopped run's failures are not final: settle() decides
        } else if (item.status == ItemStatus::failed && item.reason.starts_with("cannot write") &&
                   ++it->second.write_attempts < kLocalWriteAttempts) {
          // A problem of this machine's disk, not of the item: the producer pushes it again.
          retries_.push_back(item.input);
        } else {
          finish_locked(it, item);
        }
      }
    }
    event_.notify_all();
    if (options_.pipeline.on_item) options_.pipeline.on_item(item);
  }

  /// Once the run is over: a failure that was the stop's (cancelled, interrupted, timed out) is not the
  /// item's: it stays held, and is handed back when the worker leaves; others are final.
  void settle(const pixflow::RunReport& run) {
    std::lock_guard lock(mutex_);
    for (const auto& item : deferred_) {
      const auto it = held_.find(item.input);
      if (it == held_.end()) continue;
      const bool the_stop = run.cancelled && (item.reason == run.cancel_reason || item.reason == "cancelled");
      if (the_stop || item.reason.starts_with("cannot write")) continue;
      finish_locked(it, item);
    }
    deferred_.clear();
  }

  /// Records `item` (HSET + XACK of every entry of its URL) and lets its entries go.
  void finish_locked(std::map<std::string, Held>::iterator it, const ItemReport& item) {
    std::vector<std::string> ids;
    for (const auto& e : it->second.entries) ids.push_back(e.id);
    acker_->finish({item.input, result_json(item, consumer_, it->second.entries.front().index), std::move(ids)});
    count_locked(item);
    held_.erase(it);
  }

  void count_locked(const ItemReport& item) {
    ++report_.items;
    if (item.status == ItemStatus::ok) ++report_.ok;
    if (item.status == ItemStatus::skipped) ++report_.skipped;
    if (item.status == ItemStatus::failed) ++report_.failed;
  }

  bool holds_entry(const Entry& e) const {
    const auto it = held_.find(e.url);
    return it != held_.end() && std::any_of(it->second.entries.begin(), it->second.entries.end(),
                                            [&](const Entry& mine) { return mine.id == e.id; });
  }

  bool holds_items() const {
    std::lock_guard lock(mutex_);
    return !held_.empty();
  }

  std::vector<std::string> take_retries() {
    std::lock_guard lock(mutex_);
    std::vector<std::string> urls(retries_.begin(), retries_.end());
    retries_.clear();
    return urls;
  }

  std::uint64_t events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

  /// Waits until an item finished since `seen` was read, or `at_most`.
  void wait_for_event(std::uint64_t seen, Clock::duration at_most) {
    std::unique_lock lock(mutex_);
    event_.wait_for(lock, at_most, [&] { return events_ != seen; });
  }

  // --- leaving -------------------------------------------------------------------------------------

  /// A clean exit: no heartbeat any more, what is still held handed back, and the consumer leaves the
  /// group if it holds nothing.
  void leave() {
    std::vector<std::string> unfinished;
    for (const auto& [url, held] : held_)
      for (const auto& e : held.entries) unfinished.push_back(e.id);
    try {
      if (!main_.connected()) main_.connect();
      main_.command({"ZREM", keys_.workers, consumer_});
      if (!unfinished.empty()) {
        // Hand the unfinished items back: made look idle for a year, any worker's XAUTOCLAIM takes them now.
        Args back{"XCLAIM", keys_.items, kGroup, consumer_, "0"};
        back.insert(back.end(), unfinished.begin(), unfinished.end());
        back.insert(back.end(), {"IDLE", "31536000000", "JUSTID"});
        checked(main_.command(back), "XCLAIM (hand back)");
        say("handed " + std::to_string(unfinished.size()) + " unfinished item(s) back to the queue");
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
  const long long claim_idle_ms_;
  const long long block_ms_;
  const double tick_s_;       // heartbeat, lease renewal and claim interval
  OutageLog outage_;
  Connection main_;           // the producer's
  std::string claim_cursor_ = "0-0";
  Acker* acker_ = nullptr;
  std::optional<Clock::time_point> deadline_;  // timeout_s

  mutable std::mutex mutex_;  // guards what follows: shared by the producer and on_item
  std::condition_variable event_;
  std::uint64_t events_ = 0;             // items finished so far (wakes the producer)
  std::map<std::string, Held> held_;     // url → entries read and not finished
  std::deque<std::string> retries_;      // urls to push again (their write failed)
  std::vector<ItemReport> deferred_;     // failures while stopping, decided by settle()
  WorkerReport report_;
};

}  // namespace

nlohmann::ordered_json to_json(const WorkerReport& r) {
  return nlohmann::ordered_json{{"worker", r.consumer},   {"items", r.items},     {"ok", r.ok},           {"failed", r.failed},
          {"skipped", r.skipped},   {"reclaimed", r.reclaimed}, {"outages", r.outages},
          {"wall_s", std::round(r.wall_s * 1000) / 1000}, {"interrupted", r.interrupted}};
}

WorkerReport run_worker(const WorkerOptions& options) {
  Worker worker(options);
  return worker.run();
}

}  // namespace pixflow::queue
