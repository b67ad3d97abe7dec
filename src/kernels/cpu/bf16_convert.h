// fp32 -> bfloat16 conversion of activations at the input of the bf16 kernels (round to nearest
// even, as torch and oneDNN's reorder do). Internal to src/kernels/cpu.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/scratch.h"

namespace sdpal::cpu {

// dst[i] = bf16(src[i]) for i < n, on all threads (one pass, memory-bound). Uses VCVTNEPS2BF16 on
// AVX512-BF16 CPUs, which treats denormal inputs as zero; the scalar path keeps them (both round
// normal numbers identically).
void f32_to_bf16_parallel(const float* src, uint16_t* dst, int64_t n);

// Same, on the calling thread only.
void f32_to_bf16_serial(const float* src, uint16_t* dst, int64_t n);

// A growable, 64-byte-aligned scratch of bfloat16 values (declare it thread_local).
class Bf16Scratch {
 public:
  uint16_t* get(size_t n) { return reinterpret_cast<uint16_t*>(buf_.get((n + 1) / 2)); }

 private:
  ScratchBuffer buf_;
};

}  // namespace sdpal::cpu
