// Tests of pixflow/tasks/report.hpp: counts, failures grouped by reason, and the report's JSON, built
// whole (to_json) or streamed item by item (write_json).
#include <catch2/catch.hpp>

#include <algorithm>

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "pixflow/tasks/report.hpp"

using namespace pixflow::tasks;

namespace {

ItemReport item(std::string input, ItemStatus status, std::string reason = {}, std::string detail = {}) {
  ItemReport r;
  r.input = std::move(input);
  r.status = status;
  r.reason = std::move(reason);
  r.detail = std::move(detail);
  return r;
}

PipelineReport sample_report() {
  PipelineReport report;
  report.items.push_back(item("http://h/a.jpg", ItemStatus::ok));
  report.items.back().outputs = {"a.jpg", "a_thumbnail.jpg"};
  report.items.back().attempts = 2;
  report.items.push_back(item("http://h/b.jpg", ItemStatus::failed, "cannot write: no space left on device", "/out/b.jpg"));
  report.items.back().stage = "write";
  report.items.push_back(item("http://h/c.jpg", ItemStatus::failed, "cannot write: no space left on device", "/out/c.jpg"));
  report.items.push_back(item("http://h/d.mp4", ItemStatus::skipped, "not an image (video/mp4)"));
  report.items.push_back(item("/in/\"quoted\"\n.jpg", ItemStatus::failed, "truncated jpeg"));
  report.items.back().is_path = true;
  for (std::size_t i = 0; i < report.items.size(); ++i) {
    report.items[i].index = i;
    report.tally.add(report.items[i]);
  }
  report.listing_errors.push_back({3, "listing page 3: http 500"});
  pixflow::NodeReport node;
  node.name = "download";
  node.kind = "io";
  node.concurrency = pixflow::Concurrency(32);
  node.items = 4;
  report.run.nodes.push_back(node);
  report.run.wall_s = 1.25;
  report.run.cancelled = true;
  report.run.cancel_reason = "interrupted";
  return report;
}

}  // namespace

TEST_CASE("failures group by reason, the file at fault kept apart in the detail", "[report]") {
  const PipelineReport report = sample_report();
  CHECK(report.count(ItemStatus::failed) == 3);
  const auto groups = report.failures_by_reason();
  REQUIRE(groups.size() == 2);
  CHECK(groups[0] == std::pair<std::string, std::size_t>{"cannot write: no space left on device", 2});
  const auto json = to_json(report);
  CHECK(json.at("items").at(1).at("detail") == "/out/b.jpg");
  CHECK(json.at("items").at(0).count("detail") == 0);
  CHECK(json.at("summary").at("failures_by_reason").size() == 2);
}

TEST_CASE("write_json streams the same document as to_json, one item per line", "[report]") {
  const PipelineReport report = sample_report();
  std::ostringstream out;
  write_json(out, report);
  const std::string text = out.str();
  CHECK(nlohmann::json::parse(text) == to_json(report));
  // One line per item: a reader can follow a large report line by line.
  std::size_t lines_with_status = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.find("\"status\"") != std::string::npos) ++lines_with_status;
  CHECK(lines_with_status == report.items.size());

  PipelineReport empty;
  std::ostringstream none;
  write_json(none, empty);
  CHECK(nlohmann::json::parse(none.str()) == to_json(empty));
}

TEST_CASE("ReportWriter writes items as they finish, then the figures: the same document, nothing held", "[report]") {
  PipelineReport report = sample_report();
  std::ostringstream out;
  {
    ReportWriter writer(out);
    for (auto it = report.items.rbegin(); it != report.items.rend(); ++it) writer.item(*it);  // finish order
    const std::vector<ItemReport> kept = std::move(report.items);
    report.items.clear();  // a run that keeps nothing
    writer.finish(report);
    report.items = kept;
  }
  const auto written = nlohmann::json::parse(out.str());
  auto items = written.at("items");
  REQUIRE(items.size() == report.items.size());
  CHECK(items.at(0).at("index") == report.items.size() - 1);
  // Sorted by index, it is the report write_json writes from the kept items.
  std::vector<nlohmann::json> sorted(items.begin(), items.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.at("index") < b.at("index"); });
  auto expected = to_json(report);
  CHECK(nlohmann::json(sorted) == expected.at("items"));
  expected.erase("items");
  auto rest = written;
  rest.erase("items");
  CHECK(rest == expected);
  CHECK(rest.at("summary").at("total") == report.items.size());
}
