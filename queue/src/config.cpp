// `/redis` of the config file, and a worker's whole config file. See pixflow/queue/config.hpp.
#include "pixflow/queue/config.hpp"

#include <cmath>
#include <cstdint>
#include <string>

#include "pixflow/tasks/json.hpp"

namespace pixflow::queue {
namespace {

using json = nlohmann::json;
using pointer = json::json_pointer;
using tasks::ConfigError;

constexpr std::size_t kMaxBatch = 100'000;

[[noreturn]] void config_fail(const pointer& at, const std::string& expected, const json& value) {
  std::string shown = value.dump();
  if (shown.size() > 60) shown = shown.substr(0, 60) + "...";
  throw ConfigError(at.to_string(), "expected " + expected + ", got " + shown);
}

double read_seconds(const json& value, const pointer& at) {
  const std::string expected = "a number > 0 and <= " + std::to_string(static_cast<long long>(tasks::kMaxSeconds));
  if (!value.is_number()) config_fail(at, expected, value);
  const double s = value.get<double>();
  if (!std::isfinite(s) || s <= 0 || s > tasks::kMaxSeconds) config_fail(at, expected, value);
  return s;
}

std::size_t read_count(const json& value, const pointer& at, std::size_t max) {
  const std::string expected = "an integer in 1.." + std::to_string(max);
  if (!value.is_number_integer()) config_fail(at, expected, value);  // booleans and floats too
  if (!value.is_number_unsigned() && value.get<std::int64_t>() < 1) config_fail(at, expected, value);
  const auto n = value.get<std::uint64_t>();
  if (n < 1 || n > max) config_fail(at, expected, value);
  return static_cast<std::size_t>(n);
}

}  // namespace

QueueConfig parse_queue_config(const nlohmann::json& document, QueueConfig defaults) {
  QueueConfig config = defaults;
  if (!document.is_object() || !document.contains("redis")) return config;
  const pointer at("/redis");
  const json& redis = document.at("redis");
  if (!redis.is_object()) config_fail(at, "an object", redis);
  for (const auto& [key, value] : redis.items()) {
    const pointer here = at / key;
    if (key == "claim_idle_s")
      config.claim_idle_s = read_seconds(value, here);
    else if (key == "batch_size")
      config.batch_size = read_count(value, here, kMaxBatch);
    else if (key == "connect_timeout_s")
      config.connect_timeout_s = read_seconds(value, here);
    else if (key == "max_deliveries")
      config.max_deliveries = read_count(value, here, 1'000'000);
    else
      throw ConfigError(here.to_string(), "unknown key");
  }
  return config;
}

nlohmann::json to_json(const QueueConfig& c) {
  return {{"redis",
           {{"claim_idle_s", c.claim_idle_s}, {"batch_size", c.batch_size},
            {"connect_timeout_s", c.connect_timeout_s}, {"max_deliveries", c.max_deliveries}}}};
}

WorkerConfig load_worker_config(const std::filesystem::path& file) {
  // The same bounded read as load_config (at most 1 MiB, 64 levels, exactly one value), errors in its words.
  tasks::JsonResult document = tasks::read_json_file(file);
  if (!document) throw tasks::config_file_error(file, document.error());
  WorkerConfig config;
  try {
    config.queue = parse_queue_config(*document);
    if (document->is_object()) document->erase("redis");
    config.pipeline = tasks::parse_config(*document);
  } catch (const ConfigError& e) {
    throw ConfigError(file, e.path(), e.message());
  }
  return config;
}

}  // namespace pixflow::queue
