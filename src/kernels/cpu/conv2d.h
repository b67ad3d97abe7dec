// 2-D convolution on NHWC activations, stride 1 or 2, any kernel size, symmetric or explicit
// (asymmetric) zero padding. Weights ([O, I, kh, kw] as torch stores them, any float dtype) are
// converted and reordered once into the layout the convolution wants.
// Precision::BF16 (see core/precision.h): weights kept in bf16 (half the memory), the input rounded
// to bf16 on the way in (one parallel pass into per-thread scratch), fp32 accumulation, bias and
// residual added in fp32, fp32 NHWC output; oneDNN runs it on AMX-BF16. The interface stays fp32
// in both modes. BF16 on a CPU without native bf16 is a kUnsupported error.
// Large bf16 inputs (stride 1) run in bands of output rows, so the bf16 copy of the input is a few MB
// instead of the whole tensor; run_upsampled2x fuses a nearest 2x upsample into that band copy.
// A palettized weight (TensorView::palettized) stays packed, as in cpu::Linear: re-packed in the
// blocked layout's order at the first run, then decoded at each run straight into per-thread scratch
// in that layout (equal results to a dense source); weight_bytes() is the packed size.
#pragma once
#include <cstdint>
#include <memory>

#include "core/precision.h"
#include "core/tensor.h"
#include "io/tensor_file.h"

namespace sdpal::cpu {

// Zero padding added to each side of the input, in pixels.
struct Padding2d {
  int top = 0, bottom = 0, left = 0, right = 0;
};

class Conv2d {
 public:
  // Symmetric padding on all four sides (torch's Conv2d(padding=p)).
  Conv2d(const TensorView& weight, const TensorView* bias, int stride, int padding,
         Precision precision = Precision::F32);
  // Explicit padding, e.g. the VAE encoder's downsample: F.pad(x, (0, 1, 0, 1)) then a padding-0 conv
  // is Padding2d{.top = 0, .bottom = 1, .left = 0, .right = 1}.
  Conv2d(const TensorView& weight, const TensorView* bias, int stride, Padding2d padding,
         Precision precision = Precision::F32);
  ~Conv2d();
  Conv2d(Conv2d&&) noexcept;
  Conv2d& operator=(Conv2d&&) noexcept;

  int64_t in_channels() const;
  int64_t out_channels() const;
  int kernel_size() const;  // kh (kernels are square in SD; kw is kernel_width())
  int kernel_width() const;
  int stride() const;
  Padding2d padding() const;
  Precision precision() const;
  // Bytes held by the weights: the plain copy before the first run, then the reordered layouts.
  size_t weight_bytes() const;
  // Output spatial size for an input of h x w.
  int64_t out_height(int64_t h) const;
  int64_t out_width(int64_t w) const;

  // x: [N, H, W, Cin]; returns [N, Ho, Wo, Cout]. residual (same shape as the output) is added
  // after the bias when given.
  Tensor run(const Tensor& x, const Tensor* residual = nullptr) const;
  // Raw form: x [n, h, w, Cin] contiguous, out [n, Ho, Wo, Cout]; residual may alias out.
  // Thread safety as Linear::run: concurrent calls are safe.
  void run(const float* x, int64_t n, int64_t h, int64_t w, float* out, const float* residual = nullptr) const;

  // Nearest 2x upsample of x ([N, H, W, Cin]) followed by this convolution: [N, Ho(2H), Wo(2W), Cout].
  // In bf16 with stride 1 the upsampled input is never materialized (see run_banded).
  Tensor run_upsampled2x(const Tensor& x) const;

  // Number of distinct oneDNN primitives built so far (one per input shape and residual mode).
  int64_t cached_plans() const;

 private:
  // bf16 convolutions of large inputs run in bands of output rows (0: not banded).
  int64_t banded_rows(int64_t n, int64_t h, int64_t w, bool up) const;
  void run_banded(const float* x, int64_t n, int64_t h, int64_t w, bool up, int64_t rows, float* out,
                  const float* residual) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdpal::cpu
