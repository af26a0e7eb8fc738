#include "pixflow/engine/executor.hpp"

#include <oneapi/tbb/info.h>

namespace pixflow {

Executor::Executor(std::size_t threads) {
  const auto cores = static_cast<std::size_t>(tbb::info::default_concurrency());
  threads_ = threads == 0 ? cores : threads;
  // More threads than cores (e.g. a test of 4 threads on 2 cores) needs the process-wide cap raised.
  if (threads_ > cores) parallelism_.emplace(tbb::global_control::max_allowed_parallelism, threads_);
  arena_.initialize(static_cast<int>(threads_));
}

Executor::~Executor() = default;

}  // namespace pixflow
