#include "model/lazy_networks.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sdpal {

void return_free_memory_to_os() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace sdpal
