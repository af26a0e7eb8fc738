#pragma once
// Internal: running adjacent stages of unlimited concurrency in one flow-graph node.
//
// A message between two flow-graph nodes costs a task, a queue and a broadcast; for stages whose
// bodies take nanoseconds that is most of the work. So an unlimited `compute` is not built at once:
// its Stream holds a FusedChain, the stages so far, waiting to learn what follows. An unlimited
// `compute` or `sink` added next joins the chain: its body runs right after the previous one, in the
// same task, as tbb::parallel_pipeline runs a token through its filters. Any other stage (bounded,
// expand, io, limit) or run() ends the chain and builds the one node that runs it.
//
// Each stage of a chain keeps its own NodeStats and reports its own failures under its own name, so
// a report reads the same whether stages were fused or not.
#include <functional>
#include <memory>
#include <utility>

#include "pixflow/engine/detail/body_clock.hpp"
#include "pixflow/engine/result.hpp"

namespace pixflow::detail {

/// What one stage of a chain does with an item it passes on: the next stage's body, or a put into
/// the node that follows the chain. `now` is the time the stage ended (BodyClock ticks): the next
/// stage's body starts then, so the clock is read once between two stages, not twice.
template <class T>
using Step = std::function<void(ItemKey, T&&, BodyClock::ticks now)>;

/// Stages of unlimited concurrency that will run in one node, not built yet.
/// `build(next)` builds that node, with `next` run on every value the last stage passes on; it can
/// be taken once (a stage joining the chain takes it into its own `build`).
template <class T>
struct FusedChain {
  std::function<void(Step<T>)> build;

  /// Whether no stage has joined or ended the chain yet.
  [[nodiscard]] bool open() const noexcept { return static_cast<bool>(build); }
  /// Takes the builder, leaving the chain closed.
  std::function<void(Step<T>)> take() { return std::exchange(build, nullptr); }
};

}  // namespace pixflow::detail
