#include "kernels/cpu/kernel_scratch.h"

#include "kernels/cpu/scratch.h"

namespace sdpal::cpu {

void release_thread_scratch() { ScratchBuffer::release_thread_buffers(); }

}  // namespace sdpal::cpu
