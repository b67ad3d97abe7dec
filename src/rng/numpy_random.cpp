#include "rng/numpy_random.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace sdpal {

NumpyRandomState::NumpyRandomState(int64_t seed) { this->seed(seed); }

void NumpyRandomState::seed(int64_t seed) {
  check(seed >= 0 && seed <= int64_t(0xffffffff), ErrorCode::kInvalidArgument,
        "numpy RandomState seed must be between 0 and 2**32 - 1, got " + std::to_string(seed));
  engine_.seed_with(uint32_t(seed));
  has_gauss_ = false;
  gauss_ = 0.0;
}

double NumpyRandomState::random_sample() {
  const int32_t a = int32_t(engine_() >> 5);
  const int32_t b = int32_t(engine_() >> 6);
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

double NumpyRandomState::standard_normal() {
  if (has_gauss_) {
    has_gauss_ = false;
    const double cached = gauss_;
    gauss_ = 0.0;
    return cached;
  }
  double x1, x2, r2;
  do {
    x1 = 2.0 * random_sample() - 1.0;
    x2 = 2.0 * random_sample() - 1.0;
    // numpy's build rounds both squares; volatile stops a compiler allowed to contract (GNU mode
    // with FMA hardware) from fusing one of them into the sum.
    const volatile double x1sq = x1 * x1;
    const volatile double x2sq = x2 * x2;
    r2 = x1sq + x2sq;
  } while (r2 >= 1.0 || r2 == 0.0);
  const double f = std::sqrt(-2.0 * std::log(r2) / r2);
  gauss_ = f * x1;
  has_gauss_ = true;
  return f * x2;
}

void NumpyRandomState::randn(double* out, int64_t n) {
  check(n >= 0, ErrorCode::kInvalidArgument, "randn: negative element count " + std::to_string(n));
  for (int64_t i = 0; i < n; ++i) out[i] = standard_normal();
}

void NumpyRandomState::randn(float* out, int64_t n) {
  check(n >= 0, ErrorCode::kInvalidArgument, "randn: negative element count " + std::to_string(n));
  for (int64_t i = 0; i < n; ++i) out[i] = float(standard_normal());
}

Tensor NumpyRandomState::randn(const Shape& shape) {
  for (int64_t d : shape) {
    check(d >= 0, ErrorCode::kInvalidArgument, "randn: negative dimension in shape " + shape_str(shape));
  }
  Tensor t = Tensor::empty(shape, DType::F32);
  randn(t.f32(), t.numel());
  return t;
}

}  // namespace sdpal
