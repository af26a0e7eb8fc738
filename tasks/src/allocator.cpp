#include "pixflow/tasks/allocator.hpp"

#include <cstdlib>  // defines __GLIBC__ under glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pixflow::tasks {

bool tune_malloc_for_images() noexcept {
#if defined(__GLIBC__)
  // 32 MiB is the largest mmap threshold glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit). Setting either
  // value turns off glibc's own threshold adjustment, so both are set, threshold first.
  constexpr int mmap_threshold = 32 << 20;
  constexpr int trim_threshold = 256 << 20;
  return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
#else
  return false;
#endif
}

}  // namespace pixflow::tasks
