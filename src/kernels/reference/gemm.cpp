#include "kernels/reference/gemm.h"

namespace sdpal::ref {

void linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias,
            const float* residual, float* y) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = bias ? bias[j] : 0.0;
      for (int64_t e = 0; e < k; ++e) acc += double(x[i * k + e]) * double(w[j * k + e]);
      if (residual) acc += residual[i * n + j];
      y[i * n + j] = float(acc);
    }
}

void conv2d(const ConvParams& p, const float* x, const float* weight, const float* bias, const float* residual,
            float* out) {
  const int64_t oh = p.out_h(), ow = p.out_w();
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t o = 0; o < p.cout; ++o) {
          double acc = bias ? bias[o] : 0.0;
          for (int64_t ky = 0; ky < p.kh; ++ky) {
            const int64_t iy = oy * p.stride + ky - p.pad_top;  // zero padding: skip outside taps
            if (iy < 0 || iy >= p.h) continue;
            for (int64_t kx = 0; kx < p.kw; ++kx) {
              const int64_t ix = ox * p.stride + kx - p.pad_left;
              if (ix < 0 || ix >= p.w) continue;
              const float* px = x + ((b * p.h + iy) * p.w + ix) * p.cin;
              for (int64_t i = 0; i < p.cin; ++i)
                acc += double(px[i]) * double(weight[((o * p.cin + i) * p.kh + ky) * p.kw + kx]);
            }
          }
          const int64_t idx = ((b * oh + oy) * ow + ox) * p.cout + o;
          if (residual) acc += residual[idx];
          out[idx] = float(acc);
        }
}

}  // namespace sdpal::ref
