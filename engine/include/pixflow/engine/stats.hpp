#pragma once
/// @file
/// NodeReport and RunReport: what a finished run tells about itself.
///
/// @code
/// pixflow::RunReport report = graph.run();
/// for (const auto& node : report.nodes)
///   std::cout << node.name << ": " << node.items << " items, " << node.busy_s << " s busy\n";
/// if (report.cancelled) std::cerr << "stopped: " << report.cancel_reason << '\n';
/// @endcode
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pixflow/engine/concurrency.hpp"

namespace pixflow {

/// Figures for one node of the graph.
struct NodeReport {
  std::string name;
  std::string kind;              ///< "source", "input", "compute", "expand", "io", "route", "merge" or "sink"
  Concurrency concurrency{1};
  std::uint64_t items = 0;       ///< items whose body ran to the end (success or failure); for a merge, items through it
  std::uint64_t failed = 0;      ///< of those, items that failed here
  std::uint64_t emitted = 0;     ///< items passed on to the next node
  double busy_s = 0;             ///< body time summed over items (for I/O: operation time, start to completion)
  std::size_t peak_active = 0;   ///< most bodies (or I/O operations) running at one moment
  std::size_t peak_queue = 0;    ///< most items waiting in front of this node at one moment
  std::size_t active = 0;        ///< bodies (or I/O operations) running at the moment of the report
  std::size_t queued = 0;        ///< items waiting in front of this node at the moment of the report
};

/// The whole run. Figures count from the end of the previous run() (or the graph's construction).
struct RunReport {
  std::vector<NodeReport> nodes;  ///< in the order the nodes were added
  double wall_s = 0;
  std::size_t peak_live = 0;      ///< most items holding a place of `Stream::limit()` (max_in_flight) at one moment
  bool cancelled = false;
  std::string cancel_reason;      ///< "timed out after 5 s", "interrupted", "source failed: ...", or what Graph::cancel was given

  /// The node called `name`, or nullptr.
  [[nodiscard]] const NodeReport* node(const std::string& name) const;
};

}  // namespace pixflow
