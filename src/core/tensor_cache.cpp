#include "core/tensor_cache.h"

#include <sys/mman.h>

#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sdpal {
namespace {

constexpr size_t kLarge = size_t(1) << 20;        // below: the heap
constexpr size_t kGranule = size_t(64) << 10;     // large blocks are whole granules
constexpr size_t kMaxCached = size_t(256) << 20;  // free blocks kept at most

struct Block {
  size_t size;
  void* p;
};

struct Cache {
  std::mutex mu;
  std::list<Block> free_order;                                // oldest freed first
  std::multimap<size_t, std::list<Block>::iterator> by_size;  // the same blocks, by capacity
  TensorCacheStats stats;
  size_t peak_in_use = 0;  // this stage's

  void insert(size_t size, void* p) {
    free_order.push_back({size, p});
    by_size.emplace(size, std::prev(free_order.end()));
    stats.cached += size;
  }
  // Takes the oldest free block out of the cache (the caller unmaps it).
  Block pop_oldest() {
    Block b = free_order.front();
    auto range = by_size.equal_range(b.size);
    for (auto it = range.first; it != range.second; ++it)
      if (it->second == free_order.begin()) {
        by_size.erase(it);
        break;
      }
    free_order.pop_front();
    stats.cached -= b.size;
    return b;
  }
  void note_in_use() {
    if (stats.in_use > peak_in_use) peak_in_use = stats.in_use;
  }
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: tensors may outlive static destruction order
  return *c;
}

void unmap_all(const std::vector<Block>& blocks) {
  for (const Block& b : blocks) munmap(b.p, b.size);
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
  std::vector<Block> drop;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.by_size.lower_bound(want);
    if (it != c.by_size.end() && it->first <= want + want / 4) {
      const Block b = *it->second;
      c.free_order.erase(it->second);
      c.by_size.erase(it);
      c.stats.cached -= b.size;
      c.stats.in_use += b.size;
      c.note_in_use();
      *capacity = b.size;
      return b.p;
    }
    // No block fits: keep the cache near what is really in use (this stage's peak plus a margin) by
    // unmapping free blocks, the oldest first, before mapping a new one.
    const size_t limit = c.peak_in_use + c.peak_in_use / 4 + (size_t(32) << 20);
    while (!c.free_order.empty() && c.stats.in_use + c.stats.cached + want > limit) drop.push_back(c.pop_oldest());
  }
  unmap_all(drop);
  void* p = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(ErrorCode::kInternal, "out of memory allocating " + std::to_string(bytes) + " bytes");
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.in_use += want;
  c.note_in_use();
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
  std::vector<Block> drop;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.in_use -= capacity;
    c.insert(capacity, p);
    // Over the cap: the blocks freed longest ago go (a step's activations come back in the same order
    // every step, so the recent ones are the ones about to be reused).
    while (c.stats.cached > kMaxCached) drop.push_back(c.pop_oldest());
  }
  unmap_all(drop);
}

size_t release_tensor_cache() {
  Cache& c = cache();
  std::vector<Block> drop;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    drop.assign(c.free_order.begin(), c.free_order.end());
    c.free_order.clear();
    c.by_size.clear();
    c.stats.cached = 0;
    c.peak_in_use = c.stats.in_use;  // the next stage sets its own limit
  }
  size_t total = 0;
  for (const Block& b : drop) total += b.size;
  unmap_all(drop);
  return total;
}

TensorCacheStats tensor_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

}  // namespace sdpal
