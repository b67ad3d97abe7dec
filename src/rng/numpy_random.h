// numpy.random.RandomState(seed) (the legacy generator), for pipelines whose reference noise comes
// from numpy, e.g. Apple's Core ML Stable Diffusion.
//
// Seeding is init_genrand(seed) for 0 <= seed < 2^32 (numpy rejects anything else).
// randn/standard_normal use the legacy polar Box-Muller ("gauss"): draw x1, x2 uniform in
// (-1, 1) from 53-bit doubles until 0 < r2 = x1^2 + x2^2 < 1, return x2 * f and cache x1 * f
// with f = sqrt(-2 log(r2) / r2); the cache survives across calls and is cleared by seeding.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "rng/mt19937.h"

namespace sdpal {

class NumpyRandomState {
 public:
  explicit NumpyRandomState(int64_t seed);

  void seed(int64_t seed);

  uint32_t random_uint32() { return engine_(); }
  double random_sample();    // legacy double in [0, 1): (a >> 5) * 2^26 + (b >> 6), over 2^53
  double standard_normal();  // one legacy gauss value

  // n values of randn(*shape) in row-major order: float64 as numpy returns them ...
  void randn(double* out, int64_t n);
  // ... or those float64 values rounded to float32 (numpy's .astype(np.float32)).
  void randn(float* out, int64_t n);
  Tensor randn(const Shape& shape);  // F32

 private:
  Mt19937 engine_;
  bool has_gauss_ = false;
  double gauss_ = 0.0;
};

}  // namespace sdpal
