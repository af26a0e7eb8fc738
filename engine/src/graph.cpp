// Graph construction, running (with the watchdog that enforces timeouts, stop requests and Ctrl-C),
// cancellation, reports and the DOT dump.
#include "pixflow/engine/graph.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pixflow/engine/cancel.hpp"

namespace pixflow {
namespace detail {

GraphCore::GraphCore(Executor& executor_in, std::size_t max_in_flight_wanted, bool tracing)
    : executor(executor_in),
      max_in_flight(max_in_flight_wanted == 0 ? 1 : max_in_flight_wanted) {
  if (tracing) trace = std::make_unique<Trace>();
  executor.arena().execute([this] { graph = std::make_unique<tbb::flow::graph>(); });
  failure_node = std::make_unique<failure_node_t>(*graph, tbb::flow::serial, [this](const FailureMsg& failed) {
    if (on_failure) {
      try {
        on_failure(ItemFailure{failed.key, nodes[failed.node].name, failed.reason});
      } catch (const std::exception& e) {
        std::fprintf(stderr, "pixflow: failure handler threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "pixflow: failure handler threw\n");
      }
    }
    return tbb::flow::continue_msg();  // the item's places come back when `failed` goes
  });
}

GraphCore::~GraphCore() {
  // Nothing may still run, or be let in, when the nodes go away: no source is asked again, no
  // waiting item admitted; inputs are closed; what a cancelled run left in queues is dropped while
  // every node is still there; then the nodes go, the last built first.
  cancelled.store(true);
  for (auto& detach : on_destroy) detach();
  for (RunState* state : run_states) state->on_cancel();
  executor.arena().execute([this] {
    graph->wait_for_all();
    wait_outside();
    graph->reset();
  });
  while (!owned.empty()) owned.pop_back();
  failure_node.reset();
  executor.arena().execute([this] { graph.reset(); });
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
  for (RunState* state : run_states) state->on_cancel();
  for (auto& hook : hooks) hook();
}

}  // namespace detail

Graph::Graph(GraphOptions options) : Graph(nullptr, std::move(options)) {}

Graph::Graph(Executor& executor, GraphOptions options) : Graph(&executor, std::move(options)) {}

Graph::Graph(Executor* executor, GraphOptions options) : options_(std::move(options)) {
  Executor* e = executor;
  if (e == nullptr) {
    own_executor_ = std::make_unique<Executor>(options_.threads);
    e = own_executor_.get();
  }
  core_ = std::make_unique<detail::GraphCore>(*e, options_.max_in_flight, !options_.trace_path.empty());
}

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

std::size_t Graph::threads() const noexcept { return core_->executor.threads(); }

std::vector<NodeReport> Graph::snapshot() const {
  std::vector<NodeReport> nodes;
  const double seconds_per_tick = core_->body_clock.seconds_per_tick();
  for (const auto& node : core_->nodes)
    if (node.stats != nullptr) nodes.push_back(node.stats->report(seconds_per_tick));
  return nodes;
}

namespace {

std::string seconds_text(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

std::string dot_quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

}  // namespace

std::string Graph::dot() const {
  std::ostringstream out;
  out << "digraph pixflow {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n";
  for (std::size_t i = 0; i < core_->nodes.size(); ++i) {
    const auto& node = core_->nodes[i];
    std::string label = node.kind == "limit" ? node.label : node.name + "\\n" + node.kind;
    if (node.kind != "limit" && !node.label.empty()) label += " " + node.label;
    const char* shape = node.kind == "limit" ? "octagon" : node.kind == "route" || node.kind == "merge" ? "diamond"
                        : node.kind == "source" || node.kind == "input"                      ? "invhouse"
                        : node.kind == "sink"                                                ? "house"
                        : node.kind == "io"                                                  ? "parallelogram"
                                                                                             : "box";
    // The label is escaped except for the \n line breaks DOT reads.
    std::string quoted = dot_quoted(label);
    for (std::size_t p = quoted.find("\\\\n"); p != std::string::npos; p = quoted.find("\\\\n", p + 2)) quoted.erase(p, 1);
    out << "  n" << i << " [label=" << quoted << ", shape=" << shape << "];\n";
  }
  for (const auto& edge : core_->edges) {
    out << "  n" << edge.from << " -> n" << edge.to;
    if (!edge.label.empty()) out << " [label=" << dot_quoted(edge.label) << "]";
    out << ";\n";
  }
  out << "}\n";
  return out.str();
}

RunReport Graph::run() {
  if (running_.exchange(true)) throw std::logic_error("pixflow::Graph::run: already running");
  struct Done {
    std::atomic<bool>& running;
    ~Done() { running.store(false); }
  } done{running_};
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  if (core_->trace) core_->trace->restart();

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
      std::optional<std::string> reason;
      if (options_.stop.stop_requested())
        reason = "cancelled";
      else if (clock::now() >= deadline)
        reason = "timed out after " + seconds_text(options_.timeout_s) + " s";
      else if (options_.stop_on_interrupt && interrupt_requested())
        reason = "interrupted";
      if (reason) {
        lock.unlock();
        cancel(*reason);
        lock.lock();
      }
    }
  });

  core_->executor.arena().execute([this] {
    if (!core_->cancelled.load()) {
      for (auto& start : core_->starters) start();
    }
    core_->graph->wait_for_all();
  });
  core_->wait_outside();  // see GraphCore::outside
  {
    std::lock_guard lock(mutex);
    finished = true;
  }
  wake.notify_all();
  watchdog.join();

  RunReport report;
  report.nodes = snapshot();
  report.wall_s = std::chrono::duration<double>(clock::now() - started).count();
  if (core_->main_peak_live != nullptr) report.peak_live = core_->main_peak_live->load();
  report.cancelled = core_->cancelled.load();
  if (report.cancelled) {
    std::lock_guard lock(core_->hooks_mutex);
    report.cancel_reason = core_->cancel_reason;
  }
  if (core_->trace) {
    std::vector<std::string> names, kinds;
    for (const auto& node : core_->nodes) {
      names.push_back(node.name);
      kinds.push_back(node.kind);
    }
    if (!core_->trace->write(options_.trace_path, names, kinds))
      std::fprintf(stderr, "pixflow: cannot write the trace to %s\n", options_.trace_path.c_str());
  }

  // Ready for the next run: what a cancelled run left in the nodes' queues is dropped (while the
  // run still counts as cancelled, so nothing is let in meanwhile), the figures start again, the
  // inputs open again.
  if (report.cancelled) core_->executor.arena().execute([this] { core_->graph->reset(); });
  for (detail::RunState* state : core_->run_states) state->on_run_end();
  for (auto& node : core_->nodes)
    if (node.stats != nullptr) node.stats->reset();
  core_->next_seq = 0;
  {
    std::lock_guard lock(core_->hooks_mutex);
    core_->cancelled.store(false);
    core_->cancel_reason.clear();
  }
  return report;
}

}  // namespace pixflow
