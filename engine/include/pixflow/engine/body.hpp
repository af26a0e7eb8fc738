#pragma once
/// @file
/// What stage bodies are handed: a Completion (an `io` body's way to deliver its result later, from
/// any thread) and an Emitter (an `expand` body's way to send children on).
///
/// @code
/// stream.io<Bytes>("download", pixflow::Concurrency(32), [&](Url url, pixflow::Completion<Bytes> done) {
///   http.submit(url, [done](Response r) { r.ok() ? done(std::move(r.body)) : done(pixflow::Failure{r.reason}); });
/// });
/// pages.expand<Image>("list", pixflow::Concurrency(1), [](Page page, pixflow::Emitter<Image>& emit) {
///   for (auto& image : page.images) emit(std::move(image));
///   return pixflow::ok();
/// });
/// @endcode
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "pixflow/engine/result.hpp"

namespace pixflow {

/// Delivers the result of one I/O operation, exactly once, from any thread. Copies share one
/// delivery: the first call wins and later calls are ignored. If every copy is destroyed without a
/// call, the item fails with "operation abandoned", so the graph can never hang on a lost operation.
template <class U>
class Completion {
 public:
  struct State {
    std::function<void(Result<U>&&)> deliver;
    std::atomic<bool> done{false};
    void complete(Result<U>&& result) {
      if (!done.exchange(true)) deliver(std::move(result));
    }
    State() = default;
    State(const State&) = delete;
    State& operator=(const State&) = delete;
    ~State() {
      if (!done.load()) complete(Failure{"operation abandoned"});
    }
  };
  explicit Completion(std::shared_ptr<State> state) : state_(std::move(state)) {}
  void operator()(Result<U> result) const { state_->complete(std::move(result)); }

 private:
  std::shared_ptr<State> state_;
};

/// Passes the children of one item downstream from an `expand` body. Children are keyed
/// `parent.child(1)`, `parent.child(2)`, ... in emission order (unique at any depth of expand).
template <class U>
class Emitter {
 public:
  using Put = std::function<void(ItemKey, U&&)>;
  Emitter(ItemKey parent, Put put) : parent_(std::make_shared<const ItemKey>(std::move(parent))), put_(std::move(put)) {}
  /// Sends one child on; returns the key it was given.
  ItemKey operator()(U value) {
    ItemKey key(parent_, ++count_);
    put_(key, std::move(value));
    return key;
  }
  /// The key the next call will give (to register it before the child can be seen downstream).
  [[nodiscard]] ItemKey next_key() const { return ItemKey(parent_, count_ + 1); }
  /// Children sent so far.
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

 private:
  std::shared_ptr<const ItemKey> parent_;
  Put put_;
  std::uint64_t count_ = 0;
};

}  // namespace pixflow
