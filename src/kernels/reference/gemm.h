// Naive, obviously-correct linear layer and convolution (double accumulation) that the oneDNN
// kernels are tested against. Slow by design; for tests only.
#pragma once
#include <cstdint>

namespace sdpal::ref {

// y[m, n] = sum_k x[m, k] w[n, k] + bias[n] + residual[m, n]; bias, residual may be nullptr.
void linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias,
            const float* residual, float* y);

struct ConvParams {
  int64_t n = 1, h = 0, w = 0, cin = 0;  // input [n, h, w, cin] (NHWC)
  int64_t cout = 0, kh = 1, kw = 1;      // weight [cout, cin, kh, kw] (torch's OIHW)
  int stride = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t out_h() const { return (h + pad_top + pad_bottom - kh) / stride + 1; }
  int64_t out_w() const { return (w + pad_left + pad_right - kw) / stride + 1; }
};

// out: [n, out_h, out_w, cout] (NHWC); bias, residual (output-shaped) may be nullptr.
void conv2d(const ConvParams& p, const float* x, const float* weight, const float* bias, const float* residual,
            float* out);

}  // namespace sdpal::ref
