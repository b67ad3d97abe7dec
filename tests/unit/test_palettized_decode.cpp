// The per-call decode of palettized weights (src/kernels/cpu/palettized_decode.h, dnnl_util::
// PackedWeights): the AVX-512 VBMI table decode equals the portable one bit for bit, the portable
// one equals core decode_palettized, and the indices re-packed in a oneDNN blocked layout decode to
// exactly what a oneDNN reorder of the dense weights gives (padding included).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/palettized.h"
#include "kernels/cpu/dnnl_context.h"
#include "kernels/cpu/palettized_decode.h"
#include "kernel_test_util.h"

namespace sdpal {
namespace {

namespace pd = cpu::palettized;
namespace du = cpu::dnnl_util;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> b(n);
  for (uint8_t& x : b) x = uint8_t(gen());
  return b;
}

pd::DecodeTable random_table(int nbits, uint32_t seed) {
  std::vector<float> v = testing::random_vec(size_t(1) << nbits, seed, -2.f, 2.f);
  v[0] = 0.f;
  if (v.size() > 2) v[1] = -0.f;
  return pd::make_decode_table(nbits, v.data());
}

// Decodes into a buffer with guard bytes around it; fails the test if a guard changes.
std::vector<uint8_t> decode(const std::vector<uint8_t>& packed, int nbits, int64_t first, int64_t count,
                            const pd::DecodeTable& t, pd::OutType type, pd::DecodeImpl impl) {
  const size_t es = type == pd::OutType::kF32 ? 4 : 2, guard = 64;
  std::vector<uint8_t> out(size_t(count) * es + 2 * guard, 0xA5);
  pd::decode_lut_stream(packed.data(), packed.size(), nbits, first, count, t, type, out.data() + guard, impl);
  for (size_t i = 0; i < guard; ++i) {
    EXPECT_EQ(out[i], 0xA5) << "write before the output";
    EXPECT_EQ(out[out.size() - 1 - i], 0xA5) << "write past the output";
  }
  return std::vector<uint8_t>(out.begin() + guard, out.end() - guard);
}

TEST(PalettizedDecode, FastEqualsPortableAllWidths) {
  if (!pd::fast_decode_available()) GTEST_SKIP() << "no AVX512-VBMI here";
  for (int nbits = 1; nbits <= 8; ++nbits) {
    const pd::DecodeTable t = random_table(nbits, 100 + nbits);
    for (int64_t count : {1, 5, 8, 63, 64, 65, 127, 128, 200, 1000, 4099}) {
      for (int64_t first : {0, 3, 8, 61, 64, 517}) {
        // The stream ends exactly at the last index's byte, so over-reads would be caught by ASan.
        const size_t nbytes = size_t(((first + count) * nbits + 7) / 8);
        const std::vector<uint8_t> packed = random_bytes(nbytes, uint32_t(nbits * 7919 + count * 31 + first));
        for (pd::OutType type : {pd::OutType::kF32, pd::OutType::kBF16}) {
          auto a = decode(packed, nbits, first, count, t, type, pd::DecodeImpl::kPortable);
          auto b = decode(packed, nbits, first, count, t, type, pd::DecodeImpl::kAvx512Vbmi);
          EXPECT_EQ(a, b) << "nbits " << nbits << " first " << first << " count " << count << " type "
                          << int(type);
        }
      }
    }
  }
}

TEST(PalettizedDecode, PortableMatchesCoreDecode) {
  for (int nbits : {1, 2, 3, 4, 6, 8}) {
    const int64_t n = 3 * 5 * 7 * 11;  // odd: a partial last byte for every width but 8
    PalettizedView v;
    v.name = "w";
    v.shape = {3 * 5, 7 * 11};
    v.nbits = nbits;
    std::vector<uint8_t> packed = random_bytes(size_t((n * nbits + 7) / 8), uint32_t(nbits));
    std::vector<float> lut = testing::random_vec(size_t(1) << nbits, 9);
    std::vector<uint8_t> lut16(lut.size() * 2);
    for (size_t i = 0; i < lut.size(); ++i) {
      const uint16_t h = f32_to_f16(lut[i]);
      std::memcpy(&lut16[2 * i], &h, 2);
    }
    v.indices = packed.data();
    v.indices_nbytes = packed.size();
    v.lut_dtype = DType::F16;
    v.lut = lut16.data();
    v.lut_nbytes = lut16.size();
    v.lut_shape = {int64_t(1) << nbits};
    std::vector<float> ref(static_cast<size_t>(n));
    decode_palettized(v, 0, n, ref.data());
    const pd::DecodeTable t = pd::make_decode_table(v);
    for (pd::DecodeImpl impl : {pd::DecodeImpl::kPortable, pd::DecodeImpl::kAuto}) {
      for (int64_t first : {0, 1, 13, 64}) {
        const int64_t count = n - first - 3;
        std::vector<float> f(static_cast<size_t>(count));
        pd::decode_lut_stream(packed.data(), packed.size(), nbits, first, count, t, pd::OutType::kF32, f.data(), impl);
        EXPECT_EQ(std::memcmp(f.data(), ref.data() + first, size_t(count) * 4), 0) << nbits << " bits from " << first;
        std::vector<uint16_t> b(static_cast<size_t>(count));
        pd::decode_lut_stream(packed.data(), packed.size(), nbits, first, count, t, pd::OutType::kBF16, b.data(),
                              impl);
        for (int64_t i = 0; i < count; ++i) ASSERT_EQ(b[size_t(i)], f32_to_bf16(ref[size_t(first + i)])) << i;
      }
    }
    // The parallel form over the whole stream.
    std::vector<float> all(static_cast<size_t>(n));
    pd::decode_lut_stream_parallel(packed.data(), packed.size(), nbits, n, t, pd::OutType::kF32, all.data());
    EXPECT_EQ(std::memcmp(all.data(), ref.data(), size_t(n) * 4), 0);
  }
}

TEST(PalettizedDecode, PackRoundTrips) {
  for (int nbits = 1; nbits <= 8; ++nbits) {
    const int64_t n = 1001;
    std::vector<uint8_t> idx = random_bytes(size_t(n), uint32_t(nbits));
    for (uint8_t& x : idx) x = uint8_t(x & ((1u << nbits) - 1));
    std::vector<uint8_t> packed(size_t((n * nbits + 7) / 8), 0xFF);
    pd::pack_indices(idx.data(), 0, 512, nbits, packed.data());  // two ranges, as threads pack them
    pd::pack_indices(idx.data() + 512, 512, n - 512, nbits, packed.data());
    if (nbits != 3 && nbits != 5 && nbits != 6 && nbits != 7) {  // widths unpack_indices handles
      std::vector<uint8_t> back(static_cast<size_t>(n));
      unpack_indices(packed.data(), packed.size(), nbits, 0, n, back.data());
      EXPECT_EQ(back, idx) << nbits;
    }
    std::vector<float> vals(256);
    for (int i = 0; i < 256; ++i) vals[size_t(i)] = float(i);
    const pd::DecodeTable t = pd::make_decode_table(nbits, vals.data());
    std::vector<float> f(static_cast<size_t>(n));
    pd::decode_lut_stream(packed.data(), packed.size(), nbits, 0, n, t, pd::OutType::kF32, f.data(),
                          pd::DecodeImpl::kPortable);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(f[size_t(i)], float(idx[size_t(i)])) << nbits << " at " << i;
  }
}

// A random single-table palettized view of `shape`, owning its bytes.
struct View {
  std::vector<uint8_t> bytes;
  std::shared_ptr<PalettizedView> v = std::make_shared<PalettizedView>();
  View(Shape shape, int nbits, uint32_t seed) {
    v->name = std::string(1, 'w');
    v->shape = shape;
    v->nbits = nbits;
    const int64_t n = shape_numel(shape);
    v->indices_nbytes = size_t((n * nbits + 7) / 8);
    v->lut_dtype = DType::F32;
    v->lut_nbytes = size_t(4) << nbits;
    v->lut_shape = {int64_t(1) << nbits};
    bytes = random_bytes(v->indices_nbytes + v->lut_nbytes, seed);
    std::vector<float> lut = testing::random_vec(size_t(1) << nbits, seed + 1);
    std::memcpy(bytes.data() + v->indices_nbytes, lut.data(), v->lut_nbytes);
    v->indices = bytes.data();
    v->lut = bytes.data() + v->indices_nbytes;
  }
};

// The re-packed decode into `layout` equals oneDNN's reorder of the dense fp32 weights into it.
void expect_layout_decodes(const Shape& shape, const memory::desc& plain, const memory::desc& layout, int nbits,
                           const std::string& what) {
  View w(shape, nbits, 77);
  std::vector<float> dense(size_t(shape_numel(shape)));
  decode_palettized(*w.v, 0, int64_t(dense.size()), dense.data());
  memory src(plain, du::engine(), dense.data());
  memory ref(layout, du::engine());
  std::memset(ref.get_data_handle(), 0x5A, layout.get_size());
  dnnl::stream s(du::engine());
  dnnl::reorder(src, ref).execute(s, src, ref);
  s.wait();
  for (du::PalettizedDecode mode : {du::PalettizedDecode::kAuto, du::PalettizedDecode::kPortable}) {
    du::set_palettized_decode(mode);
    du::PackedWeights pw(w.v, nullptr);
    auto prepared = pw.prepare(plain, layout);
    EXPECT_TRUE(prepared->repacked()) << what << ": " << prepared->legacy_reason;
    EXPECT_EQ(prepared->stream.size(), size_t((layout.get_size() / (layout.data.data_type == dnnl_f32 ? 4 : 2) * nbits + 7) / 8));
    // Garbage in the thread's buffer first: padding must be rewritten on every decode.
    memory got = pw.decode(*prepared, what);
    std::memset(got.get_data_handle(), 0x33, layout.get_size());
    got = pw.decode(*prepared, what);
    EXPECT_EQ(std::memcmp(got.get_data_handle(), ref.get_data_handle(), layout.get_size()), 0)
        << what << " mode " << int(mode);
  }
  du::set_palettized_decode(du::PalettizedDecode::kAuto);
}

TEST(PalettizedDecode, RepackedLayoutsMatchReorder) {
  struct Case {
    Shape conv;  // o, i, kh, kw
    tag t;
    dt type;
  };
  const std::vector<Case> convs = {
      {{320, 4, 3, 3}, tag::Acdb32a, dt::f32},        {{4, 320, 3, 3}, tag::Acdb16a, dt::f32},
      {{4, 320, 3, 3}, tag::AcdB16b16a2b, dt::bf16},  {{640, 320, 1, 1}, tag::Acdb48a, dt::f32},
      {{320, 320, 1, 1}, tag::AcdB64a2b, dt::bf16},   {{33, 17, 3, 3}, tag::OIhw16i16o, dt::f32},
      {{33, 17, 3, 3}, tag::ABcd16b16a2b, dt::bf16},  {{24, 32, 3, 3}, tag::AcdB32a2b, dt::bf16},
      {{7, 5, 3, 3}, tag::ABcd2b8a4b, dt::bf16},      {{40, 16, 1, 1}, tag::ohwi, dt::f32},
  };
  for (const Case& c : convs) {
    for (int nbits : {6, 4, 3}) {
      memory::desc plain({c.conv[0], c.conv[1], c.conv[2], c.conv[3]}, dt::f32, tag::oihw);
      memory::desc layout({c.conv[0], c.conv[1], c.conv[2], c.conv[3]}, c.type, c.t);
      expect_layout_decodes(c.conv, plain, layout, nbits, "conv " + shape_str(c.conv));
    }
  }
  // Linear: a torch [N, K] weight is the [K, N] matmul operand in "ba" order.
  struct Lin {
    int64_t n, k;
    tag t;
    dt type;
  };
  for (const Lin& l : {Lin{96, 200, tag::BA16a64b, dt::f32}, Lin{96, 200, tag::BA16a64b2a, dt::bf16},
                       Lin{1280, 320, tag::BA16a64b2a, dt::bf16}, Lin{320, 768, tag::BA16a64b, dt::f32},
                       Lin{33, 65, tag::AB16b64a2b, dt::bf16}, Lin{31, 9, tag::ab, dt::f32}}) {
    for (int nbits : {6, 8, 1}) {
      memory::desc plain({l.k, l.n}, dt::f32, tag::ba);
      memory::desc layout({l.k, l.n}, l.type, l.t);
      expect_layout_decodes({l.n, l.k}, plain, layout, nbits,
                            "linear " + std::to_string(l.n) + "x" + std::to_string(l.k));
    }
  }
}

TEST(PalettizedDecode, GroupedTablesUseTheLegacyPath) {
  View w({8, 6}, 4, 3);
  w.v->lut_shape = {2, 1, 16, 1};  // two tables of 16 fp32 entries: 8 more entries' bytes
  std::vector<float> lut = testing::random_vec(32, 4);
  w.bytes.resize(w.v->indices_nbytes + 128);
  std::memcpy(w.bytes.data() + w.v->indices_nbytes, lut.data(), 128);
  w.v->indices = w.bytes.data();
  w.v->lut = w.bytes.data() + w.v->indices_nbytes;
  w.v->lut_nbytes = 128;
  du::PackedWeights pw(w.v, nullptr);
  memory::desc plain({6, 8}, dt::f32, tag::ba);
  auto prepared = pw.prepare(plain, memory::desc({6, 8}, dt::f32, tag::BA16a64b));
  EXPECT_FALSE(prepared->repacked());
  EXPECT_EQ(pw.bytes(), w.v->indices_nbytes + w.v->lut_nbytes);
}

}  // namespace
}  // namespace sdpal
