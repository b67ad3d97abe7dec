#include "core/mapped_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <mutex>

namespace sdpal {

namespace {

// Never destroyed: mappings held by other static objects are unregistered during exit, after
// function-local statics of this file would already be gone.
std::mutex& mu() {
  static std::mutex* m = new std::mutex;
  return *m;
}

std::map<uintptr_t, size_t>& mappings() {  // begin -> size
  static auto* m = new std::map<uintptr_t, size_t>;
  return *m;
}

}  // namespace

void register_file_mapping(const void* begin, size_t size) {
  if (!begin || size == 0) return;
  std::lock_guard<std::mutex> lock(mu());
  mappings()[reinterpret_cast<uintptr_t>(begin)] = size;
}

void unregister_file_mapping(const void* begin) {
  std::lock_guard<std::mutex> lock(mu());
  mappings().erase(reinterpret_cast<uintptr_t>(begin));
}

size_t release_mapped_pages(const void* p, size_t n) {
  if (!p || n == 0) return 0;
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + n;
  {
    std::lock_guard<std::mutex> lock(mu());
    auto& m = mappings();
    auto it = m.upper_bound(b);
    if (it == m.begin()) return 0;
    --it;
    if (e > it->first + it->second) return 0;  // not inside one mapping
  }
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t pb = (b + page - 1) / page * page, pe = e / page * page;  // whole pages inside
  if (pe <= pb) return 0;
  if (::madvise(reinterpret_cast<void*>(pb), pe - pb, MADV_DONTNEED) != 0) return 0;
  return pe - pb;
}

}  // namespace sdpal
