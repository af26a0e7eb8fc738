#include "pixflow/engine/stats.hpp"

namespace pixflow {

const NodeReport* RunReport::node(const std::string& name) const {
  for (const auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

}  // namespace pixflow
