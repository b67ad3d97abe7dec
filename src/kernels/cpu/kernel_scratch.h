// The CPU kernels keep per-thread scratch (bf16 copies of activations, decoded palettized weights,
// oneDNN scratchpads) that grows to the largest call and is reused. When a pipeline stage is over,
// that memory belongs to a network that is gone: release it.
#pragma once

namespace sdpal::cpu {

// Frees the calling thread's kernel scratch; it regrows on the next kernel call. Call it between
// kernel calls (it never touches other threads' scratch, so concurrent pipelines are safe).
void release_thread_scratch();

}  // namespace sdpal::cpu
