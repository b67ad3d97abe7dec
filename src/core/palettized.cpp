#include "core/palettized.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace sdpal {

namespace {

std::string label(const PalettizedView& v) {
  return "palettized weight '" + (v.name.empty() ? std::string("?") : v.name) + "'";
}

// Product of dims with an overflow guard (elements are addressed by int64_t and bit offsets).
int64_t checked_numel(const Shape& s, const PalettizedView& v, const char* what) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) fail(ErrorCode::kFormat, label(v) + ": negative dimension in " + what + " " + shape_str(s));
    if (d != 0 && n > (int64_t(1) << 56) / d)
      fail(ErrorCode::kFormat, label(v) + ": " + what + " " + shape_str(s) + " is too large");
    n *= d;
  }
  return n;
}

// Table values as float: at most 256 * V * groups entries, bounded by the blob size.
std::vector<float> lut_as_f32(const PalettizedView& v, int64_t n) {
  std::vector<float> t(static_cast<size_t>(n));
  const uint8_t* p = v.lut;
  switch (v.lut_dtype) {
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) t[i] = f16_to_f32(uint16_t(p[2 * i] | p[2 * i + 1] << 8));
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) t[i] = bf16_to_f32(uint16_t(p[2 * i] | p[2 * i + 1] << 8));
      break;
    case DType::F32:
      std::memcpy(t.data(), p, size_t(n) * 4);
      break;
    case DType::I8:
      for (int64_t i = 0; i < n; ++i) t[i] = float(int8_t(p[i]));
      break;
    case DType::U8:
      for (int64_t i = 0; i < n; ++i) t[i] = float(p[i]);
      break;
    default:
      fail(ErrorCode::kUnsupported, label(v) + ": table type " + dtype_name(v.lut_dtype));
  }
  return t;
}


}  // namespace

Shape PalettizedView::index_shape() const {
  Shape s = shape;
  const int64_t vs = vector_size();
  if (vs > 1 && vector_axis >= 0 && size_t(vector_axis) < s.size()) s[size_t(vector_axis)] /= vs;
  return s;
}

void validate_palettized(const PalettizedView& v) {
  if (v.nbits != 1 && v.nbits != 2 && v.nbits != 3 && v.nbits != 4 && v.nbits != 6 && v.nbits != 8)
    fail(ErrorCode::kFormat, label(v) + ": unsupported index width of " + std::to_string(v.nbits) + " bits");
  checked_numel(v.shape, v, "shape");
  const int64_t palette = int64_t(1) << v.nbits;
  const size_t rank = v.shape.size();
  if (v.lut_shape.size() == 1) {
    if (v.lut_shape[0] != palette)
      fail(ErrorCode::kFormat, label(v) + ": table of " + std::to_string(v.lut_shape[0]) +
                                   " entries for " + std::to_string(v.nbits) + "-bit indices");
  } else if (v.lut_shape.size() == rank + 2 && rank > 0) {
    if (v.lut_shape[rank] != palette)
      fail(ErrorCode::kFormat, label(v) + ": table shape " + shape_str(v.lut_shape) + " does not have " +
                                   std::to_string(palette) + " entries for " + std::to_string(v.nbits) +
                                   "-bit indices");
    const int64_t vs = v.lut_shape[rank + 1];
    if (vs < 1) fail(ErrorCode::kFormat, label(v) + ": vector size must be >= 1 in " + shape_str(v.lut_shape));
    if (vs > 1) {
      if (v.vector_axis < 0 || size_t(v.vector_axis) >= rank)
        fail(ErrorCode::kFormat, label(v) + ": vector size " + std::to_string(vs) + " needs a vector axis in [0, " +
                                     std::to_string(rank) + "), got " + std::to_string(v.vector_axis));
      if (v.shape[size_t(v.vector_axis)] % vs != 0)
        fail(ErrorCode::kFormat, label(v) + ": dimension " + std::to_string(v.vector_axis) + " of " +
                                     shape_str(v.shape) + " is not a multiple of the vector size " +
                                     std::to_string(vs));
    }
    const Shape is = v.index_shape();
    for (size_t k = 0; k < rank; ++k) {
      if (v.lut_shape[k] < 1 || is[k] % v.lut_shape[k] != 0)
        fail(ErrorCode::kFormat, label(v) + ": index shape " + shape_str(is) + " is not divisible into the " +
                                     "table groups " + shape_str(v.lut_shape) + " at axis " + std::to_string(k));
    }
  } else {
    fail(ErrorCode::kFormat, label(v) + ": table shape " + shape_str(v.lut_shape) + " must be [" +
                                 std::to_string(palette) + "] or have rank " + std::to_string(rank + 2));
  }
  const int64_t lut_n = checked_numel(v.lut_shape, v, "table shape");
  if (v.lut_dtype != DType::F16 && v.lut_dtype != DType::F32 && v.lut_dtype != DType::BF16 &&
      v.lut_dtype != DType::I8 && v.lut_dtype != DType::U8)
    fail(ErrorCode::kFormat, label(v) + ": unsupported table type " + dtype_name(v.lut_dtype));
  if (uint64_t(lut_n) * dtype_size(v.lut_dtype) != v.lut_nbytes || (lut_n > 0 && !v.lut))
    fail(ErrorCode::kFormat, label(v) + ": table of " + std::to_string(v.lut_nbytes) + " bytes does not match " +
                                 dtype_name(v.lut_dtype) + " " + shape_str(v.lut_shape));
  const int64_t nidx = checked_numel(v.index_shape(), v, "index shape");
  const uint64_t want = (uint64_t(nidx) * uint64_t(v.nbits) + 7) / 8;
  if (want != v.indices_nbytes || (want > 0 && !v.indices))
    fail(ErrorCode::kFormat, label(v) + ": index bytes (" + std::to_string(v.indices_nbytes) +
                                 ") not matching the shape " + shape_str(v.shape) + " at " + std::to_string(v.nbits) +
                                 " bits (expected " + std::to_string(want) + ")");
}

