#pragma once
/// @file
/// Bounded JSON reading: the one way pixflow turns untrusted text (the config file, Imgur listing pages
/// and album answers, Redis result payloads) into an nlohmann::json.
///
/// nlohmann's parser and destructor are iterative, but much of what one does with a document afterwards
/// is recursive (dump(), comparison, copies, our own walkers): 100,000 nested `[` fit in 200 KB and
/// overflow the stack there. parse_json therefore refuses, with a clear error and the byte offset:
///   - a text longer than `max_bytes` ("too large (more than 1 MiB)"),
///   - nesting deeper than `max_depth` arrays/objects ("too deeply nested (more than 64 levels)"),
///   - anything but exactly one JSON value: trailing data, a second document, and a NUL byte anywhere
///     (nlohmann alone stops at a NUL and accepts `{}` NUL `garbage`),
///   - syntax errors and numbers out of range (nlohmann's own words).
/// Comments are not allowed (standard JSON).
///
/// @code
/// using namespace pixflow::tasks;
/// JsonResult doc = parse_json(text, {.max_bytes = 0, .max_depth = 64});   // 0: no size cap
/// if (!doc) return Error{"malformed listing: " + doc.error().what()};
///                              // "malformed listing: too deeply nested (more than 64 levels) at byte 64"
/// use(*doc);
///
/// JsonResult config = read_json_file("pixflow.json");                     // at most 1 MiB is read
/// if (!config && config.error().offset)                                  // a JSON-level error
///   std::cerr << "line " << config.error().line << ", column " << config.error().column << ": "
///             << config.error().what() << '\n';
/// @endcode
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

namespace pixflow::tasks {

/// Default nesting cap: pixflow's own documents nest 4 levels, Imgur's about 6.
inline constexpr std::size_t kJsonMaxDepth = 64;
/// Default size cap of read_json_file (a config is a few hundred bytes).
inline constexpr std::size_t kJsonMaxBytes = std::size_t{1} << 20;

/// What parse_json and read_json_file accept.
struct JsonLimits {
  std::size_t max_bytes = kJsonMaxBytes;  ///< longest text accepted; 0: no cap (the caller bounded it)
  std::size_t max_depth = kJsonMaxDepth;  ///< deepest nesting of arrays/objects accepted (the root counts 1)
};

/// Why a text is not one acceptable JSON value.
struct JsonError {
  /// What is wrong, without a location: "too deeply nested (more than 64 levels)", "too large (more than
  /// 1 MiB)", "unexpected data after the JSON value", "unexpected NUL byte", "cannot read: <strerror>",
  /// or nlohmann's syntax message ("syntax error while parsing object - unexpected end of input; ...").
  std::string message;
  /// The 0-based offset of the offending byte (for a number out of range: where the reader stopped just
  /// after it); empty for file-level errors (unreadable, too large).
  std::optional<std::size_t> offset;
  std::size_t line = 0;    ///< 1-based line of `offset` (0 when there is none)
  std::size_t column = 0;  ///< 1-based column (in bytes) of `offset` (0 when there is none)

  /// `message`, then " at byte N" when there is an offset.
  [[nodiscard]] std::string what() const;
};

/// A parsed document or the JsonError saying why there is none (the shape of Expected<T>).
class JsonResult {
 public:
  JsonResult(nlohmann::json value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  JsonResult(JsonError error) : state_(std::in_place_index<1>, std::move(error)) {}       // NOLINT: implicit by design

  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  nlohmann::json& value() & { return std::get<0>(state_); }
  const nlohmann::json& value() const& { return std::get<0>(state_); }
  nlohmann::json&& value() && { return std::get<0>(std::move(state_)); }
  nlohmann::json& operator*() & { return value(); }
  const nlohmann::json& operator*() const& { return value(); }
  nlohmann::json&& operator*() && { return std::move(*this).value(); }
  nlohmann::json* operator->() { return &value(); }
  const nlohmann::json* operator->() const { return &value(); }
  [[nodiscard]] const JsonError& error() const& { return std::get<1>(state_); }

 private:
  std::variant<nlohmann::json, JsonError> state_;
};

/// Parses `text` as exactly one JSON value within `limits` (see the file comment). Never throws for any
/// input (std::bad_alloc aside); memory use is linear in text.size().
JsonResult parse_json(std::string_view text, const JsonLimits& limits = {});

/// Reads at most limits.max_bytes + 1 bytes of `file` (a regular file, a pipe or a device: `/dev/zero`
/// is "too large", `<(echo {})` works) and parses them with parse_json. File-level errors have no offset:
/// "cannot read: No such file or directory", "cannot read: Is a directory", "too large (more than 1 MiB)".
/// limits.max_bytes 0 means kJsonMaxBytes here: a file is never read without a cap.
JsonResult read_json_file(const std::filesystem::path& file, const JsonLimits& limits = {});

/// "1 MiB", "64 KiB" or "1000 bytes": a byte count as the size errors show it.
std::string describe_bytes(std::size_t bytes);

}  // namespace pixflow::tasks
