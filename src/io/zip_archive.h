// Read-only ZIP archives over a memory-mapped file (torch checkpoints, Apple's Core ML release
// zips). Stored entries are views into the mapping; deflated ones are inflated into a buffer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"

namespace sdpal {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflated; others are reported as unsupported on read
  uint16_t flags = 0;   // bit 0: encrypted
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;  // first byte of the (compressed) data, validated within the file
};

// Bytes of one entry: `data` points into the mapping (stored) or into `owned` (inflated).
struct ZipBytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const std::vector<uint8_t>> owned;
};

class ZipArchive {
 public:
  // Reads the end of central directory (ZIP64 too), every central directory entry and local
  // header. Throws Error(kIo) if unreadable, Error(kFormat) naming the file and entry for any
  // offset or size outside the file, duplicate names or inconsistent headers.
  explicit ZipArchive(std::shared_ptr<const MappedFile> file);
  static std::unique_ptr<ZipArchive> open(const std::string& path) {
    return std::make_unique<ZipArchive>(MappedFile::open(path));
  }
  // True if the file starts like a zip archive (local header or empty-archive signature).
  static bool looks_like_zip(const uint8_t* data, size_t size);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;  // nullptr when absent

  // The entry's uncompressed bytes. With verify_crc the CRC-32 is checked (always for inflated
  // data). Throws Error(kUnsupported) for encrypted entries or methods other than stored and
  // deflate, Error(kFormat) for corrupt data or a CRC mismatch.
  ZipBytes read(const ZipEntry& entry, bool verify_crc = true) const;

  // Whether `name` is safe to use as a relative path when extracting: not empty, not absolute,
  // no drive letter, backslash, NUL or ".." component.
  static bool is_safe_path(const std::string& name);
  // `entry.name` if safe, else throws Error(kFormat) naming the archive and the entry.
  std::string safe_path(const ZipEntry& entry) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace sdpal