void unpack_indices(const uint8_t* p, size_t nbytes, int nbits, int64_t first, int64_t count, uint8_t* out) {
  int64_t i = 0;
  // Unaligned head, one index at a time until a whole-byte group starts.
  const int per_group = nbits == 3 ? 8 : nbits == 6 ? 4 : 8 / std::max(1, nbits);
  while (i < count && (first + i) % per_group != 0) {
    out[i] = uint8_t(palettized_index_at(p, nbytes, nbits, first + i));
    ++i;
  }
  const uint8_t* q = p + size_t(uint64_t(first + i) * uint64_t(nbits) / 8);
  const int64_t groups = (count - i) / per_group;
  uint8_t* o = out + i;
  switch (nbits) {
    case 8:
      std::memcpy(o, q, size_t(groups));
      break;
    case 4:
      for (int64_t g = 0; g < groups; ++g) {
        o[2 * g] = q[g] & 15;
        o[2 * g + 1] = q[g] >> 4;
      }
      break;
    case 6:  // 4 indices in 3 bytes
      for (int64_t g = 0; g < groups; ++g) {
        const uint32_t w = uint32_t(q[3 * g]) | uint32_t(q[3 * g + 1]) << 8 | uint32_t(q[3 * g + 2]) << 16;
        o[4 * g] = w & 63;
        o[4 * g + 1] = (w >> 6) & 63;
        o[4 * g + 2] = (w >> 12) & 63;
        o[4 * g + 3] = (w >> 18) & 63;
      }
      break;
    case 3:  // 8 indices in 3 bytes
      for (int64_t g = 0; g < groups; ++g) {
        const uint32_t w = uint32_t(q[3 * g]) | uint32_t(q[3 * g + 1]) << 8 | uint32_t(q[3 * g + 2]) << 16;
        for (int k = 0; k < 8; ++k) o[8 * g + k] = (w >> (3 * k)) & 7;
      }
      break;
    case 2:
      for (int64_t g = 0; g < groups; ++g)
        for (int k = 0; k < 4; ++k) o[4 * g + k] = (q[g] >> (2 * k)) & 3;
      break;
    case 1:
      for (int64_t g = 0; g < groups; ++g)
        for (int k = 0; k < 8; ++k) o[8 * g + k] = (q[g] >> k) & 1;
      break;
    default:
      fail(ErrorCode::kInternal, "unpack_indices: bad width " + std::to_string(nbits));
  }
  i += groups * per_group;
  for (; i < count; ++i) out[i] = uint8_t(palettized_index_at(p, nbytes, nbits, first + i));
}

