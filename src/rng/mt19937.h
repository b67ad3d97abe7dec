// The 32-bit Mersenne Twister (MT19937) with Matsumoto & Nishimura's 2002 `init_genrand` seeding.
// Both torch's CPU generator (at::mt19937) and numpy's legacy RandomState draw from this exact
// engine, so one implementation serves both; its output equals std::mt19937 for the same seed.
#pragma once
#include <array>
#include <cstdint>

namespace sdpal {

class Mt19937 {
 public:
  static constexpr int kStateSize = 624;

  explicit Mt19937(uint32_t seed = 5489u) { seed_with(seed); }

  void seed_with(uint32_t seed);
  // Next tempered 32-bit output.
  uint32_t operator()() {
    if (next_ >= kStateSize) regenerate();
    uint32_t y = state_[next_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }

 private:
  void regenerate();

  std::array<uint32_t, kStateSize> state_{};
  int next_ = kStateSize;
};

}  // namespace sdpal
