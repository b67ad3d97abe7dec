#include "io/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace sdpal {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kEnd64Size = 56, kLocatorSize = 20, kCentralSize = 46, kLocalSize = 30;

uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t u64(const uint8_t* p) { return uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32; }

// a + b <= limit without wrapping.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

// Replaces 0xFFFFFFFF sizes/offset with the values of the ZIP64 extra field (id 1), which
// holds, in order, only the fields that overflowed.
bool apply_zip64_extra(const uint8_t* extra, size_t len, ZipEntry& e, bool usize64, bool csize64, bool offset64) {
  size_t pos = 0;
  while (pos + 4 <= len) {
    const uint16_t id = u16(extra + pos), size = u16(extra + pos + 2);
    if (size > len - pos - 4) return false;
    if (id == 1) {
      const uint8_t* f = extra + pos + 4;
      size_t need = 8 * (size_t(usize64) + csize64 + offset64);
      if (size < need) return false;
      if (usize64) e.uncompressed_size = u64(f), f += 8;
      if (csize64) e.compressed_size = u64(f), f += 8;
      if (offset64) e.local_header_offset = u64(f);
      return true;
    }
    pos += 4 + size;
  }
  return !(usize64 || csize64 || offset64);
}

}  // namespace

bool ZipArchive::looks_like_zip(const uint8_t* data, size_t size) {
  return size >= 4 && (u32(data) == kLocalSig || u32(data) == kEndSig);
}

ZipArchive::ZipArchive(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) {
  const std::string& path = file_->path();
  const uint8_t* base = file_->data();
  const uint64_t size = file_->size();
  auto bad = [&](const std::string& why) { fail(ErrorCode::kFormat, "zip archive '" + path + "': " + why); };
  if (size < kEndSize) bad("too short to be a zip archive");

  // The end record sits in the last 22 + 65535 (comment) bytes; take the last match.
  uint64_t end_pos = UINT64_MAX;
  const uint64_t lowest = size - kEndSize > 65535 ? size - kEndSize - 65535 : 0;
  for (uint64_t p = size - kEndSize + 1; p-- > lowest;) {
    if (u32(base + p) == kEndSig && p + kEndSize + u16(base + p + 20) <= size) {
      end_pos = p;
      break;
    }
  }
  if (end_pos == UINT64_MAX) bad("end of central directory not found");
  const uint8_t* end = base + end_pos;
  if (u16(end + 4) != 0 || u16(end + 6) != 0) fail(ErrorCode::kUnsupported, "zip archive '" + path + "': multi-disk archives are not supported");
  uint64_t count = u16(end + 10);
  uint64_t cd_size = u32(end + 12);
  uint64_t cd_offset = u32(end + 16);
  uint64_t cd_limit = end_pos;  // the central directory must end before the end records

  if (end_pos >= kLocatorSize && u32(end - kLocatorSize) == kEnd64LocatorSig) {
    const uint8_t* loc = end - kLocatorSize;
    const uint64_t end64_pos = u64(loc + 8);
    if (u32(loc + 4) != 0 || u32(loc + 16) > 1) fail(ErrorCode::kUnsupported, "zip archive '" + path + "': multi-disk archives are not supported");
    if (!fits(end64_pos, kEnd64Size, end_pos - kLocatorSize)) bad("ZIP64 end record offset out of range");
    const uint8_t* e64 = base + end64_pos;
    if (u32(e64) != kEnd64Sig) bad("bad ZIP64 end record signature");
    count = u64(e64 + 32);
    cd_size = u64(e64 + 40);
    cd_offset = u64(e64 + 48);
    cd_limit = end64_pos;
  } else if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    bad("ZIP64 end record locator missing");
  }
  if (!fits(cd_offset, cd_size, cd_limit)) bad("central directory out of range");
  if (count > cd_size / kCentralSize) bad("entry count " + std::to_string(count) + " does not fit the central directory");

  entries_.reserve(size_t(count));
  const uint8_t* p = base + cd_offset;
  const uint8_t* cd_end = p + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    const std::string where = "central directory entry " + std::to_string(i);
    if (uint64_t(cd_end - p) < kCentralSize || u32(p) != kCentralSig) bad(where + " is truncated or has a bad signature");
    ZipEntry e;
    e.flags = u16(p + 8);
    e.method = u16(p + 10);
    e.crc32 = u32(p + 16);
    e.compressed_size = u32(p + 20);
    e.uncompressed_size = u32(p + 24);
    const size_t name_len = u16(p + 28), extra_len = u16(p + 30), comment_len = u16(p + 32);
    e.local_header_offset = u32(p + 42);
    if (uint64_t(cd_end - p) - kCentralSize < name_len + extra_len + comment_len) bad(where + " runs past the central directory");
    e.name.assign(reinterpret_cast<const char*>(p + kCentralSize), name_len);
    const std::string entry = "entry '" + e.name + "'";
    if (!apply_zip64_extra(p + kCentralSize + name_len, extra_len, e, e.uncompressed_size == 0xFFFFFFFF,
                           e.compressed_size == 0xFFFFFFFF, e.local_header_offset == 0xFFFFFFFF))
      bad(entry + ": malformed ZIP64 extra field");
    p += kCentralSize + name_len + extra_len + comment_len;

    // Local header: its name must agree; its own sizes may be zero (data descriptor), so the
    // central directory's are used.
    if (!fits(e.local_header_offset, kLocalSize, cd_offset)) bad(entry + ": local header offset out of range");
    const uint8_t* lh = base + e.local_header_offset;
    if (u32(lh) != kLocalSig) bad(entry + ": bad local header signature");
    const size_t lname = u16(lh + 26), lextra = u16(lh + 28);
    if (!fits(e.local_header_offset + kLocalSize, lname + lextra, cd_offset)) bad(entry + ": local header runs past the data area");
    if (lname != name_len || std::memcmp(lh + kLocalSize, e.name.data(), name_len) != 0)
      bad(entry + ": local header name differs from the central directory");
    e.data_offset = e.local_header_offset + kLocalSize + lname + lextra;
    if (!fits(e.data_offset, e.compressed_size, cd_offset)) bad(entry + ": data runs past the data area");
    if (e.method == 0 && e.compressed_size != e.uncompressed_size) bad(entry + ": stored entry with different sizes");
    if (!index_.emplace(e.name, entries_.size()).second) bad("duplicate " + entry);
    entries_.push_back(std::move(e));
  }
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

