// Palettized (look-up-table) weights, as Core ML's constexpr_lut_to_dense stores them: each
// element is an n-bit index into a small table of values. Weights stay packed in the mapped file;
// a kernel decodes the range it needs into scratch, never the whole model.
//
// Index packing (both opsets): indices are packed row-major, one byte at a time starting at the
// least significant bit; an index that straddles a byte boundary puts its low bits in the high
// bits of the first byte and the rest in the low bits of the next. The last byte is zero-padded.
//
// Tables:
// - iOS16/17 form: one table, lut_shape = [2^nbits]; every element e of the dense shape reads
//   lut[index[e]].
// - iOS18 form: lut_shape = [g_0, ..., g_{K-1}, 2^nbits, V] where K = rank of the dense shape.
//   Indices have the "index shape": the dense shape with shape[vector_axis] divided by V (equal to
//   the dense shape when V == 1). Axis k of the index shape is cut into g_k equal blocks; the index
//   at position (i_0..i_{K-1}) uses table (i_0 / (I_0/g_0), ..., i_{K-1} / (I_{K-1}/g_{K-1})).
//   Entry t of a table is a vector of V values; with V > 1 index position (.., i_a, ..) fills dense
//   positions (.., i_a*V + v, ..) for v in [0, V) along vector_axis a. LUT memory is row-major over
//   lut_shape, so the value is lut[((group * 2^nbits) + index) * V + v] with `group` the row-major
//   flat index over [g_0..g_{K-1}].
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace sdpal {

struct PalettizedView {
  std::string name;                 // for error messages (the MIL op or variable)
  Shape shape;                      // dense shape, e.g. [out, in, kh, kw]
  int nbits = 0;                    // 1, 2, 3, 4, 6 or 8
  const uint8_t* indices = nullptr; // packed indices (points into the mapped file)
  size_t indices_nbytes = 0;        // must be ceil(nbits * numel(index shape) / 8)
  DType lut_dtype = DType::F16;     // F16, F32, BF16, I8 or U8
  const uint8_t* lut = nullptr;     // table values, row-major over lut_shape
  size_t lut_nbytes = 0;            // numel(lut_shape) * dtype_size(lut_dtype)
  Shape lut_shape;                  // [2^nbits] or [g_0..g_{K-1}, 2^nbits, V] (see above)
  int vector_axis = -1;             // axis of `shape` that vector entries fill; needed when V > 1

  int64_t numel() const { return shape_numel(shape); }
  int64_t vector_size() const { return lut_shape.size() >= 2 ? lut_shape.back() : 1; }
  // The shape of the index tensor: `shape` with the vector axis divided by V.
  Shape index_shape() const;
};

// Throws Error(kFormat) naming the view if any field is inconsistent: nbits, table shape and size,
// group divisibility, vector axis, or "index bytes not matching the shape".
void validate_palettized(const PalettizedView& v);

// Decodes dense elements [begin, end) (row-major over v.shape) into out[0 .. end-begin).
// Validates the view first; throws Error(kInvalidArgument) for a bad range.
void decode_palettized(const PalettizedView& v, int64_t begin, int64_t end, float* out);

// The n-bit index at position i of an LSB-first packed stream of nbytes bytes (1 <= nbits <= 8); never
// reads past nbytes.
inline uint32_t palettized_index_at(const uint8_t* p, size_t nbytes, int nbits, int64_t i) {
  const uint64_t bit = uint64_t(i) * uint64_t(nbits);
  const size_t byte = size_t(bit >> 3);
  const unsigned shift = unsigned(bit & 7);
  uint32_t w = p[byte];
  if (shift + unsigned(nbits) > 8 && byte + 1 < nbytes) w |= uint32_t(p[byte + 1]) << 8;
  return (w >> shift) & ((1u << nbits) - 1u);
}

// Unpacks `count` n-bit indices starting at index `first` of an LSB-first packed stream of
// `nbytes` bytes into out (one byte each). The caller guarantees the range lies in the stream.
void unpack_indices(const uint8_t* packed, size_t nbytes, int nbits, int64_t first, int64_t count,
                    uint8_t* out);

}  // namespace sdpal
