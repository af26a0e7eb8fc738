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
#include <algorithm>
#include <compare>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pixflow {

/// The reason one item failed in one stage.
struct Failure {
  std::string reason;    ///< in words fit for a report ("http 404", "corrupt jpeg"); the same for every
                         ///< item that failed the same way, so a report can group by it
  std::string detail{};  ///< what it is about when that helps (the file that could not be written)
};

/// The identity of an item in the graph: a path of indexes, unique at any depth of `expand`.
///
/// An item from a source or an input gets `{seq}`, numbered 0, 1, 2... across the graph's sources and
/// inputs in the order they produced them (a graph with one source numbers its items as it pulled
/// them); the children of an `expand` get `{parent..., 1}`, `{parent..., 2}`, ... in emission order.
/// Keys order as the input did: a parent before its children, children in order (`3 < 3.1 < 3.2 < 4`).
/// Copies are cheap (a number and a shared pointer to the parent's key).
///
/// @code
/// pixflow::ItemKey page{7};
/// pixflow::ItemKey image = page.child(2);   // "7.2"
/// assert(image.seq() == 7 && image.depth() == 2 && page < image);
/// @endcode
class ItemKey {
 public:
  ItemKey() = default;
  /// A key of depth 1: item `seq` of a source or an input.
  explicit ItemKey(std::uint64_t seq) noexcept : index_(seq) {}
  /// The key of this item's child number `index` (1-based, as an expand numbers them).
  [[nodiscard]] ItemKey child(std::uint64_t index) const { return ItemKey(std::make_shared<const ItemKey>(*this), index); }
  /// The number of the source's (or input's) item this one descends from.
  [[nodiscard]] std::uint64_t seq() const noexcept {
    const ItemKey* k = this;
    while (k->parent_) k = k->parent_.get();
    return k->index_;
  }
  /// The last index of the path: `seq()` at depth 1, else the child number.
  [[nodiscard]] std::uint64_t index() const noexcept { return index_; }
  /// 1 for an item of a source, 2 for its children, ...
  [[nodiscard]] std::size_t depth() const noexcept {
    std::size_t d = 1;
    for (const ItemKey* k = parent_.get(); k != nullptr; k = k->parent_.get()) ++d;
    return d;
  }
  /// The parent's key; the key itself at depth 1.
  [[nodiscard]] ItemKey parent() const { return parent_ ? *parent_ : *this; }
  /// The path from the source's item down: {seq, child, grandchild, ...}.
  [[nodiscard]] std::vector<std::uint64_t> path() const {
    std::vector<std::uint64_t> p;
    for (const ItemKey* k = this; k != nullptr; k = k->parent_.get()) p.push_back(k->index_);
    return {p.rbegin(), p.rend()};
  }
  /// "7", "7.2", "7.2.1".
  [[nodiscard]] std::string to_string() const {
    std::string s;
    for (const std::uint64_t i : path()) {
      if (!s.empty()) s += '.';
      s += std::to_string(i);
    }
    return s;
  }
  friend bool operator==(const ItemKey& a, const ItemKey& b) {
    if (a.index_ != b.index_) return false;
    if (a.parent_ == b.parent_) return true;
    return a.path() == b.path();
  }
  friend std::strong_ordering operator<=>(const ItemKey& a, const ItemKey& b) {
    if (!a.parent_ && !b.parent_) return a.index_ <=> b.index_;
    const auto pa = a.path(), pb = b.path();
    return std::lexicographical_compare_three_way(pa.begin(), pa.end(), pb.begin(), pb.end());
  }

 private:
  template <class>
  friend class Emitter;
  ItemKey(std::shared_ptr<const ItemKey> parent, std::uint64_t index) noexcept : parent_(std::move(parent)), index_(index) {}
  std::shared_ptr<const ItemKey> parent_;
  std::uint64_t index_ = 0;
};

template <class U>
class Emitter;

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
  [[nodiscard]] bool has_value() const noexcept { return ok(); }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const T& value() const& { return std::get<0>(state_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  [[nodiscard]] const Failure& failure() const& { return std::get<1>(state_); }
  [[nodiscard]] Failure&& failure() && { return std::get<1>(std::move(state_)); }
  /// The same as failure(): the spelling of the image tasks (pixflow::tasks::Expected).
  [[nodiscard]] const Failure& error() const& { return failure(); }
  [[nodiscard]] Failure&& error() && { return std::move(*this).failure(); }

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
  [[nodiscard]] bool has_value() const noexcept { return ok(); }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] const Failure& failure() const& { return *failure_; }
  [[nodiscard]] Failure&& failure() && { return std::move(*failure_); }
  /// The same as failure(): the spelling of the image tasks (pixflow::tasks::Expected).
  [[nodiscard]] const Failure& error() const& { return failure(); }
  [[nodiscard]] Failure&& error() && { return std::move(*this).failure(); }

 private:
  std::optional<Failure> failure_;
};

/// A successful Result<void>.
inline Result<void> ok() { return {}; }

}  // namespace pixflow
