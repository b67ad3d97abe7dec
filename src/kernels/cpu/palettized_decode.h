// Table decode of a packed n-bit index stream straight into a kernel's weight buffer, fp32 or bf16:
// the per-call step of a palettized weight whose indices were re-packed at load in the order of the
// primitive's (blocked) weight layout (see dnnl_util::PackedWeights). Internal to src/kernels/cpu.
//
// The stream uses the packing of core/palettized.h: index i occupies bits [i*nbits, (i+1)*nbits)
// of the byte string, least significant bit first. Two implementations give the same bits:
// a portable one, and an AVX-512 one for CPUs with AVX512-VBMI (VPERMB/VPMULTISHIFTQB unpack 64
// indices from 8*nbits bytes; the table lookup is VPERMB on byte planes of the table, one plane per
// byte of the output type). decode_lut_stream picks the fast one at run time.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/palettized.h"

namespace sdpal::cpu::palettized {

enum class OutType { kF32, kBF16 };

// The values of one table of 2^nbits entries (nbits 1..8), in both output types. bf16 is fp32
// rounded to nearest even (core/dtype.h f32_to_bf16), as the dense bf16 weight path rounds.
struct DecodeTable {
  int nbits = 0;
  alignas(64) uint32_t f32[256] = {};   // fp32 bit patterns; entries >= 2^nbits are 0
  alignas(64) uint16_t bf16[256] = {};
  // The same split into byte planes for the vector kernel: plane k holds byte k of every entry.
  alignas(64) uint8_t f32_planes[4][256] = {};
  alignas(64) uint8_t bf16_planes[2][256] = {};
};

// Table of a view with a single table (lut_shape [2^nbits]); values exactly as decode_palettized
// produces them. Throws Error(kUnsupported) for grouped or vector tables.
DecodeTable make_decode_table(const PalettizedView& v);
// From fp32 values (2^nbits of them).
DecodeTable make_decode_table(int nbits, const float* values);

// Which implementation decodes.
enum class DecodeImpl { kAuto, kPortable, kAvx512Vbmi };

// True when the AVX-512 VBMI path can run here (and SDPAL_MAX_ISA does not cap below AVX-512).
bool fast_decode_available();

// out[j] = table[index(first + j)] for j < count, as fp32 or bf16 bits. `packed` is the whole
// stream of `nbytes` bytes; the range must lie inside it. kAvx512Vbmi on a CPU without it is an
// Error(kUnsupported). One thread.
void decode_lut_stream(const uint8_t* packed, size_t nbytes, int nbits, int64_t first, int64_t count,
                       const DecodeTable& table, OutType type, void* out, DecodeImpl impl = DecodeImpl::kAuto);

// The same over [0, count), split across all threads.
void decode_lut_stream_parallel(const uint8_t* packed, size_t nbytes, int nbits, int64_t count,
                                const DecodeTable& table, OutType type, void* out,
                                DecodeImpl impl = DecodeImpl::kAuto);

// Packs `count` byte indices (each < 2^nbits) into ceil(count * nbits / 8) bytes at out, in the
// stream format above; out[first * nbits / 8 ..] is written, with `first` a multiple of 8 (so that
// several threads can pack disjoint ranges). The last partial byte is zero-padded.
void pack_indices(const uint8_t* idx, int64_t first, int64_t count, int nbits, uint8_t* out);

namespace detail {
// The AVX-512 VBMI implementation (palettized_decode_avx512.cpp); only call when
// fast_decode_available(). `first` must be a multiple of 8.
void decode_avx512_vbmi(const uint8_t* packed, int nbits, int64_t first, int64_t count, const DecodeTable& table,
                        OutType type, void* out);
}  // namespace detail

}  // namespace sdpal::cpu::palettized
