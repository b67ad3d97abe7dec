#include "core/tensor_cache.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sdpal {
namespace {

constexpr size_t kLarge = size_t(1) << 20;     // below: the heap
constexpr size_t kGranule = size_t(64) << 10;  // large blocks are whole granules
constexpr size_t kMaxCached = size_t(256) << 20;  // free blocks kept at most

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // capacity -> block
  TensorCacheStats stats;
  size_t peak_in_use = 0;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: tensors may outlive static destruction order
  return *c;
}

}  // namespace

void* tensor_storage_alloc(size_t bytes, size_t* capacity) {
  if (bytes < kLarge) {
    const size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) fail(ErrorCode::kInternal, "out of memory allocating " + std::to_string(bytes) + " bytes");
    *capacity = 0;  // heap
    return p;
  }
  const size_t want = (bytes + kGranule - 1) / kGranule * kGranule;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.lower_bound(want);
    if (it != c.free_blocks.end() && it->first <= want + want / 4) {
      void* p = it->second;
      *capacity = it->first;
      c.stats.cached -= it->first;
      c.stats.in_use += it->first;
      if (c.stats.in_use > c.peak_in_use) c.peak_in_use = c.stats.in_use;
      c.free_blocks.erase(it);
      return p;
    }
  }
  // No block fits: keep the cache near what is really in use (its peak plus a margin) by unmapping
  // free blocks, the largest first, before mapping a new one.
  {
    std::vector<std::pair<size_t, void*>> drop;
    {
      std::lock_guard<std::mutex> lock(c.mu);
      const size_t limit = c.peak_in_use + c.peak_in_use / 4 + (size_t(32) << 20);
      while (!c.free_blocks.empty() && c.stats.in_use + c.stats.cached + want > limit) {
        auto last = std::prev(c.free_blocks.end());
        drop.emplace_back(last->first, last->second);
        c.stats.cached -= last->first;
        c.free_blocks.erase(last);
      }
    }
    for (const auto& [size, q] : drop) munmap(q, size);
  }
  void* p = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(ErrorCode::kInternal, "out of memory allocating " + std::to_string(bytes) + " bytes");
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.in_use += want;
  if (c.stats.in_use > c.peak_in_use) c.peak_in_use = c.stats.in_use;
  if (c.stats.in_use + c.stats.cached > c.stats.peak) c.stats.peak = c.stats.in_use + c.stats.cached;
  *capacity = want;
  return p;
}

void tensor_storage_free(void* p, size_t capacity) {
  if (!p) return;
  if (capacity == 0) {
    std::free(p);
    return;
  }
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.in_use -= capacity;
    if (c.stats.cached + capacity <= kMaxCached) {
      c.stats.cached += capacity;
      c.free_blocks.emplace(capacity, p);
      return;
    }
  }
  munmap(p, capacity);  // e.g. the plain copies of weights a network frees as it prepares them
}

size_t release_tensor_cache() {
  Cache& c = cache();
  std::multimap<size_t, void*> blocks;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    blocks.swap(c.free_blocks);
    c.stats.cached = 0;
    c.peak_in_use = c.stats.in_use;  // the next stage sets its own limit
  }
  size_t total = 0;
  for (const auto& [size, p] : blocks) {
    munmap(p, size);
    total += size;
  }
  return total;
}

TensorCacheStats tensor_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

}  // namespace sdpal
