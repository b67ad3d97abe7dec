// 2-D convolution on NHWC activations with square kernels, symmetric padding, stride 1 or 2.
// Weights ([O, I, kh, kw] as torch stores them) are reordered once into the kernel's layout.
#pragma once
#include <cstdint>
#include <memory>

#include "core/tensor.h"
#include "io/tensor_file.h"

namespace sdpal::cpu {

class Conv2d {
 public:
  Conv2d(const TensorView& weight, const TensorView* bias, int stride, int padding);
  ~Conv2d();
  Conv2d(Conv2d&&) noexcept;
  Conv2d& operator=(Conv2d&&) noexcept;

  int64_t in_channels() const;
  int64_t out_channels() const;
  int kernel_size() const;
  // x: [N, H, W, Cin]; returns [N, Ho, Wo, Cout]. residual (same shape as the output) is added
  // after the bias when given.
  Tensor run(const Tensor& x, const Tensor* residual = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdpal::cpu
