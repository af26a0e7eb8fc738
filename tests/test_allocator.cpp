// allocator.hpp: under glibc (no sanitizer), image-sized blocks come from the heap after tuning, not
// from a fresh mmap each (mallinfo2's count of mmap'ed blocks does not grow).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "pixflow/tasks/allocator.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PIXFLOW_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PIXFLOW_TEST_SANITIZED 1
#endif
#endif

// Sanitizers bring their own allocator, which mallopt does not reach: the case is about glibc's.
#if defined(__GLIBC__) && !defined(PIXFLOW_TEST_SANITIZED)
TEST_CASE("tune_malloc_for_images keeps image-sized blocks in the heap", "[allocator]") {
  REQUIRE(pixflow::tasks::tune_malloc_for_images());
  const auto mapped_before = mallinfo2().hblks;
  for (int i = 0; i < 4; ++i) {
    void* block = std::malloc(12u << 20);  // a decoded 2000x2000 RGB image
    REQUIRE(block != nullptr);
    std::memset(block, i, 12u << 20);
    CHECK(mallinfo2().hblks == mapped_before);  // not a block mmap'ed for it alone
    std::free(block);
  }
}
#endif
