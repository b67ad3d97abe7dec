// Storage for large tensors (activations): page-backed blocks, cached when freed and reused by the next
// tensor of about the same size -- the activation arena.
//
// A UNet step allocates and frees ~300 activations of 1-30 MB, the same sizes every step. From the heap
// they fragment it: with the 6-bit SD v1.4 UNet, tensors never held more than 117 MB at once, yet the
// heap grew to 400 MB and kept it resident. From mmap directly, every allocation would page-fault its
// memory in again. Cached blocks are reused best-fit (the smallest free block that is at least the
// size and at most a quarter larger), so the same shapes step after step find their blocks again. When
// none fits, free blocks are unmapped (largest first) until the cache plus what is in use stays within
// 1.25x the stage's peak in use + 32 MB, and at most 256 MB are kept free: the resident memory follows
// what is really in use (6-bit SD v1.4 at 512x512: UNet stage 1.14 -> 1.0 GB). release_tensor_cache()
// unmaps the free blocks and starts a new stage: the pipeline calls it when a network's stage is over
// (model/lazy_networks.h).
// Small tensors (< 1 MB) use the heap as before. Thread-safe.
#pragma once
#include <cstddef>

namespace sdpal {

// At least `bytes` bytes, 64-byte aligned; *capacity is what must be passed back to tensor_storage_free.
void* tensor_storage_alloc(size_t bytes, size_t* capacity);
void tensor_storage_free(void* p, size_t capacity);

// Unmaps every cached free block; returns the bytes given back.
size_t release_tensor_cache();

struct TensorCacheStats {
  size_t in_use = 0;  // bytes of large blocks held by live tensors
  size_t cached = 0;  // bytes of free blocks kept for reuse
};
TensorCacheStats tensor_cache_stats();

}  // namespace sdpal
