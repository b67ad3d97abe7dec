#include "kernels/cpu/norms.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/threads.h"
#include "kernels/cpu/vec_math.h"

namespace sdpal::cpu {
namespace {

// Per-channel sums of (x - shift) and (x - shift)^2 over `len` pixels of [len, c] data, added into
// s1, s2. The shift (the first pixel) keeps the one-pass variance free of cancellation.
SDPAL_INLINE void channel_sums_body(const float* x, int64_t len, int64_t c, const float* shift, double* s1,
                                    double* s2) {
  for (int64_t p = 0; p < len; ++p) {
    const float* row = x + p * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      double dv = double(row[ch]) - double(shift[ch]);
      s1[ch] += dv;
      s2[ch] += dv * dv;
    }
  }
}
SDPAL_TARGET_AVX512 void channel_sums_avx512(const float* x, int64_t len, int64_t c, const float* shift, double* s1,
                                             double* s2) {
  channel_sums_body(x, len, c, shift, s1, s2);
}
void channel_sums_generic(const float* x, int64_t len, int64_t c, const float* shift, double* s1, double* s2) {
  channel_sums_body(x, len, c, shift, s1, s2);
}

// out[p, ch] = (x[p, ch] - mean[ch]) * a[ch] + b[ch], then SiLU if asked. Subtracting the mean first
// (rather than torch's x * a + (b - mean * a)) avoids cancellation when |mean| >> std.
SDPAL_INLINE void affine_body(const float* x, float* out, int64_t len, int64_t c, const float* mean, const float* a,
                              const float* b, bool silu) {
  for (int64_t p = 0; p < len; ++p) {
    const float* xr = x + p * c;
    float* orow = out + p * c;
    if (silu) {
      for (int64_t ch = 0; ch < c; ++ch) orow[ch] = vm::silu_f32((xr[ch] - mean[ch]) * a[ch] + b[ch]);
    } else {
      for (int64_t ch = 0; ch < c; ++ch) orow[ch] = (xr[ch] - mean[ch]) * a[ch] + b[ch];
    }
  }
}
SDPAL_TARGET_AVX512 void affine_avx512(const float* x, float* out, int64_t len, int64_t c, const float* mean,
                                       const float* a, const float* b, bool silu) {
  affine_body(x, out, len, c, mean, a, b, silu);
}
void affine_generic(const float* x, float* out, int64_t len, int64_t c, const float* mean, const float* a,
                    const float* b, bool silu) {
  affine_body(x, out, len, c, mean, a, b, silu);
}

// One layer-norm row: two-pass mean / variance in double, output in float.
SDPAL_INLINE void layer_norm_row_body(const float* x, float* out, int64_t c, const float* gamma, const float* beta,
                                      float eps) {
  // 16 independent partial sums: a vectorizable pattern (a single double accumulator is a serial
  // dependency chain, since the compiler may not reassociate).
  double acc[16] = {};
  int64_t i0 = 0;
  for (; i0 + 16 <= c; i0 += 16)
    for (int j = 0; j < 16; ++j) acc[j] += double(x[i0 + j]);
  for (int64_t i = i0; i < c; ++i) acc[i - i0] += double(x[i]);
  double sum = 0;
  for (int j = 0; j < 16; ++j) sum += acc[j];
  const double mean = sum / double(c);
  for (int j = 0; j < 16; ++j) acc[j] = 0;
  for (i0 = 0; i0 + 16 <= c; i0 += 16)
    for (int j = 0; j < 16; ++j) {
      double dv = double(x[i0 + j]) - mean;
      acc[j] += dv * dv;
    }
  for (int64_t i = i0; i < c; ++i) {
    double dv = double(x[i]) - mean;
    acc[i - i0] += dv * dv;
  }
  double m2 = 0;
  for (int j = 0; j < 16; ++j) m2 += acc[j];
  const float rstd = float(1.0 / std::sqrt(m2 / double(c) + double(eps)));
  // x - meanf is exact for x near the mean; dmean carries the mean's float rounding error.
  const float meanf = float(mean);
  const float dmean = float(mean - double(meanf));
  if (gamma && beta) {
    for (int64_t i = 0; i < c; ++i) out[i] = ((x[i] - meanf) - dmean) * rstd * gamma[i] + beta[i];
  } else {
    for (int64_t i = 0; i < c; ++i) {
      float y = ((x[i] - meanf) - dmean) * rstd;
      if (gamma) y *= gamma[i];
      if (beta) y += beta[i];
      out[i] = y;
    }
  }
}
SDPAL_TARGET_AVX512 void layer_norm_rows_avx512(const float* x, float* out, int64_t rows, int64_t c,
                                                const float* gamma, const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) layer_norm_row_body(x + r * c, out + r * c, c, gamma, beta, eps);
}
void layer_norm_rows_generic(const float* x, float* out, int64_t rows, int64_t c, const float* gamma,
                             const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) layer_norm_row_body(x + r * c, out + r * c, c, gamma, beta, eps);
}

}  // namespace

