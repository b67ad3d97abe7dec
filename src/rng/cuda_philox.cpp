#include "rng/cuda_philox.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/threads.h"

namespace sdpal {
namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;  // key schedule (Weyl) increments

struct Block {
  uint32_t x, y;  // the two outputs Box-Muller uses
};

Block philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kPhiloxM0) * c0;
    const uint64_t p1 = uint64_t(kPhiloxM1) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(p1);
    c3 = uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return {c0, c1};
}

// curand's constants as float32 (CURAND_2POW32_INV and CURAND_2POW32_INV_2PI), used in double here.
const double kTwoPow32Inv = double(2.3283064e-10f);
const double kTwoPow32Inv2Pi = double(float(2.3283064e-10 * 6.2831855));

}  // namespace

void CudaPhiloxGenerator::randn(float* out, int64_t n) {
  check(n >= 0 && n <= int64_t(0xffffffffu), ErrorCode::kInvalidArgument,
        "CUDA-compatible randn: " + std::to_string(n) + " values in one draw (at most 2^32)");
  const uint32_t k0 = uint32_t(seed_), k1 = uint32_t(seed_ >> 32), offset = offset_;
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Block b = philox4x32_10(offset, 0, uint32_t(i), 0, k0, k1);
      const double u = b.x * kTwoPow32Inv + kTwoPow32Inv / 2;
      const double v = b.y * kTwoPow32Inv2Pi + kTwoPow32Inv2Pi / 2;
      out[i] = float(std::sqrt(-2.0 * std::log(u)) * std::sin(v));
    }
  }, 4096);
  ++offset_;
}

Tensor CudaPhiloxGenerator::randn(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  randn(t.f32(), t.numel());
  return t;
}

}  // namespace sdpal
