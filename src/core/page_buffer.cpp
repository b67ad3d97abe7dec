#include "core/page_buffer.h"

#include <sys/mman.h>

#include <string>
#include <utility>

#include "core/error.h"

namespace sdpal {

PageBuffer::PageBuffer(size_t bytes) {
  if (bytes == 0) return;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(ErrorCode::kInternal, "out of memory: cannot map " + std::to_string(bytes) + " bytes");
  data_ = static_cast<uint8_t*>(p);  // anonymous mappings start zeroed
  size_ = bytes;
}

PageBuffer::~PageBuffer() {
  if (data_) munmap(data_, size_);
}

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(data_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

}  // namespace sdpal
