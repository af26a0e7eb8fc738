#pragma once
// Internal: the clock that times stage bodies.
//
// Two reads per body of steady_clock::now() cost more than a trivial body (on a VM, kvm-clock goes
// through the vDSO with a pvclock read each time). Where the CPU's time-stamp counter ticks at one
// constant rate on every core and in every power state (x86-64 with an invariant TSC), a body is
// timed with `rdtsc` instead, and ticks become seconds by a rate measured against steady_clock over
// the life of the graph (from construction to each report). Elsewhere the ticks are steady_clock
// nanoseconds.
#include <chrono>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <x86intrin.h>
#define PIXFLOW_BODY_CLOCK_TSC 1
#endif

namespace pixflow::detail {

class BodyClock {
 public:
  using ticks = std::uint64_t;
  using steady = std::chrono::steady_clock;

  /// Uses the TSC if `allow_tsc` and the CPU has an invariant one.
  explicit BodyClock(bool allow_tsc = true) noexcept
      : tsc_(allow_tsc && has_invariant_tsc()), start_ticks_(now()), start_time_(steady::now()) {}

  /// The time now, in ticks.
  [[nodiscard]] ticks now() const noexcept {
#ifdef PIXFLOW_BODY_CLOCK_TSC
    if (tsc_) return __rdtsc();
#endif
    return static_cast<ticks>(std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count());
  }
  /// The ticks from `started` to `ended`, 0 if the counter went backwards (a body that ended on
  /// another core than it started on, if their counters were ever out of step).
  [[nodiscard]] static ticks between(ticks started, ticks ended) noexcept { return ended > started ? ended - started : 0; }

  /// Seconds per tick: measured against steady_clock since construction for the TSC.
  [[nodiscard]] double seconds_per_tick() const noexcept {
    if (!tsc_) return 1e-9;
    const ticks elapsed = between(start_ticks_, now());
    const double seconds = std::chrono::duration<double>(steady::now() - start_time_).count();
    // Too short an interval to measure: bodies within it are too short to matter; assume 1 GHz.
    if (elapsed < 100'000 || seconds <= 0) return 1e-9;
    return seconds / static_cast<double>(elapsed);
  }
  [[nodiscard]] bool uses_tsc() const noexcept { return tsc_; }

  /// Whether the CPU has a TSC of constant rate that does not stop in deep C-states (CPUID
  /// 0x80000007, EDX bit 8; Linux shows it as `constant_tsc nonstop_tsc`).
  static bool has_invariant_tsc() noexcept {
#ifdef PIXFLOW_BODY_CLOCK_TSC
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) == 0 || eax < 0x80000007u) return false;
    if (__get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx) == 0) return false;
    return (edx & (1u << 8)) != 0;
#else
    return false;
#endif
  }

 private:
  bool tsc_;
  ticks start_ticks_;
  steady::time_point start_time_;
};

}  // namespace pixflow::detail
