#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace sdpal {

namespace {
std::atomic<unsigned> g_counter{0};
}

AtomicFileWriter::AtomicFileWriter(const std::string& path) : path_(path) {
  check(!path.empty(), ErrorCode::kInvalidArgument, "empty output path");
  // O_EXCL with a process-unique name instead of mkstemp: the file gets the usual
  // 0666 & ~umask permissions rather than mkstemp's 0600.
  int fd = -1;
  int err = 0;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp_path_ = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_counter++);
    fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    err = errno;
    if (fd < 0 && err != EEXIST) break;
  }
  if (fd < 0) fail(ErrorCode::kIo, "cannot create '" + path + "': " + std::strerror(err));
  file_ = ::fdopen(fd, "wb");
  if (!file_) {
    err = errno;
    ::close(fd);
    ::unlink(temp_path_.c_str());
    fail(ErrorCode::kIo, "cannot create '" + path + "': " + std::strerror(err));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) discard();
}

void AtomicFileWriter::discard() noexcept {
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
  }
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

void AtomicFileWriter::write(const void* data, size_t n) {
  check(file_ != nullptr, ErrorCode::kInternal, "write to a closed file '" + path_ + "'");
  if (n == 0) return;
  if (std::fwrite(data, 1, n, file_) != n) {
    int e = errno;
    discard();
    fail(ErrorCode::kIo, "cannot write '" + path_ + "': " + std::strerror(e));
  }
}

void AtomicFileWriter::commit() {
  check(file_ != nullptr, ErrorCode::kInternal, "commit of a closed file '" + path_ + "'");
  int e = 0;
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) e = errno;
  if (std::fclose(file_) != 0 && e == 0) e = errno;
  file_ = nullptr;
  if (e == 0 && ::rename(temp_path_.c_str(), path_.c_str()) != 0) e = errno;
  if (e != 0) {
    discard();
    fail(ErrorCode::kIo, "cannot write '" + path_ + "': " + std::strerror(e));
  }
  committed_ = true;
}

}  // namespace sdpal