void group_norm(const float* x, float* out, int64_t n, int64_t hw, int64_t c, int64_t groups, const float* gamma,
                const float* beta, float eps, bool silu) {
  check(n >= 0 && hw >= 1 && c >= 1 && groups >= 1 && c % groups == 0, ErrorCode::kInvalidArgument,
        "group_norm: " + std::to_string(c) + " channels cannot be split into " + std::to_string(groups) + " groups");
  if (n == 0) return;
  const bool fast = cpu_features().avx512_core();
  const int64_t cg = c / groups;

  // Pass 1: per-channel shifted sums over chunks of pixels (so one large image still uses every thread).
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>((hw + 255) / 256, 4 * num_threads()));
  const int64_t chunk_len = (hw + chunks - 1) / chunks;
  std::vector<double> partial(size_t(n * chunks * 2 * c), 0.0);
  parallel_for(n * chunks, [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t b = item / chunks, ch = item % chunks;
      const int64_t p0 = ch * chunk_len, len = std::min(hw, p0 + chunk_len) - p0;
      if (len <= 0) continue;
      const float* img = x + b * hw * c;
      double* s1 = partial.data() + item * 2 * c;
      (fast ? channel_sums_avx512 : channel_sums_generic)(img + p0 * c, len, c, img, s1, s1 + c);
    }
  });

  // Combine: channel means and M2, then per group (equal counts) mean and M2 by Chan's formula.
  std::vector<float> mvec(size_t(n * c)), a(size_t(n * c)), bvec(size_t(n * c));
  std::vector<double> mean_c(static_cast<size_t>(c)), m2_c(static_cast<size_t>(c));
  for (int64_t b = 0; b < n; ++b) {
    const float* shift = x + b * hw * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      double s1 = 0, s2 = 0;
      for (int64_t k = 0; k < chunks; ++k) {
        const double* part = partial.data() + (b * chunks + k) * 2 * c;
        s1 += part[ch];
        s2 += part[c + ch];
      }
      mean_c[ch] = double(shift[ch]) + s1 / double(hw);
      m2_c[ch] = std::max(0.0, s2 - s1 * s1 / double(hw));
    }
    for (int64_t g = 0; g < groups; ++g) {
      double mean = 0;
      for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) mean += mean_c[ch];
      mean /= double(cg);
      double m2 = 0;
      for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
        double dm = mean_c[ch] - mean;
        m2 += m2_c[ch] + double(hw) * dm * dm;
      }
      const double rstd = 1.0 / std::sqrt(m2 / double(hw * cg) + double(eps));
      for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
        const double scale = rstd * (gamma ? double(gamma[ch]) : 1.0);
        // The mean's float rounding error goes into b, so that it costs no precision when |mean| >> std.
        const float meanf = float(mean);
        mvec[size_t(b * c + ch)] = meanf;
        a[size_t(b * c + ch)] = float(scale);
        bvec[size_t(b * c + ch)] = float((beta ? double(beta[ch]) : 0.0) - (mean - double(meanf)) * scale);
      }
    }
  }

  // Pass 2: y = (x - mean) * a + beta (+ SiLU).
  const int64_t rows_per_item = std::max<int64_t>(1, 16384 / c);
  const int64_t items_per_image = (hw + rows_per_item - 1) / rows_per_item;
  parallel_for(n * items_per_image, [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t b = item / items_per_image, p0 = (item % items_per_image) * rows_per_item;
      const int64_t len = std::min(hw, p0 + rows_per_item) - p0;
      const int64_t off = (b * hw + p0) * c;
      (fast ? affine_avx512 : affine_generic)(x + off, out + off, len, c, mvec.data() + b * c, a.data() + b * c,
                                              bvec.data() + b * c, silu);
    }
  });
}

void layer_norm(const float* x, float* out, int64_t rows, int64_t c, const float* gamma, const float* beta,
                float eps) {
  check(rows >= 0 && c >= 1, ErrorCode::kInvalidArgument, "layer_norm: invalid shape");
  const bool fast = cpu_features().avx512_core();
  const int64_t grain = std::max<int64_t>(1, 8192 / c);
  parallel_for(rows, [&](int64_t lo, int64_t hi) {
    (fast ? layer_norm_rows_avx512 : layer_norm_rows_generic)(x + lo * c, out + lo * c, hi - lo, c, gamma, beta,
                                                              eps);
  }, grain);
}

}  // namespace sdpal::cpu
