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

std::size_t PipelineReport::count(ItemStatus status) const {
  return static_cast<std::size_t>(
      std::count_if(items.begin(), items.end(), [status](const ItemReport& i) { return i.status == status; }));
}

std::vector<std::pair<std::string, std::size_t>> PipelineReport::failures_by_reason() const {
  std::map<std::string, std::size_t> counts;
  for (const auto& item : items)
    if (item.status == ItemStatus::failed) ++counts[item.reason];
  std::vector<std::pair<std::string, std::size_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return sorted;
}

bool PipelineReport::source_unusable() const {
  return !listing_errors.empty() && items.empty();
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
       {{"total", report.items.size()},
        {"ok", report.count(ItemStatus::ok)},
        {"failed", report.count(ItemStatus::failed)},
        {"skipped", report.count(ItemStatus::skipped)},
        {"failures_by_reason", std::move(by_reason)}}},
      {"listing_errors", std::move(listing)},
      {"peak_in_flight", report.run.peak_live},
      {"cancelled", report.run.cancelled},
      {"cancel_reason", report.run.cancel_reason},
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
  // One item at a time, one per line: a million-item report is never held as one JSON tree.
  out << "{\n  \"items\": [";
  const char* separator = "\n    ";
  for (const auto& item : report.items) {
    out << separator << item_json(item).dump();
    separator = ",\n    ";
  }
  out << (report.items.empty() ? "]" : "\n  ]");
  const nlohmann::json rest = run_json(report);
  for (const auto& [key, value] : rest.items()) {
    std::string text = value.dump(2);
    for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 3)) text.replace(at, 1, "\n  ");
    out << ",\n  " << nlohmann::json(key).dump() << ": " << text;
  }
  out << "\n}\n";
}

}  // namespace pixflow::tasks
