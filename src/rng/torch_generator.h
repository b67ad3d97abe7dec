// torch.Generator() on the CPU (torch 2.5.1): mt19937 plus torch's normal samplers, bit-exact.
//
// Seeding: manual_seed keeps the 64-bit seed but the engine only sees its low 32 bits
// (init_genrand(seed & 0xffffffff)); a negative Python seed arrives as its two's complement,
// so pass uint64_t(int64_t(s)). Seeding also drops the cached Box-Muller sample.
//
// torch.randn(n) (float32, contiguous) takes one of two routes:
//   n >= 16: n uniforms u = (random() & 0xffffff) * 2^-24 are drawn first, then each block of 16
//            becomes 16 normals by Box-Muller: u1 = 1 - u[j], u2 = u[j+8] (j < 8) give
//            r*cos -> out[j], r*sin -> out[j+8]. If 16 does not divide n, 16 fresh uniforms are
//            drawn for the LAST 16 slots, which are recomputed. The log/sin/cos are
//              RandnPath::Avx2   - Cephes float code of avx_mathfun.h, with GCC's FMAs. This is
//                                  what torch runs on every x86-64 with AVX2 (AVX512 CPUs too).
//              RandnPath::Scalar - std::log/cos/sin in float (torch's normal_fill, used on CPUs
//                                  without AVX2 and on ARM). Exact only against the same libm
//                                  (glibc here); the Avx2 path has no libm dependency.
//   n < 16:  one double Box-Muller sample per element from two random64() uniforms (53 bits),
//            caching the sine half in the generator for the next small draw (both paths).
#pragma once
#include <cstdint>
#include <optional>

#include "core/tensor.h"
#include "rng/mt19937.h"

namespace sdpal {

enum class RandnPath { Avx2, Scalar };

class TorchGenerator {
 public:
  explicit TorchGenerator(uint64_t seed);

  void manual_seed(uint64_t seed);
  uint64_t initial_seed() const { return seed_; }

  // Fills out[0..n) as torch.randn(n) would (only numel matters, not the shape), advancing the state.
  void randn(float* out, int64_t n, RandnPath path = RandnPath::Avx2);
  // A float32 tensor of `shape`, filled in torch's row-major order (NCHW for latents).
  Tensor randn(const Shape& shape, RandnPath path = RandnPath::Avx2);

  // Raw draws: random() is one engine output; random64() joins two, the first in the high half.
  uint32_t random() { return engine_(); }
  uint64_t random64();

 private:
  float uniform_float();    // [0, 1) with 24 random bits
  double uniform_double();  // [0, 1) with 53 random bits
  float normal_small();     // torch's at::normal_distribution<double>, cast to float
  void uniform_fill(float* out, int64_t n);

  Mt19937 engine_;
  uint64_t seed_ = 0;
  std::optional<double> next_double_normal_;
};

}  // namespace sdpal
