#include "io/mapped_file.h"

#include "core/mapped_pages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace sdpal {

namespace {
const uint8_t kEmpty[1] = {0};
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(ErrorCode::kIo, "cannot stat '" + path + "': " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::kIo, "'" + path + "' is not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ == 0) {  // mmap rejects length 0
    ::close(fd);
    data_ = kEmpty;
    return;
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (p == MAP_FAILED) fail(ErrorCode::kIo, "cannot map '" + path + "': " + std::strerror(e));
  map_ = p;
  data_ = static_cast<const uint8_t*>(p);
  register_file_mapping(map_, size_);
}

MappedFile::~MappedFile() {
  if (map_) {
    unregister_file_mapping(map_);
    ::munmap(map_, size_);
  }
}

}  // namespace sdpal
