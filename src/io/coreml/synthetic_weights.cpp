#include "io/coreml/synthetic_weights.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/coreml/blob_storage.h"

namespace sdpal::coreml {

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Small finite values in [-0.125, 0.125), so an interpreter fed these weights stays finite.
float small_float(uint64_t r) { return (float(r >> 40) / float(1 << 24) - 0.5f) * 0.25f; }

void fill_random(const BlobSlot& s, uint64_t seed, std::vector<uint8_t>& buf) {
  uint64_t st = seed ^ (s.offset * 0x2545f4914f6cdd1dull);
  buf.assign(size_t(s.nbytes), 0);
  const int bits = mil_dtype_bits(s.dtype);
  if (mil_dtype_is_float(s.dtype) && bits >= 16) {
    for (uint64_t i = 0; i < s.numel; ++i) {
      const float f = small_float(splitmix(st));
      uint8_t* p = buf.data() + i * uint64_t(bits / 8);
      if (s.dtype == MilDType::kFp16) { const uint16_t h = f32_to_f16(f); std::memcpy(p, &h, 2); }
      else if (s.dtype == MilDType::kBf16) { const uint16_t h = f32_to_bf16(f); std::memcpy(p, &h, 2); }
      else std::memcpy(p, &f, 4);
    }
  } else if (mil_dtype_is_int(s.dtype) && bits >= 16) {
    for (uint64_t i = 0; i < s.numel; ++i) {  // small non-negative values: safe as shapes or gather indices
      const uint64_t v = splitmix(st) & 7;
      std::memcpy(buf.data() + i * uint64_t(bits / 8), &v, size_t(bits / 8));
    }
  } else {  // bytes and sub-byte types: every bit pattern is a valid index or value
    for (size_t i = 0; i < buf.size(); i += 8) {
      const uint64_t r = splitmix(st);
      std::memcpy(buf.data() + i, &r, std::min<size_t>(8, buf.size() - i));
    }
    const uint64_t used = s.numel * uint64_t(bits);
    if (used % 8) buf.back() &= uint8_t((1u << (used % 8)) - 1);  // padding bits stay zero
  }
}

}  // namespace

SyntheticWeightsInfo write_synthetic_weight_bin(const BlobLayout& layout, const std::string& out_path,
                                                SyntheticFill fill, uint64_t seed) {
  SyntheticWeightsInfo info;
  info.file_size = layout.min_file_size < kBlobHeaderSize ? kBlobHeaderSize : layout.min_file_size;
  info.blobs = uint32_t(layout.slots.size());
  AtomicFileWriter w(out_path);
  std::FILE* f = w.stream();
  auto seek = [&](uint64_t off) {
    if (std::fflush(f) != 0 || ::fseeko(f, off_t(off), SEEK_SET) != 0) fail(ErrorCode::kIo, "cannot seek in " + w.temp_path());
  };
  uint8_t header[kBlobHeaderSize] = {};
  const uint32_t version = 2;
  std::memcpy(header, &info.blobs, 4);
  std::memcpy(header + 4, &version, 4);
  w.write(header, sizeof header);
  std::vector<uint8_t> buf;
  for (const BlobSlot& s : layout.slots) {
    const auto code = mil_dtype_to_blob(s.dtype);
    if (!code) fail(ErrorCode::kUnsupported, out_path + ": " + s.what + " has type " + mil_dtype_name(s.dtype) + ", which a weight file cannot hold");
    uint8_t meta[kBlobMetadataSize] = {};
    const uint32_t sentinel = kBlobSentinel, c = uint32_t(*code);
    const uint64_t data_offset = s.offset + kBlobMetadataSize;
    const uint64_t padding = s.nbytes * 8 - s.numel * uint64_t(mil_dtype_bits(s.dtype));
    std::memcpy(meta, &sentinel, 4);
    std::memcpy(meta + 4, &c, 4);
    std::memcpy(meta + 8, &s.nbytes, 8);
    std::memcpy(meta + 16, &data_offset, 8);
    std::memcpy(meta + 24, &padding, 8);
    seek(s.offset);
    w.write(meta, sizeof meta);
    if (fill == SyntheticFill::kRandom) {
      fill_random(s, seed, buf);
      w.write(buf.data(), buf.size());
    }
  }
  // Zero data is never written: the file is extended with holes to its full size.
  if (std::fflush(f) != 0 || ::ftruncate(::fileno(f), off_t(info.file_size)) != 0)
    fail(ErrorCode::kIo, "cannot size " + w.temp_path());
  seek(info.file_size);
  w.commit();
  return info;
}

}  // namespace sdpal::coreml
