#include "kernels/cpu/palettized_decode.h"

#include <cpuid.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"

namespace sdpal::cpu::palettized {

namespace {

bool cpu_has_vbmi() {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  return (c & (1u << 1)) != 0;  // AVX512_VBMI
}

template <int NB, typename T>
void decode_portable_t(const uint8_t* p, size_t nbytes, int64_t first, int64_t count, const T* t, T* out) {
  int64_t i = 0;
  for (; i < count && (first + i) % 8 != 0; ++i) out[i] = t[palettized_index_at(p, nbytes, NB, first + i)];
  // Whole groups of 8 indices: NB bytes each.
  constexpr uint64_t mask = (1u << NB) - 1u;
  const int64_t groups = (count - i) / 8;
  const uint8_t* q = p + size_t((first + i) / 8 * NB);
  T* o = out + i;
  for (int64_t g = 0; g < groups; ++g, q += NB, o += 8) {
    uint64_t w = 0;
    std::memcpy(&w, q, NB);  // little-endian: index j at bits [j*NB, ...)
    for (int j = 0; j < 8; ++j) o[j] = t[(w >> (j * NB)) & mask];
  }
  for (i += groups * 8; i < count; ++i) out[i] = t[palettized_index_at(p, nbytes, NB, first + i)];
}

template <typename T>
void decode_portable(const uint8_t* p, size_t nbytes, int nbits, int64_t first, int64_t count, const T* t, T* out) {
  switch (nbits) {
    case 1: return decode_portable_t<1>(p, nbytes, first, count, t, out);
    case 2: return decode_portable_t<2>(p, nbytes, first, count, t, out);
    case 3: return decode_portable_t<3>(p, nbytes, first, count, t, out);
    case 4: return decode_portable_t<4>(p, nbytes, first, count, t, out);
    case 5: return decode_portable_t<5>(p, nbytes, first, count, t, out);
    case 6: return decode_portable_t<6>(p, nbytes, first, count, t, out);
    case 7: return decode_portable_t<7>(p, nbytes, first, count, t, out);
    default: return decode_portable_t<8>(p, nbytes, first, count, t, out);
  }
}

void check_nbits(int nbits) {
  check(nbits >= 1 && nbits <= 8, ErrorCode::kInvalidArgument,
        "palettized decode: index width " + std::to_string(nbits) + " outside 1..8");
}

}  // namespace

bool fast_decode_available() {
  static const bool ok = cpu_features().avx512_core() && cpu_has_vbmi();
  return ok;
}

DecodeTable make_decode_table(int nbits, const float* values) {
  check_nbits(nbits);
  DecodeTable t;
  t.nbits = nbits;
  for (int i = 0; i < (1 << nbits); ++i) {
    std::memcpy(&t.f32[i], &values[i], 4);
    t.bf16[i] = f32_to_bf16(values[i]);
    for (int k = 0; k < 4; ++k) t.f32_planes[k][i] = uint8_t(t.f32[i] >> (8 * k));
    for (int k = 0; k < 2; ++k) t.bf16_planes[k][i] = uint8_t(t.bf16[i] >> (8 * k));
  }
  return t;
}

DecodeTable make_decode_table(const PalettizedView& v) {
  const int64_t n = int64_t(1) << v.nbits;
  check(v.lut_shape.size() == 1 && v.lut_shape[0] == n && v.lut, ErrorCode::kUnsupported,
        "palettized weight '" + v.name + "': only a single table decodes through a flat table");
  float vals[256];
  const uint8_t* p = v.lut;
  for (int64_t i = 0; i < n; ++i) {
    switch (v.lut_dtype) {  // the conversions decode_palettized makes
      case DType::F16: vals[i] = f16_to_f32(uint16_t(p[2 * i] | p[2 * i + 1] << 8)); break;
      case DType::BF16: vals[i] = bf16_to_f32(uint16_t(p[2 * i] | p[2 * i + 1] << 8)); break;
      case DType::F32: std::memcpy(&vals[i], p + 4 * i, 4); break;
      case DType::I8: vals[i] = float(int8_t(p[i])); break;
      case DType::U8: vals[i] = float(p[i]); break;
      default:
        fail(ErrorCode::kUnsupported, "palettized weight '" + v.name + "': table type " + dtype_name(v.lut_dtype));
    }
  }
  return make_decode_table(v.nbits, vals);
}

void decode_lut_stream(const uint8_t* packed, size_t nbytes, int nbits, int64_t first, int64_t count,
                       const DecodeTable& table, OutType type, void* out, DecodeImpl impl) {
  check_nbits(nbits);
  check(table.nbits == nbits, ErrorCode::kInvalidArgument, "palettized decode: table width mismatch");
  check(first >= 0 && count >= 0 && uint64_t(first + count) * uint64_t(nbits) <= uint64_t(nbytes) * 8,
        ErrorCode::kInvalidArgument, "palettized decode: range outside the stream");
  if (count == 0) return;
  if (impl == DecodeImpl::kAvx512Vbmi)
    check(fast_decode_available(), ErrorCode::kUnsupported, "palettized decode: no AVX512-VBMI on this CPU");
  const bool fast = impl == DecodeImpl::kAvx512Vbmi || (impl == DecodeImpl::kAuto && fast_decode_available());
  if (fast) {
    // The vector kernel starts at whole bytes: indices up to the next multiple of 8 go portable.
    const int64_t head = std::min(count, (8 - first % 8) % 8);
    if (head) {
      decode_lut_stream(packed, nbytes, nbits, first, head, table, type, out, DecodeImpl::kPortable);
      out = static_cast<uint8_t*>(out) + head * (type == OutType::kF32 ? 4 : 2);
    }
    if (count > head) detail::decode_avx512_vbmi(packed, nbits, first + head, count - head, table, type, out);
    return;
  }
  if (type == OutType::kF32)
    decode_portable(packed, nbytes, nbits, first, count, table.f32, static_cast<uint32_t*>(out));
  else
    decode_portable(packed, nbytes, nbits, first, count, table.bf16, static_cast<uint16_t*>(out));
}

void decode_lut_stream_parallel(const uint8_t* packed, size_t nbytes, int nbits, int64_t count,
                                const DecodeTable& table, OutType type, void* out, DecodeImpl impl) {
  // Chunks of whole 64-index vectors, large enough to amortise the thread hand-off.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  const size_t esize = type == OutType::kF32 ? 4 : 2;
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    const int64_t b = c0 * kChunk, e = std::min(count, c1 * kChunk);
    decode_lut_stream(packed, nbytes, nbits, b, e - b, table, type, static_cast<uint8_t*>(out) + size_t(b) * esize,
                      impl);
  });
}

