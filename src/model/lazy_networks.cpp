#include "model/lazy_networks.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/tensor_cache.h"
#include "kernels/cpu/kernel_scratch.h"

namespace sdpal {

void return_free_memory_to_os() {
  cpu::release_thread_scratch();  // the released network's largest layers sized it
  release_tensor_cache();         // activation blocks cached for that network's shapes
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace sdpal
