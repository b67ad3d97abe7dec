// Error handling: the C++ core throws sdpal::Error; the C API turns it into a status code.
#pragma once
#include <stdexcept>
#include <string>

namespace sdpal {

// Mirrors sdpal_status in include/sdpal.h.
enum class ErrorCode {
  kInvalidArgument = 1,  // a caller-supplied parameter is out of range
  kIo = 2,               // a file could not be opened, read or written
  kFormat = 3,           // a file's content is malformed or inconsistent
  kModel = 4,            // a model folder is incomplete or its weights do not bind
  kCancelled = 5,        // the progress callback asked to stop
  kUnsupported = 6,      // valid input that this build cannot run
  kInternal = 7,
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

// Precondition check that throws instead of aborting: one bad request must not kill a server.
inline void check(bool condition, ErrorCode code, const std::string& message) {
  if (!condition) throw Error(code, message);
}

}  // namespace sdpal