void decode_palettized(const PalettizedView& v, int64_t begin, int64_t end, float* out) {
  validate_palettized(v);
  const int64_t n = v.numel();
  if (begin < 0 || end < begin || end > n)
    fail(ErrorCode::kInvalidArgument, label(v) + ": range [" + std::to_string(begin) + ", " +
                                          std::to_string(end) + ") outside " + std::to_string(n) + " elements");
  if (begin == end) return;
  const std::vector<float> table = lut_as_f32(v, shape_numel(v.lut_shape));
  const int64_t palette = int64_t(1) << v.nbits;
  const int64_t vs = v.vector_size();
  constexpr int64_t kChunk = 4096;
  uint8_t buf[kChunk];

  // Fast path: every element reads the same table.
  if (vs == 1 && int64_t(table.size()) == palette) {
    const float* t = table.data();
    if (v.nbits == 6) {  // fused unpack + lookup, 4 indices per 3 bytes (SD's weights)
      int64_t e = begin;
      for (; e < end && e % 4 != 0; ++e) out[e - begin] = t[palettized_index_at(v.indices, v.indices_nbytes, 6, e)];
      const int64_t groups = (end - e) / 4;
      float* o = out + (e - begin);
      const uint8_t* q = v.indices + size_t(e / 4 * 3);
      for (int64_t g = 0; g < groups; ++g) {
        const uint32_t w = uint32_t(q[3 * g]) | uint32_t(q[3 * g + 1]) << 8 | uint32_t(q[3 * g + 2]) << 16;
        o[4 * g] = t[w & 63];
        o[4 * g + 1] = t[(w >> 6) & 63];
        o[4 * g + 2] = t[(w >> 12) & 63];
        o[4 * g + 3] = t[(w >> 18) & 63];
      }
      for (e += groups * 4; e < end; ++e) out[e - begin] = t[palettized_index_at(v.indices, v.indices_nbytes, 6, e)];
      return;
    }
    for (int64_t e = begin; e < end; e += kChunk) {
      const int64_t c = std::min(kChunk, end - e);
      unpack_indices(v.indices, v.indices_nbytes, v.nbits, e, c, buf);
      float* o = out + (e - begin);
      for (int64_t i = 0; i < c; ++i) o[i] = table[buf[i]];
    }
    return;
  }

  // General path, one row (last axis) at a time: per-group tables and vector entries.
  const size_t rank = v.shape.size();
  const Shape is = v.index_shape();
  Shape groups(rank, 1), block(rank, 1), istride(rank, 1), gstride(rank, 1);
  for (size_t k = 0; k < rank; ++k) {
    groups[k] = v.lut_shape.size() == rank + 2 ? v.lut_shape[k] : 1;
    block[k] = is[k] / groups[k];
  }
  for (size_t k = rank; k-- > 1;) {
    istride[k - 1] = istride[k] * is[k];
    gstride[k - 1] = gstride[k] * groups[k];
  }
  const int64_t last = v.shape[rank - 1];
  const bool vec_last = vs > 1 && size_t(v.vector_axis) == rank - 1;
  Shape m(rank, 0);  // dense multi-index of the current row
  int64_t rem = begin / last;
  for (size_t k = rank - 1; k-- > 0;) {
    m[k] = rem % v.shape[k];
    rem /= v.shape[k];
  }
  int64_t e = begin;
  while (e < end) {
    const int64_t j0 = e % last;
    const int64_t j1 = std::min(last, j0 + (end - e));
    int64_t ibase = 0, gbase = 0, vrow = 0;
    for (size_t k = 0; k + 1 < rank; ++k) {
      int64_t mi = m[k];
      if (vs > 1 && size_t(v.vector_axis) == k) {
        vrow = mi % vs;
        mi /= vs;
      }
      ibase += mi * istride[k];
      gbase += (mi / block[k]) * gstride[k];
    }
    float* o = out + (e - begin);
    if (vs == 1) {
      for (int64_t j = j0; j < j1; j += kChunk) {
        const int64_t c = std::min(kChunk, j1 - j);
        unpack_indices(v.indices, v.indices_nbytes, v.nbits, ibase + j, c, buf);
        for (int64_t t = 0; t < c; ++t) {
          const int64_t g = gbase + (j + t) / block[rank - 1];
          o[j - j0 + t] = table[size_t(g * palette + buf[t])];
        }
      }
    } else {
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t ij = vec_last ? j / vs : j;
        const int64_t vv = vec_last ? j % vs : vrow;
        const int64_t idx = palettized_index_at(v.indices, v.indices_nbytes, v.nbits, ibase + ij);
        const int64_t g = gbase + ij / block[rank - 1];
        o[j - j0] = table[size_t((g * palette + idx) * vs + vv)];
      }
    }
    e += j1 - j0;
    for (size_t k = rank - 1; k-- > 0;) {  // next row
      if (++m[k] < v.shape[k]) break;
      m[k] = 0;
    }
  }
}

}  // namespace sdpal
