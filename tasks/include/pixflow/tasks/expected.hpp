#pragma once
/// @file
/// Expected<T>: the value a task returns, or the reason it failed for this one item.
///
/// Tasks never throw for a per-item failure (a 404, a corrupt JPEG): they return an Error, which the
/// pipeline routes to the report. Exceptions are kept for programming and configuration errors.
///
/// @code
/// pixflow::tasks::Expected<int> parse_port(std::string_view s) {
///   if (s.empty()) return pixflow::tasks::Error{"empty port"};
///   return 8080;
/// }
/// auto port = parse_port("80");
/// if (!port) std::cerr << port.error().reason;
/// else use(*port);
/// @endcode
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace pixflow::tasks {

/// Why one item failed, in words fit for a report (`"http 404"`, `"corrupt jpeg"`). The reason never
/// holds a per-item path, so a report can group failures by it (a full disk is one line, not one per
/// file); what it is about, when that helps (the file that could not be written), goes in `detail`.
struct Error {
  std::string reason;
  std::string detail{};  ///< e.g. the path that could not be written; may be empty
};

/// Either a T or an Error. A small stand-in for C++23's std::expected.
template <class T>
class Expected {
 public:
  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}        // NOLINT: implicit by design
  Expected(Error error) : state_(std::in_place_index<1>, std::move(error)) {}    // NOLINT: implicit by design

  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  [[nodiscard]] const Error& error() const& { return std::get<1>(state_); }
  [[nodiscard]] Error&& error() && { return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

/// Success with no value, or the reason it failed: `return {};` on success, `return Error{...};` else.
///
/// @code
/// pixflow::tasks::Expected<void> check(int n) {
///   if (n < 0) return pixflow::tasks::Error{"negative"};
///   return {};
/// }
/// if (auto done = check(-1); !done) std::cerr << done.error().reason;
/// @endcode
template <>
class Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }

  [[nodiscard]] const Error& error() const& { return *error_; }
  [[nodiscard]] Error&& error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

}  // namespace pixflow::tasks
