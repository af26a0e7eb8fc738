// The queue's layout in Redis: the consumer group, stream entries and result records. See layout.hpp.
#include "layout.hpp"

#include <nlohmann/json.hpp>

namespace pixflow::queue::detail {

void ensure_group(Connection& c, const Keys& keys) {
  Reply r = c.command({"XGROUP", "CREATE", keys.items, kGroup, "0", "MKSTREAM"});
  if (r.is_error() && !r.error_is("BUSYGROUP")) throw error_of(r, "XGROUP CREATE");
}

std::vector<Entry> parse_entries(const Reply& list, const std::string& what) {
  if (list.is_nil()) return {};
  if (!list.is_array()) unexpected(what);
  std::vector<Entry> entries;
  for (const Reply& e : list.elements) {
    if (e.is_nil()) continue;  // Redis 6.2: an entry deleted while pending
    if (!e.is_array() || e.elements.size() != 2 || !e.elements[0].is_text()) unexpected(what);
    Entry entry;
    entry.id = e.elements[0].str;
    const Reply& fields = e.elements[1];
    for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      if (fields.elements[i].str == "url") entry.url = fields.elements[i + 1].str;
      if (fields.elements[i].str == "index") entry.index = to_u64(fields.elements[i + 1].str);
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::string result_json(const tasks::ItemReport& item, const std::string& worker, std::uint64_t index) {
  const nlohmann::json r = {{"status", tasks::name_of(item.status)}, {"stage", item.stage}, {"reason", item.reason},
                            {"worker", worker}, {"outputs", item.outputs}, {"index", index}};
  return r.dump();
}

}  // namespace pixflow::queue::detail
