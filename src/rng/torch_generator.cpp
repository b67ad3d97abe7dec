#include "rng/torch_generator.h"

#include <cmath>
#include <numbers>
#include <string>

#include "core/error.h"
#include "rng/cephes_avx.h"

namespace sdpal {

namespace {

constexpr int64_t kBlock = 16;  // normals per Box-Muller block: 8 radii x (cos, sin)
constexpr int kHalf = 8;

// normal_fill_16_AVX2: avx_mathfun's log and sincos, 2*pi rounded to float.
void box_muller16_avx2(float* data) {
  constexpr float two_pi = float(2.0f * std::numbers::pi);
  for (int j = 0; j < kHalf; ++j) {
    const float u1 = 1.0f - data[j];  // [0, 1) -> (0, 1] for the log
    const float u2 = data[j + kHalf];
    const float log_u1 = cephes_avx::log(u1);
    const float radius = std::sqrt(-2.0f * log_u1);
    const float theta = two_pi * u2;
    float s, c;
    cephes_avx::sincos(theta, &s, &c);
    data[j] = radius * c;  // torch then fmadd's with std = 1, mean = 0: no change
    data[j + kHalf] = radius * s;
  }
}

// normal_fill_16<float>: libm float functions; theta is computed in double and rounded to float.
void box_muller16_scalar(float* data) {
  for (int j = 0; j < kHalf; ++j) {
    const float u1 = 1.0f - data[j];
    const float u2 = data[j + kHalf];
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float theta = float(2.0 * std::numbers::pi * double(u2));
    data[j] = radius * std::cos(theta);
    data[j + kHalf] = radius * std::sin(theta);
  }
}

}  // namespace

TorchGenerator::TorchGenerator(uint64_t seed) { manual_seed(seed); }

void TorchGenerator::manual_seed(uint64_t seed) {
  seed_ = seed;
  engine_.seed_with(uint32_t(seed & 0xffffffffu));
  next_double_normal_.reset();
}

uint64_t TorchGenerator::random64() {
  const uint64_t hi = engine_();
  const uint64_t lo = engine_();
  return (hi << 32) | lo;
}

float TorchGenerator::uniform_float() {
  // Exact: a 24-bit integer times 2^-24.
  return float(random() & 0xffffffu) * (1.0f / 16777216.0f);
}

double TorchGenerator::uniform_double() {
  return double(random64() & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

float TorchGenerator::normal_small() {
  if (next_double_normal_) {
    const double cached = *next_double_normal_;
    next_double_normal_.reset();
    return float(cached);
  }
  const double u1 = uniform_double();
  const double u2 = uniform_double();
  const double r = std::sqrt(-2.0 * std::log1p(-u2));
  const double theta = 2.0 * std::numbers::pi * u1;
  next_double_normal_ = r * std::sin(theta);
  return float(r * std::cos(theta));
}

void TorchGenerator::uniform_fill(float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = uniform_float();
}

void TorchGenerator::randn(float* out, int64_t n, RandnPath path) {
  check(n >= 0, ErrorCode::kInvalidArgument, "randn: negative element count " + std::to_string(n));
  if (n < kBlock) {
    for (int64_t i = 0; i < n; ++i) out[i] = normal_small();
    return;
  }
  auto block = path == RandnPath::Avx2 ? box_muller16_avx2 : box_muller16_scalar;
  uniform_fill(out, n);
  for (int64_t i = 0; i + kBlock <= n; i += kBlock) block(out + i);
  if (n % kBlock != 0) {
    float* tail = out + n - kBlock;  // overlaps the last full block, which is overwritten
    uniform_fill(tail, kBlock);
    block(tail);
  }
}

Tensor TorchGenerator::randn(const Shape& shape, RandnPath path) {
  for (int64_t d : shape) {
    check(d >= 0, ErrorCode::kInvalidArgument, "randn: negative dimension in shape " + shape_str(shape));
  }
  Tensor t = Tensor::empty(shape, DType::F32);
  randn(t.f32(), t.numel(), path);
  return t;
}

}  // namespace sdpal
