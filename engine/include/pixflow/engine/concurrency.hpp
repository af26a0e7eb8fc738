#pragma once
/// @file
/// Concurrency: how many bodies of one stage may run at once — a bound, not a thread count.
///
/// A compute stage with `Concurrency::unlimited()` lets work stealing use every core; an I/O stage's
/// concurrency is the number of operations in flight (transfers), however few threads there are.
///
/// @code
/// pixflow::Concurrency decode = pixflow::Concurrency::unlimited();
/// pixflow::Concurrency download{32};
/// if (!download.is_unlimited()) std::cout << download.limit();
/// @endcode
#include <cstddef>
#include <string>

namespace pixflow {

class Concurrency {
 public:
  /// At most `limit` bodies at once; `limit` must be >= 1.
  constexpr explicit Concurrency(std::size_t limit) : limit_(limit == 0 ? 1 : limit) {}
  /// As many as the scheduler can run (every core for compute stages).
  static constexpr Concurrency unlimited() noexcept { return Concurrency(); }

  [[nodiscard]] constexpr bool is_unlimited() const noexcept { return limit_ == 0; }
  /// The bound; 0 when unlimited.
  [[nodiscard]] constexpr std::size_t limit() const noexcept { return limit_; }
  /// "unlimited" or the number, as written in the JSON config.
  [[nodiscard]] std::string to_string() const {
    return is_unlimited() ? std::string("unlimited") : std::to_string(limit_);
  }
  friend constexpr bool operator==(Concurrency, Concurrency) noexcept = default;

 private:
  constexpr Concurrency() noexcept = default;
  std::size_t limit_ = 0;
};

}  // namespace pixflow
