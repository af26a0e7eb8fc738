#pragma once
/// @file
/// Allocator tuning for image work. glibc's malloc serves large blocks (decode buffers, downloaded
/// bodies: megabytes each) with fresh mmap'ed pages and gives them back when freed, so every image
/// pays page faults on zero pages (and TLB shoot-downs between workers): 5 % of a gallery run's CPU.
/// Keeping those blocks in the heap for the next image removes most of it; peak memory is unchanged,
/// since the graph's `max_in_flight` bounds the images alive at once.
///
/// @code
/// int main() {
///   pixflow::tasks::tune_malloc_for_images();  // once, before the first run: it is process-wide
///   ...
/// }
/// @endcode
namespace pixflow::tasks {

/// Under glibc, raises malloc's mmap threshold to its maximum (32 MiB) and its trim threshold to
/// 256 MiB, so freed image buffers are reused instead of returned to the kernel. Process-wide; call it
/// from main, not from a library. Returns whether glibc took both settings; false under another libc,
/// where it does nothing. (A sanitizer's allocator replaces glibc's and ignores them.)
bool tune_malloc_for_images() noexcept;

}  // namespace pixflow::tasks
