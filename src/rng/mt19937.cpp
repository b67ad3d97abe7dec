#include "rng/mt19937.h"

namespace sdpal {

namespace {
constexpr int kShift = 397;  // MT19937's "M": the partner word of each twist
constexpr uint32_t kMatrixA = 0x9908b0dfu;

inline uint32_t twist(uint32_t cur, uint32_t next, uint32_t far) {
  uint32_t y = (cur & 0x80000000u) | (next & 0x7fffffffu);
  return far ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
}
}  // namespace

void Mt19937::seed_with(uint32_t seed) {
  state_[0] = seed;
  for (int i = 1; i < kStateSize; ++i) {
    uint32_t prev = state_[i - 1];
    state_[i] = 1812433253u * (prev ^ (prev >> 30)) + uint32_t(i);
  }
  next_ = kStateSize;  // the first draw regenerates the whole block
}

void Mt19937::regenerate() {
  for (int i = 0; i < kStateSize; ++i) {
    state_[i] = twist(state_[i], state_[(i + 1) % kStateSize], state_[(i + kShift) % kStateSize]);
  }
  next_ = 0;
}

}  // namespace sdpal
