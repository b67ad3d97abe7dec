// Threading: one OpenMP pool for our loops and oneDNN's (which is built with OpenMP on Debian),
// so both share the same workers and thread count.
#pragma once
#include <cstdint>
#include <functional>

namespace sdpal {

int num_threads();
void set_num_threads(int n);  // n <= 0: all cores

// Calls fn(begin, end) on disjoint chunks covering [0, n). Exceptions are rethrown on the caller.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

}  // namespace sdpal
