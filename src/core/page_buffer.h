// Long-lived, large buffers (weights prepared in a kernel's layout) taken straight from the kernel with
// mmap, never from the heap.
//
// Networks prepare their weights during their first forward, while that forward also allocates and
// frees activations. From the heap, the two interleave: when the activations are freed, the holes
// between weight blocks stay in the resident set (270 MB of the 6-bit SD v1.4 UNet's 1.09 GB after
// one step, measured with mallinfo2). Mapped pages of their own keep the heap for short-lived data,
// and go back to the system the moment a released network drops them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sdpal {

class PageBuffer {
 public:
  PageBuffer() = default;
  // `bytes` zero-filled bytes, page-aligned (a kInternal error if the system refuses).
  explicit PageBuffer(size_t bytes);
  ~PageBuffer();
  PageBuffer(PageBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  PageBuffer& operator=(PageBuffer&& o) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sdpal
