#include "pixflow/tasks/config.hpp"

#include "pixflow/tasks/json.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "errno_reason.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

namespace pixflow::tasks {

namespace {

using json = nlohmann::json;
using pointer = json::json_pointer;

std::string shown_path(const std::string& path) { return path.empty() ? "(root)" : path; }

std::string compose(const std::filesystem::path& file, const std::string& path, const std::string& message) {
  std::string text;
  if (!file.empty()) text += file.string() + ": ";
  if (!path.empty() || file.empty()) text += shown_path(path) + ": ";
  return text + message;
}

/// The offending value as JSON, cut short when long: `"four"`, `0`, `[1,2]`, `[[1,2],[3...`. Written
/// with an explicit stack and stopped after kMax characters: dump() recurses once per nesting level, and a
/// document built by a caller (parse_config takes any json) may nest 100,000 levels.
std::string shown(const json& value) {
  constexpr std::size_t kMax = 60;
  std::string text;
  struct Frame {
    const json* container;
    std::size_t next;  // index of the next element (arrays) or entry (objects)
    json::const_iterator it;
  };
  std::vector<Frame> stack;
  const auto open = [&](const json& v) {
    if (v.is_array() || v.is_object()) {
      text += v.is_array() ? '[' : '{';
      stack.push_back({&v, 0, v.cbegin()});
    } else {
      text += v.dump();
    }
  };
  open(value);
  while (!stack.empty() && text.size() <= kMax) {
    Frame& top = stack.back();
    if (top.it == top.container->cend()) {
      text += top.container->is_array() ? ']' : '}';
      stack.pop_back();
      continue;
    }
    if (top.next++ > 0) text += ',';
    const json::const_iterator item = top.it++;
    if (top.container->is_object()) text += json(item.key()).dump() + ':';
    open(*item);  // may invalidate `top`
  }
  if (text.size() > kMax) text = text.substr(0, kMax) + "...";
  return text;
}

[[noreturn]] void fail(const pointer& at, const std::string& message) { throw ConfigError(at.to_string(), message); }

[[noreturn]] void fail_got(const pointer& at, const std::string& expected, const json& value) {
  fail(at, "expected " + expected + ", got " + shown(value));
}

/// An integer in [min, max]; booleans and floats (even 4.0) are type errors.
std::uint64_t read_integer(const json& value, const pointer& at, std::int64_t min, std::uint64_t max) {
  const std::string expected = "an integer >= " + std::to_string(min);
  if (value.is_number_unsigned()) {
    const auto n = value.get<std::uint64_t>();
    if (min > 0 && n < static_cast<std::uint64_t>(min)) fail_got(at, expected, value);
    if (n > max) fail_got(at, "an integer <= " + std::to_string(max), value);
    return n;
  }
  if (value.is_number_integer()) {  // stored signed: negative, or built in C++ from an int
    const auto n = value.get<std::int64_t>();
    if (n < min) fail_got(at, expected, value);
    if (n >= 0 && static_cast<std::uint64_t>(n) > max) fail_got(at, "an integer <= " + std::to_string(max), value);
    return static_cast<std::uint64_t>(n);
  }
  fail_got(at, expected, value);
}

/// A number (integer or float, not boolean): finite, >= 0 (> 0 unless `zero_allowed`), <= max.
double read_number(const json& value, const pointer& at, bool zero_allowed, double max) {
  const std::string expected = zero_allowed ? "a number >= 0" : "a number > 0";
  if (!value.is_number()) fail_got(at, expected, value);
  const double n = value.get<double>();
  if (!std::isfinite(n) || n < 0 || (!zero_allowed && n == 0)) fail_got(at, expected, value);
  if (n > max) fail_got(at, "a number <= " + json(max).dump(), value);
  return n;
}

/// A number of seconds: see read_number, at most kMaxSeconds.
double read_seconds(const json& value, const pointer& at, bool zero_allowed) {
  return read_number(value, at, zero_allowed, kMaxSeconds);
}

/// An integer >= 1 or "unlimited".
pixflow::Concurrency read_concurrency(const json& value, const pointer& at) {
  const std::string expected = "an integer >= 1 or \"unlimited\"";
  if (value.is_string()) {
    if (value.get_ref<const std::string&>() == "unlimited") return pixflow::Concurrency::unlimited();
    fail_got(at, expected, value);
  }
  if (!value.is_number_integer()) fail_got(at, expected, value);  // also booleans and floats
  if (!value.is_number_unsigned() && value.get<std::int64_t>() < 1) fail_got(at, expected, value);
  const auto n = value.get<std::uint64_t>();
  if (n < 1) fail_got(at, expected, value);
  if (n > kMaxConcurrency) fail_got(at, "an integer <= " + std::to_string(kMaxConcurrency) + " or \"unlimited\"", value);
  return pixflow::Concurrency(static_cast<std::size_t>(n));
}

int read_int(const json& value, const pointer& at, int min, int max) {
  return static_cast<int>(read_integer(value, at, min, static_cast<std::uint64_t>(max)));
}

std::vector<Size> read_sizes(const json& value, const pointer& at) {
  const std::string expected = "a non-empty array of sizes like [\"128x128\"]";
  if (!value.is_array() || value.empty()) fail_got(at, expected, value);
  std::vector<Size> sizes;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const json& item = value[i];
    const pointer item_at = at / i;
    const std::string item_expected = "a size \"WxH\" with 1 <= W, H <= " + std::to_string(kMaxThumbnailSide);
    if (!item.is_string()) fail_got(item_at, item_expected, item);
    const auto size = parse_size(item.get_ref<const std::string&>());
    if (!size || size->width > kMaxThumbnailSide || size->height > kMaxThumbnailSide)
      fail_got(item_at, item_expected, item);
    if (std::find(sizes.begin(), sizes.end(), *size) != sizes.end())
      fail(item_at, "duplicate size " + to_string(*size));
    sizes.push_back(*size);
  }
  return sizes;
}

/// A string naming one of a few values: `parse` gives the value of a spelling, or nothing; anything
/// else fails with "<at>: expected <expected>, got <value>".
template <class Parse>
auto read_choice(const json& value, const pointer& at, const std::string& expected, Parse parse) {
  if (!value.is_string()) fail_got(at, expected, value);
  const auto choice = parse(value.get_ref<const std::string&>());
  if (!choice) fail_got(at, expected, value);
  return *choice;
}

ImageFormat read_format(const json& value, const pointer& at) {
  return read_choice(value, at, "one of \"same\", \"jpg\", \"png\", \"webp\"", parse_format);
}

AnimatedMode read_animated(const json& value, const pointer& at) {
  return read_choice(value, at, "one of \"first-frame\", \"animate\"", [](std::string_view text) -> std::optional<AnimatedMode> {
    if (text == "first-frame") return AnimatedMode::first_frame;
    if (text == "animate") return AnimatedMode::animate;
    return std::nullopt;
  });
}

VideoMode read_video(const json& value, const pointer& at) {
  return read_choice(value, at, "one of \"poster\", \"skip\"", [](std::string_view text) -> std::optional<VideoMode> {
    if (text == "poster") return VideoMode::poster;
    if (text == "skip") return VideoMode::skip;
    return std::nullopt;
  });
}

/// `/nodes/download/ca_file`: "" or the path of a readable regular file (a PEM bundle; curl reads it).
std::filesystem::path read_ca_file(const json& value, const pointer& at) {
  if (!value.is_string()) fail_got(at, "a path (string)", value);
  const std::string& path = value.get_ref<const std::string&>();
  if (path.empty()) return path;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || ::access(path.c_str(), R_OK) != 0)
    fail(at, "cannot read " + shown(value) + ": " + detail::errno_reason(errno));
  if (!S_ISREG(info.st_mode)) fail(at, "not a regular file: " + shown(value));
  return path;
}

