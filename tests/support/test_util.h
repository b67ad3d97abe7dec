// Small helpers shared by the unit tests: error-code capture and raw file access.
#pragma once
#include <string>

#include "core/error.h"

namespace sdpal::testing {

// The ErrorCode an sdpal::Error thrown by f() carries (0 when f() returns); the message goes to *msg.
template <typename F>
ErrorCode code_of(F f, std::string* msg = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  return ErrorCode(0);
}

// Rewrites `path` in place: truncating and reallocating blocks thousands of times is slow on some
// filesystems, and the corruption loops write thousands of same-sized variants.
void overwrite(const std::string& path, const std::string& bytes);
std::string read_all(const std::string& path);  // whole file; "" if it cannot be opened

}  // namespace sdpal::testing
