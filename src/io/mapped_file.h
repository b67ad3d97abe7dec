// Read-only memory mapping of a whole file. Weight readers hand out views into it, so the
// mapping must outlive every TensorView: readers keep it in a shared_ptr.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sdpal {

class MappedFile {
 public:
  // Throws Error(kIo) naming the path if it cannot be opened, is not a regular file or
  // cannot be mapped. An empty file maps to size() == 0 and a non-null data().
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static std::shared_ptr<const MappedFile> open(const std::string& path) {
    return std::make_shared<const MappedFile>(path);
  }

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;  // nullptr for an empty file
};

}  // namespace sdpal