/// `/nodes/download/http2`: "auto" (true) or "off" (false).
bool read_http2(const json& value, const pointer& at) {
  return read_choice(value, at, "\"auto\" or \"off\"", [](std::string_view text) -> std::optional<bool> {
    if (text == "auto") return true;
    if (text == "off") return false;
    return std::nullopt;
  });
}

/// `/durability`: "per-item", "at-end" or "none".
Durability read_durability(const json& value, const pointer& at) {
  return read_choice(value, at, "one of \"per-item\", \"at-end\", \"none\"", parse_durability);
}

ThumbnailMode read_mode(const json& value, const pointer& at) {
  return read_choice(value, at, "one of \"fit\", \"fill\", \"fill-attention\"", parse_mode);
}

bool read_bool(const json& value, const pointer& at) {
  if (!value.is_boolean()) fail_got(at, "true or false", value);
  return value.get<bool>();
}

/// One key of an object and what to do with its value.
struct Field {
  std::string_view key;
  std::function<void(const json& value, const pointer& at)> read;
};

/// Walks the keys of `object` (in its own key order): an unknown key is an error, a known one is read.
void read_object(const json& value, const pointer& at, std::initializer_list<Field> fields) {
  if (!value.is_object()) fail_got(at, "an object", value);
  for (const auto& entry : value.items()) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    const std::string& key = entry.key();
    const auto field = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == key; });
    if (field == fields.end()) fail(at / key, "unknown key");
    field->read(entry.value(), at / key);
  }
}

