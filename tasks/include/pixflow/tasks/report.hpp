#pragma once
/// @file
/// The report of an image-pipeline run: one entry per item (in input order, when kept), the counts,
/// the per-node figures, and its JSON form (what `pixflow --report` writes, item by item as they finish).
///
/// @code
/// pixflow::tasks::PipelineReport report = pixflow::tasks::run_pipeline(source, options);
/// for (const auto& item : report.items)
///   if (item.status == pixflow::tasks::ItemStatus::failed) std::cerr << item.input << ": " << item.reason << '\n';
/// std::ofstream out("report.json");
/// pixflow::tasks::write_json(out, report);   // streamed, one item per line
/// nlohmann::json document = pixflow::tasks::to_json(report);   // the same, as one JSON value
/// @endcode
#include <cstddef>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pixflow/engine/stats.hpp"

namespace pixflow::tasks {

enum class ItemStatus { pending, ok, failed, skipped };
std::string_view name_of(ItemStatus status);

/// One item of the input: a URL (gallery, URL list) or a file (folder).
struct ItemReport {
  std::string input;                 ///< the URL or the path
  bool is_path = false;              ///< true for folder items ("path" in JSON, else "url")
  ItemStatus status = ItemStatus::pending;
  std::string stage;                 ///< where it failed ("download", "decode", ...)
  std::string reason;                ///< why it failed or was skipped: the same text for the same cause
  std::string detail;                ///< what the failure is about when the reason does not say (the file that could not be written)
  std::vector<std::string> outputs;  ///< files written, relative to the output folder
  int attempts = 0;                  ///< HTTP attempts for a downloaded item (0: not downloaded)
  std::size_t index = 0;             ///< its place in the input (0, 1, 2...): reports written as items finish sort by it
};

/// The counts of a run's items by outcome, kept as they finish (whether or not the items are kept).
struct ItemTally {
  std::size_t total = 0, ok = 0, failed = 0, skipped = 0;
  std::map<std::string, std::size_t> failures;  ///< reason → items that failed with it
  void add(const ItemReport& item);
};

/// A listing page that could not be read.
struct ListingError {
  int page = 0;
  std::string reason;
};

struct PipelineReport {
  std::vector<ItemReport> items;          ///< input order; empty unless PipelineOptions::keep_items
  ItemTally tally;                        ///< every item, kept or not
  std::vector<ListingError> listing_errors;
  pixflow::RunReport run;                 ///< per-node figures, wall time, cancellation
  /// Why the outputs could not be made durable at the end of the run (durability "at-end": syncfs
  /// failed, e.g. an I/O error); empty when they were, or when durability is another choice.
  std::string sync_error;

  [[nodiscard]] std::size_t count(ItemStatus status) const;
  /// Failures grouped by reason, most frequent first ("http 404" → 3).
  [[nodiscard]] std::vector<std::pair<std::string, std::size_t>> failures_by_reason() const;
  /// True when the source itself could not be used (no listing page could be read at all).
  [[nodiscard]] bool source_unusable() const;
};

/// {"items": [...], "nodes": {name: {...}}, "wall_s": s, "summary": {...}, "listing_errors": [...],
///  "cancelled": bool, "cancel_reason": "..."}
nlohmann::json to_json(const PipelineReport& report);

/// The same document as to_json, written item by item (one per line), so a run of a million items is
/// never held as one JSON tree; the run's figures follow the items.
void write_json(std::ostream& out, const PipelineReport& report);

/// The report written while the run goes on: each item on its own line as it finishes (in finish
/// order, each with its input `index`), then the run's figures — the same document as write_json,
/// without holding the items (what `pixflow --report` writes). Not thread-safe: one call at a time
/// (PipelineOptions::on_item is).
///
/// @code
/// std::ofstream file("report.json");
/// ReportWriter writer(file);
/// options.keep_items = false;
/// options.on_item = [&](const ItemReport& item) { writer.item(item); };
/// writer.finish(run_pipeline(source, options));
/// @endcode
class ReportWriter {
 public:
  explicit ReportWriter(std::ostream& out);
  void item(const ItemReport& item);
  /// Closes the items and writes the run's figures (report.items are not written again).
  void finish(const PipelineReport& report);

 private:
  std::ostream& out_;
  bool first_ = true;
};

}  // namespace pixflow::tasks
