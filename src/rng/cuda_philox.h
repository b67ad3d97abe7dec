// torch.randn on a CUDA device, reproduced on the CPU: what a diffusers user on an NVIDIA GPU gets from
// torch.Generator("cuda").manual_seed(seed), and Apple's `nvidia` random source (NvRandomSource in
// ml-stable-diffusion), which imitates it.
//
// torch's CUDA generator is Philox4x32-10 (curand's constants); for the tensor sizes of SD latents,
// element i of one randn call is the first Box-Muller value of the block
//   Philox(counter = (offset, 0, i, 0), key = (seed low 32 bits, seed high 32 bits)) -> (x, y, _, _)
//   u = x * 2^-32 + 2^-33,  v = (y * 2^-32 + 2^-33) * 2 pi,  value = sqrt(-2 ln u) * sin(v)
// and each call advances the offset by one. The GPU computes in float with its own transcendental
// functions, so values agree to about 4e-6 (tests/goldens/rng/cuda_randn.*, made on an H100), not
// bitwise; that is far below what changes a picture.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace sdpal {

class CudaPhiloxGenerator {
 public:
  explicit CudaPhiloxGenerator(uint64_t seed) : seed_(seed) {}

  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t initial_seed() const { return seed_; }
  uint32_t offset() const { return offset_; }

  // Fills out[0..n) as one torch.randn(n) call on the GPU would, then advances the offset.
  void randn(float* out, int64_t n);
  // A float32 tensor of `shape` in torch's row-major order (NCHW for latents).
  Tensor randn(const Shape& shape);

 private:
  uint64_t seed_;
  uint32_t offset_ = 0;
};

}  // namespace sdpal