void read_download(const json& value, const pointer& at, DownloadConfig& out) {
  read_object(value, at, {
    {"concurrency", [&](const json& v, const pointer& p) { out.concurrency = read_concurrency(v, p); }},
    {"per_host", [&](const json& v, const pointer& p) { out.per_host = read_integer(v, p, 1, kMaxConcurrency); }},
    {"connect_timeout_s", [&](const json& v, const pointer& p) { out.connect_timeout_s = read_seconds(v, p, false); }},
    {"timeout_s", [&](const json& v, const pointer& p) { out.timeout_s = read_seconds(v, p, false); }},
    {"header_timeout_s", [&](const json& v, const pointer& p) { out.header_timeout_s = read_seconds(v, p, false); }},
    {"stall_timeout_s", [&](const json& v, const pointer& p) { out.stall_timeout_s = read_seconds(v, p, false); }},
    {"min_speed_bytes_s", [&](const json& v, const pointer& p) { out.min_speed_bytes_s = read_integer(v, p, 0, kMaxBytes); }},
    {"max_bytes", [&](const json& v, const pointer& p) { out.max_bytes = read_integer(v, p, 1, kMaxBytes); }},
    {"max_redirects", [&](const json& v, const pointer& p) {
       out.max_redirects = static_cast<long>(read_integer(v, p, 0, static_cast<std::uint64_t>(kMaxRedirects)));
     }},
    {"retries", [&](const json& v, const pointer& p) { out.retries = read_int(v, p, 0, kMaxRetries); }},
    {"backoff_s", [&](const json& v, const pointer& p) { out.backoff_s = read_seconds(v, p, false); }},
    {"max_retry_wait_s", [&](const json& v, const pointer& p) { out.max_retry_wait_s = read_seconds(v, p, false); }},
    {"rate_per_host", [&](const json& v, const pointer& p) { out.rate_per_host = read_number(v, p, true, kMaxRatePerHost); }},
    {"ca_file", [&](const json& v, const pointer& p) { out.ca_file = read_ca_file(v, p); }},
    {"http2", [&](const json& v, const pointer& p) { out.http2 = read_http2(v, p); }},
  });
}

