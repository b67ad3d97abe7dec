// A growable, 64-byte-aligned float buffer for per-thread scratch space (declare it thread_local):
// kernels reuse it across calls instead of allocating per call. Internal to src/kernels/cpu.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>

#include "core/error.h"

namespace sdpal::cpu {

class ScratchBuffer {
 public:
  // At least n floats; contents are unspecified. Invalidates earlier pointers when it grows.
  float* get(size_t n) {
    if (n > size_) {
      size_t bytes = (n * sizeof(float) + 4095) / 4096 * 4096;
      void* p = std::aligned_alloc(64, bytes);
      if (!p) fail(ErrorCode::kInternal, "out of memory allocating kernel scratch space");
      data_.reset(static_cast<float*>(p));
      size_ = bytes / sizeof(float);
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  size_t size_ = 0;
};

}  // namespace sdpal::cpu
