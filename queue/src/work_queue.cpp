// WorkQueue: enqueue (a Lua script per URL, pipelined) and status (counts, failures, consumers). See
// pixflow/queue/work_queue.hpp.
#include "pixflow/queue/work_queue.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "connection.hpp"
#include "layout.hpp"
#include "pixflow/tasks/json.hpp"

namespace pixflow::queue {
namespace {

using json = nlohmann::json;
using namespace detail;

constexpr double kAliveWindowS = 5;  // a worker counts as alive this long after its heartbeat

// KEYS: urls set, items stream, results hash. ARGV: url, skipped-result JSON ('' to queue the url).
// Returns the item's index, or -1 when the URL was queued before.
constexpr const char* kEnqueueScript = R"lua(
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return -1 end
local index = redis.call('SCARD', KEYS[1]) - 1
if ARGV[2] ~= '' then
  local result = cjson.decode(ARGV[2])
  result['index'] = index
  redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(result))
else
  redis.call('XADD', KEYS[2], '*', 'url', ARGV[1], 'index', tostring(index))
end
return index
)lua";

// KEYS: workers zset. ARGV: window (ms). Workers seen within the window.
constexpr const char* kAliveScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
)lua";

/// A string member of a result object; "" when absent, not a string, or the result is no object.
std::string text_field(const json& result, const char* key) {
  if (!result.is_object()) return {};
  const auto it = result.find(key);
  return it != result.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// The result's "index" (an unsigned integer); 0 when absent or of another type.
std::uint64_t index_field(const json& result) {
  if (!result.is_object()) return 0;
  const auto it = result.find("index");
  return it != result.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

}  // namespace

nlohmann::ordered_json to_json(const QueueStatus& s) {
  using ojson = nlohmann::ordered_json;
  ojson failures = ojson::array();
  for (const auto& f : s.failures)
    failures.push_back({{"url", f.url}, {"stage", f.stage}, {"reason", f.reason}, {"worker", f.worker}});
  ojson consumers = ojson::array();
  for (const auto& c : s.consumers)
    consumers.push_back({{"name", c.name}, {"holding", c.holding}, {"idle_s", std::round(c.idle_s * 10) / 10}});
  ojson out = ojson::object();
  out["total"] = s.total;
  out["done"] = s.done;
  out["failed"] = s.failed;
  out["pending"] = s.pending;
  out["workers"] = s.workers;
  out["skipped"] = s.skipped;
  out["in_progress"] = s.in_progress;
  out["failures"] = std::move(failures);
  out["consumers"] = std::move(consumers);
  return out;
}

struct WorkQueue::Impl {
  Impl(RedisAddress address, std::string queue, double connect_timeout_s)
      : name(std::move(queue)), keys(name), connection(std::move(address), connect_timeout_s, 0) {}
  std::string name;
  Keys keys;
  Connection connection;
};

WorkQueue::WorkQueue(RedisAddress address, std::string name, double connect_timeout_s) {
  if (!valid_queue_name(name)) throw std::invalid_argument("invalid queue name: \"" + name + "\" (use 1..100 of A-Z a-z 0-9 . _ -)");
  impl_ = std::make_unique<Impl>(std::move(address), std::move(name), connect_timeout_s);
  impl_->connection.connect();
}
WorkQueue::~WorkQueue() = default;
WorkQueue::WorkQueue(WorkQueue&&) noexcept = default;
WorkQueue& WorkQueue::operator=(WorkQueue&&) noexcept = default;

const std::string& WorkQueue::name() const noexcept { return impl_->name; }

EnqueueResult WorkQueue::enqueue(const std::vector<std::string>& urls, const std::vector<tasks::ItemReport>& skipped) {
  Connection& c = impl_->connection;
  const Keys& k = impl_->keys;
  if (!c.connected()) c.connect();
  ensure_group(c, k);
  EnqueueResult result;
  std::vector<Args> commands;
  std::vector<bool> is_skip;
  const auto flush = [&] {
    const auto replies = c.pipeline(commands);
    for (std::size_t i = 0; i < replies.size(); ++i) {
      const Reply& r = checked(replies[i], "EVAL (enqueue)");
      if (!r.is_integer()) unexpected("EVAL (enqueue)");
      if (r.integer < 0)
        ++result.already_queued;
      else if (is_skip[i])
        ++result.skipped;
      else
        ++result.queued;
    }
    commands.clear();
    is_skip.clear();
  };
  const auto add = [&](const std::string& url, std::string skip_result) {
    commands.push_back({"EVAL", kEnqueueScript, "3", k.urls, k.items, k.results, url, std::move(skip_result)});
    is_skip.push_back(!commands.back().back().empty());
    if (commands.size() >= 1000) flush();
  };
  for (const auto& item : skipped) {
    json r = {{"status", tasks::name_of(tasks::ItemStatus::skipped)}, {"stage", item.stage}, {"reason", item.reason}, {"worker", ""}};
    add(item.input, r.dump());
  }
  for (const auto& url : urls) add(url, "");
  flush();
  return result;
}

QueueStatus WorkQueue::status() {
  Connection& c = impl_->connection;
  const Keys& k = impl_->keys;
  if (!c.connected()) c.connect();
  QueueStatus s;
  const auto head = c.pipeline({{"SCARD", k.urls},
                                {"XPENDING", k.items, kGroup},
                                {"EVAL", kAliveScript, "1", k.workers, std::to_string(static_cast<long long>(kAliveWindowS * 1000))},
                                {"XINFO", "CONSUMERS", k.items, kGroup}});
  s.total = to_size(checked(head[0], "SCARD").integer);
  if (!head[1].is_error() && head[1].is_array() && !head[1].elements.empty()) s.in_progress = to_size(head[1].elements[0].integer);
  s.workers = to_size(checked(head[2], "EVAL (workers)").integer);
  if (!head[3].is_error() && head[3].is_array()) {  // an error: no stream or no group yet
    for (const Reply& consumer : head[3].elements) {
      ConsumerInfo info;
      for (std::size_t i = 0; i + 1 < consumer.elements.size(); i += 2) {
        const std::string& key = consumer.elements[i].str;
        const Reply& value = consumer.elements[i + 1];
        if (key == "name") info.name = value.str;
        if (key == "pending") info.holding = to_size(value.integer);
        if (key == "idle") info.idle_s = static_cast<double>(value.integer) / 1000.0;
      }
      s.consumers.push_back(std::move(info));
    }
  }

  std::string cursor = "0";
  do {
    const Reply r = checked(c.command({"HSCAN", k.results, cursor, "COUNT", "1000"}), "HSCAN");
    if (!r.is_array() || r.elements.size() != 2) unexpected("HSCAN");
    cursor = r.elements[0].str;
    const auto& pairs = r.elements[1].elements;
    for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
      // Written by workers, but read back from a shared server: bounded (64 levels; Redis caps the size)
      // and read field by field, so a foreign value counts as pending rather than crashing `status`.
      const tasks::JsonResult parsed = tasks::parse_json(pairs[i + 1].str, {.max_bytes = 0, .max_depth = tasks::kJsonMaxDepth});
      const json result = parsed ? *parsed : json();
      const std::string status = text_field(result, "status");
      if (status == "ok" || status == "skipped") {
        ++s.done;
        if (status == "skipped") ++s.skipped;
      } else if (status == "failed") {
        ++s.failed;
        s.failures.push_back({pairs[i].str, text_field(result, "stage"), text_field(result, "reason"),
                              text_field(result, "worker"), index_field(result)});
      }
    }
  } while (cursor != "0");
  std::sort(s.failures.begin(), s.failures.end(),
            [](const QueueFailure& a, const QueueFailure& b) { return std::tie(a.index, a.url) < std::tie(b.index, b.url); });
  s.pending = s.total > s.done + s.failed ? s.total - s.done - s.failed : 0;
  return s;
}

}  // namespace pixflow::queue