ZipBytes ZipArchive::read(const ZipEntry& e, bool verify_crc) const {
  const std::string where = "zip archive '" + path() + "', entry '" + e.name + "'";
  if (e.flags & 1) fail(ErrorCode::kUnsupported, where + ": encrypted entries are not supported");
  const uint8_t* src = file_->data() + e.data_offset;
  ZipBytes out;
  if (e.method == 0) {
    out.data = src;
    out.size = size_t(e.compressed_size);
  } else if (e.method == 8) {
    // Deflate expands at most ~1032:1; a larger claim is corrupt (or a decompression bomb).
    if (e.uncompressed_size / 1032 > e.compressed_size + 1)
      fail(ErrorCode::kFormat, where + ": implausible uncompressed size " + std::to_string(e.uncompressed_size));
    auto buf = std::make_shared<std::vector<uint8_t>>(size_t(e.uncompressed_size));
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail(ErrorCode::kInternal, where + ": zlib initialisation failed");
    uint64_t in_left = e.compressed_size, out_left = e.uncompressed_size;
    z.next_in = const_cast<Bytef*>(src);
    z.next_out = buf->data();
    int rc = Z_OK;
    uint8_t spare;  // lets zlib report data beyond the declared size
    while (rc == Z_OK) {
      if (z.avail_in == 0) {
        z.avail_in = uInt(std::min<uint64_t>(in_left, 1u << 30));
        in_left -= z.avail_in;
      }
      if (z.avail_out == 0) {
        if (out_left == 0) {
          z.next_out = &spare;
          z.avail_out = 1;
        } else {
          z.avail_out = uInt(std::min<uint64_t>(out_left, 1u << 30));
          out_left -= z.avail_out;
        }
      }
      const uInt avail_in = z.avail_in;
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc == Z_BUF_ERROR && avail_in == 0 && in_left == 0) break;  // input exhausted early
      if (z.next_out == &spare + 1) break;                           // more output than declared
    }
    const uint64_t produced = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || produced != e.uncompressed_size)
      fail(ErrorCode::kFormat, where + ": corrupt deflate data");
    out.data = buf->data();
    out.size = buf->size();
    out.owned = std::move(buf);
    verify_crc = true;
  } else {
    fail(ErrorCode::kUnsupported, where + ": compression method " + std::to_string(e.method) + " is not supported");
  }
  if (verify_crc) {
    uLong crc = ::crc32(0L, Z_NULL, 0);
    for (size_t pos = 0; pos < out.size;) {
      const uInt n = uInt(std::min<size_t>(out.size - pos, 1u << 30));
      crc = ::crc32(crc, out.data + pos, n);
      pos += n;
    }
    if (uint32_t(crc) != e.crc32) fail(ErrorCode::kFormat, where + ": CRC-32 mismatch (corrupt file)");
  }
  return out;
}

bool ZipArchive::is_safe_path(const std::string& name) {
  if (name.empty() || name.front() == '/' || name.find('\\') != std::string::npos || name.find('\0') != std::string::npos)
    return false;
  if (name.size() >= 2 && name[1] == ':') return false;  // drive letter
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    if (name.compare(start, slash - start, "..") == 0) return false;
    start = slash + 1;
  }
  return true;
}

std::string ZipArchive::safe_path(const ZipEntry& entry) const {
  if (!is_safe_path(entry.name))
    fail(ErrorCode::kFormat, "zip archive '" + path() + "': unsafe entry path '" + entry.name + "'");
  return entry.name;
}

}  // namespace sdpal
