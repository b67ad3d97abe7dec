// Writes a file so that it either appears complete or not at all: the bytes go to a temporary
// file in the same directory, which is renamed over the destination on commit().
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>

namespace sdpal {

class AtomicFileWriter {
 public:
  // Creates the temporary file; throws Error(kIo) naming `path` when the directory is not writable.
  explicit AtomicFileWriter(const std::string& path);
  // Without commit(), removes the temporary file: an error never leaves a partial output.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  // The open stream, for libraries that write through stdio (libpng).
  std::FILE* stream() { return file_; }
  void write(const void* data, size_t n);  // throws Error(kIo)
  // Flushes, syncs, closes and renames onto path(); throws Error(kIo) and removes the temp file.
  void commit();

 private:
  void discard() noexcept;
  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace sdpal