namespace {

template <int NB>
void pack_t(const uint8_t* idx, int64_t count, uint8_t* o) {
  constexpr uint64_t mask = (1u << NB) - 1u;
  int64_t i = 0;
  for (; i + 8 <= count; i += 8, o += NB) {
    uint64_t w = 0;
    for (int j = 0; j < 8; ++j) w |= (uint64_t(idx[i + j]) & mask) << (j * NB);
    std::memcpy(o, &w, NB);
  }
  if (i < count) {
    uint64_t w = 0;
    for (int j = 0; i + j < count; ++j) w |= (uint64_t(idx[i + j]) & mask) << (j * NB);
    std::memcpy(o, &w, size_t(((count - i) * NB + 7) / 8));
  }
}

}  // namespace

void pack_indices(const uint8_t* idx, int64_t first, int64_t count, int nbits, uint8_t* out) {
  check_nbits(nbits);
  check(first % 8 == 0, ErrorCode::kInvalidArgument, "pack_indices: start must be a multiple of 8");
  uint8_t* o = out + size_t(first / 8 * nbits);
  switch (nbits) {
    case 1: return pack_t<1>(idx, count, o);
    case 2: return pack_t<2>(idx, count, o);
    case 3: return pack_t<3>(idx, count, o);
    case 4: return pack_t<4>(idx, count, o);
    case 5: return pack_t<5>(idx, count, o);
    case 6: return pack_t<6>(idx, count, o);
    case 7: return pack_t<7>(idx, count, o);
    default: return pack_t<8>(idx, count, o);
  }
}

}  // namespace sdpal::cpu::palettized