void read_thumbnail(const json& value, const pointer& at, ThumbnailConfig& out) {
  read_object(value, at, {
    {"concurrency", [&](const json& v, const pointer& p) { out.concurrency = read_concurrency(v, p); }},
    {"sizes", [&](const json& v, const pointer& p) { out.sizes = read_sizes(v, p); }},
    {"format", [&](const json& v, const pointer& p) { out.format = read_format(v, p); }},
    {"mode", [&](const json& v, const pointer& p) { out.mode = read_mode(v, p); }},
    {"keep_metadata", [&](const json& v, const pointer& p) { out.keep_metadata = read_bool(v, p); }},
    {"jpeg_quality", [&](const json& v, const pointer& p) { out.jpeg_quality = read_int(v, p, 1, 100); }},
    {"webp_quality", [&](const json& v, const pointer& p) { out.webp_quality = read_int(v, p, 1, 100); }},
    {"png_compression", [&](const json& v, const pointer& p) { out.png_compression = read_int(v, p, 0, 9); }},
    {"animated", [&](const json& v, const pointer& p) { out.animated = read_animated(v, p); }},
    {"max_frames", [&](const json& v, const pointer& p) { out.max_frames = read_integer(v, p, 1, kMaxFrames); }},
    {"video", [&](const json& v, const pointer& p) { out.video = read_video(v, p); }},
  });
}

/// A node that has only a concurrency.
Field concurrency_node(std::string_view name, pixflow::Concurrency& out) {
  return {name, [&out](const json& v, const pointer& p) {
            read_object(v, p, {{"concurrency", [&out](const json& c, const pointer& q) { out = read_concurrency(c, q); }}});
          }};
}

json concurrency_json(pixflow::Concurrency c) {
  if (c.is_unlimited()) return "unlimited";
  return c.limit();
}

}  // namespace

std::string_view name_of(AnimatedMode mode) { return mode == AnimatedMode::animate ? "animate" : "first-frame"; }

std::string_view name_of(VideoMode mode) { return mode == VideoMode::skip ? "skip" : "poster"; }

ConfigError::ConfigError(std::string path, std::string message)
    : std::runtime_error(compose({}, path, message)), path_(std::move(path)), message_(std::move(message)) {}

ConfigError::ConfigError(std::filesystem::path file, std::string path, std::string message)
    : std::runtime_error(compose(file, path, message)),
      path_(std::move(path)),
      message_(std::move(message)),
      file_(std::move(file)) {}

PipelineConfig parse_config(const json& document, PipelineConfig defaults) {
  PipelineConfig c = std::move(defaults);
  const pointer root;
  read_object(document, root, {
    {"threads", [&](const json& v, const pointer& p) { c.threads = read_integer(v, p, 0, kMaxThreads); }},
    {"max_in_flight", [&](const json& v, const pointer& p) { c.max_in_flight = read_integer(v, p, 1, kMaxInFlight); }},
    {"timeout_s", [&](const json& v, const pointer& p) { c.timeout_s = read_seconds(v, p, true); }},
    {"durability", [&](const json& v, const pointer& p) { c.durability = read_durability(v, p); }},
    {"nodes", [&](const json& v, const pointer& p) {
       read_object(v, p, {
         concurrency_node("fetch", c.fetch_concurrency),
         {"download", [&](const json& d, const pointer& q) { read_download(d, q, c.download); }},
         {"decode", [&](const json& d, const pointer& q) {
            read_object(d, q, {
              {"concurrency", [&](const json& x, const pointer& r) { c.decode_concurrency = read_concurrency(x, r); }},
              {"max_memory_mb", [&](const json& x, const pointer& r) { c.decode_max_memory_mb = read_integer(x, r, 16, 65536); }},
            });
          }},
         {"thumbnail", [&](const json& t, const pointer& q) { read_thumbnail(t, q, c.thumbnail); }},
         concurrency_node("write", c.write_concurrency),
       });
     }},
    // The queue settings of `pixflow worker` share the file; they are read and checked by
    // parse_queue_config (pixflow/queue/config.hpp), so one config serves local runs and workers.
    {"redis", [](const json&, const pointer&) {}},
  });
  return c;
}

