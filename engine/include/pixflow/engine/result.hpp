#pragma once
/// @file
/// Result<T>: what a stage body returns — the value for the next stage, or why this item failed.
///
/// A failed item is not an exception: it leaves the graph through the failure path, is counted in the
/// stage's statistics and reported with its reason, and the run goes on with the other items.
///
/// @code
/// pixflow::Result<int> parse(std::string s) {
///   if (s.empty()) return pixflow::Failure{"empty line"};
///   return std::stoi(s);
/// }
/// pixflow::Result<void> store(int v) { return v < 0 ? pixflow::Result<void>{pixflow::Failure{"negative"}} : pixflow::ok(); }
/// @endcode
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace pixflow {

/// The reason one item failed in one stage.
struct Failure {
  std::string reason;
};

/// The identity of an item in the graph, ordered as the input was: items from a source get
/// `{seq, 0}`; the children of an expanding stage get `{parent.seq, 1..n}` in emission order.
struct ItemKey {
  std::uint64_t seq = 0;
  std::uint64_t part = 0;
  friend constexpr auto operator<=>(const ItemKey&, const ItemKey&) = default;
};

/// A failed item as reported to Graph::on_failure.
struct ItemFailure {
  ItemKey key;
  std::string stage;
  std::string reason;
};

/// A T, or the Failure of this item.
template <class T>
class Result {
 public:
  using value_type = T;
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}          // NOLINT: implicit by design
  Result(Failure failure) : state_(std::in_place_index<1>, std::move(failure)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const T& value() const& { return std::get<0>(state_); }
  [[nodiscard]] const Failure& failure() const& { return std::get<1>(state_); }
  [[nodiscard]] Failure&& failure() && { return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Failure> state_;
};

/// Success or the Failure of this item, for stages that produce nothing (sinks).
template <>
class Result<void> {
 public:
  using value_type = void;
  Result() = default;
  Result(Failure failure) : failure_(std::move(failure)) {}  // NOLINT: implicit by design
  [[nodiscard]] bool ok() const noexcept { return !failure_; }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] const Failure& failure() const& { return *failure_; }
  [[nodiscard]] Failure&& failure() && { return std::move(*failure_); }

 private:
  std::optional<Failure> failure_;
};

/// A successful Result<void>.
inline Result<void> ok() { return {}; }

}  // namespace pixflow
