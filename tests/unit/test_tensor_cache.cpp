// core/tensor_cache: large tensor storage is reused best-fit, bounded, and given back on release.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/tensor_cache.h"

namespace sdpal {
namespace {

TEST(TensorCache, SmallTensorsUseTheHeap) {
  size_t cap = 123;
  void* p = tensor_storage_alloc(1000, &cap);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(cap, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  tensor_storage_free(p, cap);
}

TEST(TensorCache, FreedBlocksAreReusedBestFitAndReleased) {
  release_tensor_cache();
  const size_t mb = size_t(1) << 20;
  size_t cap_a = 0, cap_b = 0;
  void* a = tensor_storage_alloc(10 * mb, &cap_a);
  EXPECT_GE(cap_a, 10 * mb);
  std::memset(a, 1, 10 * mb);
  const TensorCacheStats s0 = tensor_cache_stats();
  EXPECT_GE(s0.in_use, cap_a);
  tensor_storage_free(a, cap_a);
  EXPECT_EQ(tensor_cache_stats().cached, cap_a);
  // Slightly smaller: the same block comes back; much smaller: not (a new block).
  void* b = tensor_storage_alloc(9 * mb, &cap_b);
  EXPECT_EQ(b, a);
  EXPECT_EQ(cap_b, cap_a);
  size_t cap_c = 0;
  void* c = tensor_storage_alloc(2 * mb, &cap_c);
  EXPECT_NE(c, a);
  tensor_storage_free(b, cap_b);
  tensor_storage_free(c, cap_c);
  EXPECT_EQ(release_tensor_cache(), cap_b + cap_c);
  EXPECT_EQ(tensor_cache_stats().cached, 0u);
}

TEST(TensorCache, TensorsRoundTripThroughTheCache) {
  release_tensor_cache();
  {
    Tensor t = Tensor::zeros({4, 512, 512});  // 4 MB
    EXPECT_EQ(t.f32()[4 * 512 * 512 - 1], 0.f);
    t.f32()[0] = 3.f;
  }
  EXPECT_GE(tensor_cache_stats().cached, size_t(4) << 20);
  Tensor u = Tensor::zeros({4, 512, 512});  // reuses the block; zeros() still zeroes it
  EXPECT_EQ(u.f32()[0], 0.f);
  release_tensor_cache();
}

TEST(TensorCache, FreeBlocksStayBounded) {
  release_tensor_cache();
  const size_t mb = size_t(1) << 20;
  std::vector<std::pair<void*, size_t>> blocks;
  for (int i = 0; i < 12; ++i) {  // 12 x 40 MB freed at once: at most 256 MB stay cached
    size_t cap = 0;
    blocks.emplace_back(tensor_storage_alloc(40 * mb, &cap), cap);
  }
  for (auto& [p, cap] : blocks) tensor_storage_free(p, cap);
  EXPECT_LE(tensor_cache_stats().cached, 256 * mb);
  release_tensor_cache();
}

}  // namespace
}  // namespace sdpal
