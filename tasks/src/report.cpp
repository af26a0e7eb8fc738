#include "pixflow/tasks/report.hpp"

#include <algorithm>
#include <ostream>

namespace pixflow::tasks {

std::string_view name_of(ItemStatus status) {
  switch (status) {
    case ItemStatus::ok: return "ok";
    case ItemStatus::failed: return "failed";
    case ItemStatus::skipped: return "skipped";
    case ItemStatus::pending: break;
  }
  return "pending";
}

void ItemTally::add(const ItemReport& item) {
  ++total;
  if (item.status == ItemStatus::ok) ++ok;
  if (item.status == ItemStatus::skipped) ++skipped;
  if (item.status == ItemStatus::failed) {
    ++failed;
    ++failures[item.reason];
  }
}

std::size_t PipelineReport::count(ItemStatus status) const {
  switch (status) {
    case ItemStatus::ok: return tally.ok;
    case ItemStatus::failed: return tally.failed;
    case ItemStatus::skipped: return tally.skipped;
    case ItemStatus::pending: break;
  }
  return tally.total - tally.ok - tally.failed - tally.skipped;
}

std::vector<std::pair<std::string, std::size_t>> PipelineReport::failures_by_reason() const {
  std::vector<std::pair<std::string, std::size_t>> sorted(tally.failures.begin(), tally.failures.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return sorted;
}

bool PipelineReport::source_unusable() const {
  return !listing_errors.empty() && tally.total == 0;
}

namespace {

nlohmann::json item_json(const ItemReport& item) {
  nlohmann::json entry;
  entry[item.is_path ? "path" : "url"] = item.input;
  entry["status"] = name_of(item.status);
  if (item.status == ItemStatus::failed || item.status == ItemStatus::skipped) entry["reason"] = item.reason;
  if (!item.stage.empty()) entry["stage"] = item.stage;
  if (!item.detail.empty()) entry["detail"] = item.detail;
  entry["outputs"] = item.outputs;
  if (item.attempts > 0) entry["attempts"] = item.attempts;
  entry["index"] = item.index;
  return entry;
}

/// Everything but "items".
nlohmann::json run_json(const PipelineReport& report) {
  nlohmann::json nodes = nlohmann::json::object();
  for (const auto& node : report.run.nodes) {
    nlohmann::json n;
    n["kind"] = node.kind;
    if (node.concurrency.is_unlimited())
      n["concurrency"] = "unlimited";
    else
      n["concurrency"] = node.concurrency.limit();
    n["items"] = node.items;
    n["failed"] = node.failed;
    n["emitted"] = node.emitted;
    n["busy_s"] = node.busy_s;
    n["peak_active"] = node.peak_active;
    n["peak_queue"] = node.peak_queue;
    nodes[node.name] = std::move(n);
  }
  nlohmann::json listing = nlohmann::json::array();
  for (const auto& e : report.listing_errors) listing.push_back({{"page", e.page}, {"reason", e.reason}});
  nlohmann::json by_reason = nlohmann::json::object();
  for (const auto& [reason, n] : report.failures_by_reason()) by_reason[reason] = n;
  return {
      {"nodes", std::move(nodes)},
      {"wall_s", report.run.wall_s},
      {"summary",
       {{"total", report.tally.total},
        {"ok", report.count(ItemStatus::ok)},
        {"failed", report.count(ItemStatus::failed)},
        {"skipped", report.count(ItemStatus::skipped)},
        {"failures_by_reason", std::move(by_reason)}}},
      {"listing_errors", std::move(listing)},
      {"peak_in_flight", report.run.peak_live},
      {"cancelled", report.run.cancelled},
      {"cancel_reason", report.run.cancel_reason},
      {"sync_error", report.sync_error},
  };
}

}  // namespace

nlohmann::json to_json(const PipelineReport& report) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& item : report.items) items.push_back(item_json(item));
  nlohmann::json document = run_json(report);
  document["items"] = std::move(items);
  return document;
}

void write_json(std::ostream& out, const PipelineReport& report) {
  ReportWriter writer(out);
  for (const auto& item : report.items) writer.item(item);
  writer.finish(report);
}

ReportWriter::ReportWriter(std::ostream& out) : out_(out) { out_ << "{\n  \"items\": ["; }

void ReportWriter::item(const ItemReport& item) {
  out_ << (first_ ? "\n    " : ",\n    ") << item_json(item).dump();
  first_ = false;
}

void ReportWriter::finish(const PipelineReport& report) {
  out_ << (first_ ? "]" : "\n  ]");
  const nlohmann::json rest = run_json(report);
  for (const auto& [key, value] : rest.items()) {
    std::string text = value.dump(2);
    for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 3)) text.replace(at, 1, "\n  ");
    out_ << ",\n  " << nlohmann::json(key).dump() << ": " << text;
  }
  out_ << "\n}\n";
  out_.flush();
}

}  // namespace pixflow::tasks
