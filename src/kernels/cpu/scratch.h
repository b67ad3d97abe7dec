// A growable, 64-byte-aligned float buffer for per-thread scratch space (declare it thread_local, never
// as a member: it registers with the thread that constructs it):
// kernels reuse it across calls instead of allocating per call. Internal to src/kernels/cpu.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/error.h"

namespace sdpal::cpu {

class ScratchBuffer {
 public:
  ScratchBuffer() { thread_buffers().push_back(this); }
  ~ScratchBuffer() {
    auto& all = thread_buffers();
    all.erase(std::remove(all.begin(), all.end(), this), all.end());
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  // Frees every scratch buffer of the calling thread (they regrow on next use). Safe only between
  // kernel calls of this thread, e.g. when a pipeline stage is over; other threads' buffers are untouched.
  static void release_thread_buffers() {
    for (ScratchBuffer* b : thread_buffers()) {
      b->data_.reset();
      b->size_ = 0;
    }
  }

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
  // This thread's buffers; constructed before (so destroyed after) the thread_local buffers that register.
  static std::vector<ScratchBuffer*>& thread_buffers() {
    thread_local std::vector<ScratchBuffer*> buffers;
    return buffers;
  }

  std::unique_ptr<float, Free> data_;
  size_t size_ = 0;
};

}  // namespace sdpal::cpu
