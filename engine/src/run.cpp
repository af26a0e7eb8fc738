// Graph construction, running, cancellation and the watchdog that enforces timeouts and Ctrl-C.
#include <oneapi/tbb/info.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pixflow/engine/cancel.hpp"
#include "pixflow/engine/graph.hpp"

namespace pixflow {
namespace detail {

namespace {
std::size_t resolve_threads(std::size_t wanted) {
  const auto cores = static_cast<std::size_t>(tbb::info::default_concurrency());
  return wanted == 0 ? cores : wanted;
}
}  // namespace

GraphCore::GraphCore(std::size_t threads_wanted, std::size_t max_in_flight_wanted)
    : threads(resolve_threads(threads_wanted)), max_in_flight(max_in_flight_wanted == 0 ? 1 : max_in_flight_wanted) {
  // More threads than cores (e.g. a test of 4 threads on 2 cores) needs the process-wide cap raised.
  if (threads > static_cast<std::size_t>(tbb::info::default_concurrency()))
    parallelism.emplace(tbb::global_control::max_allowed_parallelism, threads);
  arena.initialize(static_cast<int>(threads));
  arena.execute([this] { graph = std::make_unique<tbb::flow::graph>(); });
  failure_sink = std::make_unique<failure_sink_t>(
      *graph, tbb::flow::serial, [this](const FailurePacket& failed) {
        if (on_failure) {
          try {
            on_failure(ItemFailure{failed.key, failed.stage, failed.reason});
          } catch (const std::exception& e) {
            std::fprintf(stderr, "pixflow: failure handler threw: %s\n", e.what());
          }
        }
        if (failed.scope != nullptr) failed.scope->release();
        return tbb::flow::continue_msg();
      });
}

GraphCore::~GraphCore() {
  // Nothing may still be running when the nodes go away.
  if (graph) arena.execute([this] { graph->wait_for_all(); });
}

void GraphCore::cancel(const std::string& reason) {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(hooks_mutex);
    if (cancelled.load()) return;
    cancel_reason = reason;
    cancelled.store(true, std::memory_order_release);
    hooks = on_cancel;
  }
  graph->cancel();
  for (auto& hook : hooks) hook();
}

}  // namespace detail

Graph::Graph(GraphOptions options)
    : options_(options), core_(std::make_unique<detail::GraphCore>(options.threads, options.max_in_flight)) {}

Graph::~Graph() = default;

void Graph::on_failure(std::function<void(const ItemFailure&)> handler) {
  std::lock_guard lock(core_->hooks_mutex);
  core_->on_failure = std::move(handler);
}

void Graph::on_cancel(std::function<void()> hook) {
  std::lock_guard lock(core_->hooks_mutex);
  core_->on_cancel.push_back(std::move(hook));
}

void Graph::cancel(const std::string& reason) { core_->cancel(reason); }

bool Graph::cancelled() const noexcept { return core_->cancelled.load(std::memory_order_acquire); }

std::size_t Graph::threads() const noexcept { return core_->threads; }

std::vector<NodeReport> Graph::snapshot() const {
  std::vector<NodeReport> nodes;
  const double seconds_per_tick = core_->body_clock.seconds_per_tick();
  for (const auto& stats : core_->stats) nodes.push_back(stats.report(seconds_per_tick));
  return nodes;
}

namespace {
std::string seconds_text(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}
}  // namespace

RunReport Graph::run() {
  if (ran_) throw std::logic_error("pixflow::Graph::run: a graph runs once");
  ran_ = true;
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();

  // The watchdog turns a timeout, a Ctrl-C or a stop request into a clean cancellation, and reports
  // progress.
  std::mutex mutex;
  std::condition_variable wake;
  bool finished = false;
  std::thread watchdog([&] {
    const auto deadline = options_.timeout_s > 0
                              ? started + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(options_.timeout_s))
                              : clock::time_point::max();
    const auto progress_every = std::chrono::duration_cast<clock::duration>(
        std::chrono::duration<double>(options_.progress_interval_s > 0 ? options_.progress_interval_s : 0.5));
    auto next_progress = started + progress_every;
    std::unique_lock lock(mutex);
    while (!finished) {
      wake.wait_for(lock, std::chrono::milliseconds(20));
      if (finished) break;
      if (options_.on_progress && clock::now() >= next_progress) {
        next_progress += progress_every;
        lock.unlock();
        options_.on_progress(snapshot());
        lock.lock();
      }
      if (options_.stop.stop_requested()) {
        lock.unlock();
        cancel("cancelled");
        lock.lock();
      } else if (clock::now() >= deadline) {
        lock.unlock();
        cancel("timed out after " + seconds_text(options_.timeout_s) + " s");
        lock.lock();
      } else if (options_.stop_on_interrupt && interrupt_requested()) {
        lock.unlock();
        cancel("interrupted");
        lock.lock();
      }
    }
  });

  core_->close_chains();
  core_->arena.execute([this] {
    for (auto& activate : core_->activations) activate();
    core_->graph->wait_for_all();
  });
  {
    std::lock_guard lock(mutex);
    finished = true;
  }
  wake.notify_all();
  watchdog.join();

  RunReport report;
  report.nodes = snapshot();
  report.wall_s = std::chrono::duration<double>(clock::now() - started).count();
  if (core_->main_scope != nullptr) report.peak_live = core_->main_scope->peak_live.load();
  report.cancelled = core_->cancelled.load();
  if (report.cancelled) {
    std::lock_guard lock(core_->hooks_mutex);
    report.cancel_reason = core_->cancel_reason;
  }
  return report;
}

}  // namespace pixflow