PipelineConfig apply_overrides(PipelineConfig config, const ConfigOverrides& overrides) {
  if (!overrides.sizes.empty()) {
    config.thumbnail.sizes.clear();
    for (const auto& text : overrides.sizes) {
      auto size = parse_size(text);
      if (!size) throw ConfigError("--size", "expected WxH with both > 0, got \"" + text + "\"");
      config.thumbnail.sizes.push_back(*size);
    }
  }
  if (!overrides.format.empty()) {
    auto format = parse_format(overrides.format);
    if (!format) throw ConfigError("--format", "expected same|jpg|png|webp, got \"" + overrides.format + "\"");
    config.thumbnail.format = *format;
  }
  if (overrides.threads) config.threads = *overrides.threads;
  if (!overrides.mode.empty()) {
    auto mode = parse_mode(overrides.mode);
    if (!mode) throw ConfigError("--mode", "expected fit|fill|fill-attention, got \"" + overrides.mode + "\"");
    config.thumbnail.mode = *mode;
  }
  return config;
}

ConfigError config_file_error(const std::filesystem::path& file, const JsonError& error) {
  if (!error.offset) return {file, "", error.message};  // unreadable, too large
  // JSON-level: where (line and column for a person, the byte offset in what()) and what.
  return {file, "", "line " + std::to_string(error.line) + ", column " + std::to_string(error.column) + ": " + error.what()};
}

PipelineConfig load_config(const std::filesystem::path& file, PipelineConfig defaults) {
  JsonResult document = read_json_file(file);
  if (!document) throw config_file_error(file, document.error());
  try {
    return parse_config(*document, std::move(defaults));
  } catch (const ConfigError& e) {
    throw ConfigError(file, e.path(), e.message());
  }
}

json to_json(const PipelineConfig& c) {
  json sizes = json::array();
  for (const Size s : c.thumbnail.sizes) sizes.push_back(to_string(s));
  const DownloadConfig& d = c.download;
  const ThumbnailConfig& t = c.thumbnail;
  return {
      {"threads", c.threads},
      {"max_in_flight", c.max_in_flight},
      {"timeout_s", c.timeout_s},
      {"durability", std::string(to_string(c.durability))},
      {"nodes",
       {{"fetch", {{"concurrency", concurrency_json(c.fetch_concurrency)}}},
        {"download",
         {{"concurrency", concurrency_json(d.concurrency)},
          {"per_host", d.per_host},
          {"connect_timeout_s", d.connect_timeout_s},
          {"timeout_s", d.timeout_s},
          {"header_timeout_s", d.header_timeout_s},
          {"stall_timeout_s", d.stall_timeout_s},
          {"min_speed_bytes_s", d.min_speed_bytes_s},
          {"max_bytes", d.max_bytes},
          {"max_redirects", d.max_redirects},
          {"retries", d.retries},
          {"backoff_s", d.backoff_s},
          {"max_retry_wait_s", d.max_retry_wait_s},
          {"rate_per_host", d.rate_per_host},
          {"ca_file", d.ca_file.string()},
          {"http2", d.http2 ? "auto" : "off"}}},
        {"decode", {{"concurrency", concurrency_json(c.decode_concurrency)}, {"max_memory_mb", c.decode_max_memory_mb}}},
        {"thumbnail",
         {{"concurrency", concurrency_json(t.concurrency)},
          {"sizes", sizes},
          {"format", std::string(t.format == ImageFormat::jpeg ? "jpg" : name_of(t.format))},
          {"mode", std::string(name_of(t.mode))},
          {"keep_metadata", t.keep_metadata},
          {"jpeg_quality", t.jpeg_quality},
          {"webp_quality", t.webp_quality},
          {"png_compression", t.png_compression},
          {"animated", std::string(name_of(t.animated))},
          {"max_frames", t.max_frames},
          {"video", std::string(name_of(t.video))}}},
        {"write", {{"concurrency", concurrency_json(c.write_concurrency)}}}}},
  };
}

}  // namespace pixflow::tasks
