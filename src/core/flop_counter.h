// Counts floating-point operations done by the GEMM-like kernels (2 per multiply-add), so
// benchmarks report achieved GFLOP/s from what actually ran.
#pragma once
#include <atomic>
#include <cstdint>

namespace sdpal {

inline std::atomic<int64_t>& flop_counter() {
  static std::atomic<int64_t> counter{0};
  return counter;
}
inline void count_flops(int64_t n) { flop_counter().fetch_add(n, std::memory_order_relaxed); }

}  // namespace sdpal
