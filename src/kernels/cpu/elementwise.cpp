#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/threads.h"
#include "kernels/cpu/vec_math.h"

namespace sdpal::cpu {
namespace {

constexpr int64_t kGrain = 16384;  // elements per parallel chunk: big enough to amortize the fork

// Each unary activation compiled twice: for AVX-512 and for the baseline ISA.
#define SDPAL_UNARY_KERNEL(name, fn)                                                  \
  SDPAL_TARGET_AVX512 void name##_avx512(float* x, int64_t n) {                       \
    for (int64_t i = 0; i < n; ++i) x[i] = fn(x[i]);                                  \
  }                                                                                   \
  void name##_generic(float* x, int64_t n) {                                          \
    for (int64_t i = 0; i < n; ++i) x[i] = fn(x[i]);                                  \
  }                                                                                   \
  void name##_dispatch(float* x, int64_t n) {                                         \
    auto* f = cpu_features().avx512_core() ? name##_avx512 : name##_generic;          \
    parallel_for(n, [&](int64_t lo, int64_t hi) { f(x + lo, hi - lo); }, kGrain);     \
  }

SDPAL_UNARY_KERNEL(silu, vm::silu_f32)
SDPAL_UNARY_KERNEL(gelu, vm::gelu_f32)
SDPAL_UNARY_KERNEL(quick_gelu, vm::quick_gelu_f32)

#undef SDPAL_UNARY_KERNEL

SDPAL_INLINE void geglu_body(const float* x, float* out, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* h = x + r * 2 * d;
    const float* gate = h + d;
    float* o = out + r * d;
    for (int64_t j = 0; j < d; ++j) o[j] = h[j] * vm::gelu_f32(gate[j]);
  }
}
SDPAL_TARGET_AVX512 void geglu_avx512(const float* x, float* out, int64_t rows, int64_t d) {
  geglu_body(x, out, rows, d);
}
void geglu_generic(const float* x, float* out, int64_t rows, int64_t d) { geglu_body(x, out, rows, d); }

}  // namespace

void silu(float* x, int64_t n) { silu_dispatch(x, n); }
void gelu(float* x, int64_t n) { gelu_dispatch(x, n); }
void quick_gelu(float* x, int64_t n) { quick_gelu_dispatch(x, n); }

void geglu(const float* x, float* out, int64_t rows, int64_t d) {
  auto* f = cpu_features().avx512_core() ? geglu_avx512 : geglu_generic;
  const int64_t grain = d > 0 ? std::max<int64_t>(1, kGrain / d) : 1;
  parallel_for(rows, [&](int64_t lo, int64_t hi) { f(x + lo * 2 * d, out + lo * d, hi - lo, d); }, grain);
}

void add(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = a[i] + b[i];
  }, kGrain);
}

void scale(float* x, float s, int64_t n) {
  parallel_for(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) x[i] *= s;
  }, kGrain);
}

void upsample_nearest2x(const float* x, float* out, int64_t n, int64_t h, int64_t w, int64_t c) {
  const size_t row_bytes = size_t(c) * sizeof(float);
  parallel_for(n * h, [&](int64_t lo, int64_t hi) {
    for (int64_t nh = lo; nh < hi; ++nh) {
      const float* src = x + nh * w * c;
      float* dst0 = out + nh * 2 * (2 * w) * c;  // output rows 2y and 2y+1 of image n
      float* dst1 = dst0 + 2 * w * c;
      for (int64_t xx = 0; xx < w; ++xx) {
        std::memcpy(dst0 + (2 * xx) * c, src + xx * c, row_bytes);
        std::memcpy(dst0 + (2 * xx + 1) * c, src + xx * c, row_bytes);
      }
      std::memcpy(dst1, dst0, row_bytes * size_t(2 * w));
    }
  }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, 4 * w * c)));
}

}  // namespace sdpal::cpu
