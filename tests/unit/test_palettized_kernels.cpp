// cpu::Linear / cpu::Conv2d on palettized weights (DESIGN.md, "Weights that stay packed"): the
// kernels keep the packed indices + LUT and decode one layer per run(); results must equal the
// dense path on the same decoded weights, bit for bit, and the resident weights must be the packed
// bytes. DISABLED_Speed reports the decode overhead against the GEMM on SD v1.4 shapes:
//   ./test_palettized_kernels --gtest_also_run_disabled_tests --gtest_filter='*Speed*'
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/palettized.h"
#include "core/precision.h"
#include "io/tensor_file.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/dnnl_context.h"
#include "kernels/cpu/linear.h"
#include "kernel_test_util.h"

namespace sdpal {
namespace {

using testing::random_vec;

// Owns the packed bytes of a random palettized weight; the view's `owner` shares it.
struct PackedWeight {
  std::shared_ptr<std::vector<uint8_t>> bytes = std::make_shared<std::vector<uint8_t>>();
  TensorView view;

  // iOS16 form (one table of 2^nbits fp16 values) or, with per_channel, iOS18 grouped tables:
  // one table per output channel.
  PackedWeight(const std::string& name, Shape shape, int nbits, uint32_t seed, bool per_channel = false) {
    PalettizedView p;
    p.name = name;
    p.shape = shape;
    p.nbits = nbits;
    const int64_t n = shape_numel(shape);
    const int64_t palette = int64_t(1) << nbits;
    const int64_t tables = per_channel ? shape[0] : 1;
    p.indices_nbytes = size_t((n * nbits + 7) / 8);
    p.lut_dtype = DType::F16;
    p.lut_nbytes = size_t(tables * palette * 2);
    if (per_channel) {
      p.lut_shape = Shape(shape.size(), 1);
      p.lut_shape[0] = tables;
      p.lut_shape.push_back(palette);
      p.lut_shape.push_back(1);
    } else {
      p.lut_shape = {palette};
    }
    bytes->resize(p.indices_nbytes + p.lut_nbytes);
    std::mt19937 gen(seed);
    for (size_t i = 0; i < p.indices_nbytes; ++i) (*bytes)[i] = uint8_t(gen());
    std::vector<float> lut = random_vec(size_t(tables * palette), seed + 1, -0.1f, 0.1f);
    for (size_t i = 0; i < lut.size(); ++i) {
      const uint16_t h = f32_to_f16(lut[i]);
      std::memcpy(bytes->data() + p.indices_nbytes + 2 * i, &h, 2);
    }
    p.indices = bytes->data();
    p.lut = bytes->data() + p.indices_nbytes;
    view = palettized_tensor_view(std::move(p), bytes);
  }
};

TensorView dense_view(const Tensor& t, const std::string& name) {
  TensorView v;
  v.name = name;
  v.dtype = DType::F32;
  v.shape = t.shape();
  v.data = static_cast<const uint8_t*>(t.raw());
  v.nbytes = t.nbytes();
  return v;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Every per-call decode: the re-packed stream with the fast (where the CPU has it) and the portable
// kernel, and the legacy decode + reorder. Kernels keep the mode they were planned with.
std::vector<cpu::dnnl_util::PalettizedDecode> decode_modes() {
  using M = cpu::dnnl_util::PalettizedDecode;
  return {M::kAuto, M::kPortable, M::kLegacy};
}
struct DecodeMode {
  explicit DecodeMode(cpu::dnnl_util::PalettizedDecode m) { cpu::dnnl_util::set_palettized_decode(m); }
  ~DecodeMode() { cpu::dnnl_util::set_palettized_decode(cpu::dnnl_util::PalettizedDecode::kAuto); }
};

std::vector<Precision> precisions() {
  std::vector<Precision> p{Precision::F32};
  if (cpu_has_bf16()) p.push_back(Precision::BF16);
  return p;
}

TEST(PalettizedTensorView, ToF32Decodes) {
  PackedWeight w("w", {8, 5}, 6, 1);
  EXPECT_TRUE(w.view.is_palettized());
  EXPECT_EQ(w.view.data, nullptr);
  EXPECT_EQ(w.view.nbytes, size_t((40 * 6 + 7) / 8 + 64 * 2));
  Tensor t = to_f32(w.view);
  std::vector<float> ref(40);
  decode_palettized(*w.view.palettized, 0, 40, ref.data());
  EXPECT_EQ(std::memcmp(t.f32(), ref.data(), 160), 0);
}

TEST(PalettizedLinear, MatchesDenseBitExact) {
  for (auto mode : decode_modes()) {
    DecodeMode dm(mode);
    for (Precision prec : precisions()) {
      for (bool per_channel : {false, true}) {
        for (int nbits : {6, 4, 8}) {
          // 200 x 96: a layout padded to whole blocks (oneDNN pads K to 208/224 and N to 128).
          const int64_t n = 96, k = 200;
          PackedWeight w("lin.weight", {n, k, 1, 1}, nbits, 7 + nbits, per_channel);
          Tensor dense = to_f32(w.view);
          Tensor bias = Tensor::from_data({n}, random_vec(size_t(n), 3).data());
          TensorView bv = dense_view(bias, "lin.bias");
          cpu::Linear packed(w.view, &bv, prec);
          cpu::Linear ref(dense_view(dense, "lin.weight"), &bv, prec);
          // Resident: packed indices (re-packed over the padded layout) + the table, no float copy.
          EXPECT_GE(packed.weight_bytes(), w.view.nbytes);
          EXPECT_LE(packed.weight_bytes(), size_t(224 * 128 * nbits / 8) + w.view.palettized->lut_nbytes);
          if (per_channel || mode == cpu::dnnl_util::PalettizedDecode::kLegacy) {
            EXPECT_EQ(packed.weight_bytes(), w.view.nbytes);  // the source bytes only
          } else {
            EXPECT_GT(packed.weight_bytes(), w.view.nbytes);  // re-packed over the padded layout
          }
          EXPECT_GE(ref.weight_bytes(), size_t(n * k) * (prec == Precision::F32 ? 4 : 2));
          for (int64_t m : {1, 77, 256}) {
            Tensor x = Tensor::from_data({m, k}, random_vec(size_t(m * k), 11 + m).data());
            Tensor r = Tensor::from_data({m, n}, random_vec(size_t(m * n), 12 + m).data());
            EXPECT_TRUE(bit_equal(packed.run(x), ref.run(x))) << "m=" << m << " nbits=" << nbits;
            EXPECT_TRUE(bit_equal(packed.run(x, &r), ref.run(x, &r))) << "residual m=" << m;
          }
        }
      }
    }
  }
}

TEST(PalettizedLinear, UnpaddedLayoutKeepsThePackedSize) {
  // 320 x 1024 (an SD attention k projection): whole blocks, so the re-packed stream is exactly
  // the source's size, made at construction.
  PackedWeight w("to_k.weight", {320, 1024}, 6, 3);
  for (Precision prec : precisions()) {
    cpu::Linear lin(w.view, nullptr, prec);
    EXPECT_EQ(lin.weight_bytes(), size_t(320 * 1024 * 6 / 8 + 64 * 2));
  }
}

TEST(PalettizedLinear, KeepsItsPackedBytesAlive) {
  auto w = std::make_unique<PackedWeight>("lin.weight", Shape{32, 48}, 6, 5);
  Tensor dense = to_f32(w->view);
  cpu::Linear packed(w->view, nullptr);
  cpu::Linear ref(dense_view(dense, "lin.weight"), nullptr);
  w.reset();  // the kernel's owner reference keeps the bytes
  Tensor x = Tensor::from_data({4, 48}, random_vec(4 * 48, 2).data());
  EXPECT_TRUE(bit_equal(packed.run(x), ref.run(x)));
}

TEST(PalettizedLinear, RejectsMismatchedShape) {
  PackedWeight w("lin.weight", {32, 48}, 6, 5);
  TensorView v = w.view;
  v.shape = {48, 32};
  EXPECT_THROW(cpu::Linear(v, nullptr), Error);
}

TEST(PalettizedConv2d, MatchesDenseBitExact) {
  struct Case {
    int64_t o, i, k;
    int stride, pad;
    int64_t h, w;
  };
  for (auto mode : decode_modes()) {
    DecodeMode dm(mode);
    for (Precision prec : precisions()) {
      // The SD conv_in (4 -> 320) and conv_out (320 -> 4, output channels padded to a block) shapes,
      // and small odd ones; 16 x 32 uses grouped tables (the legacy path).
      for (const Case& c : {Case{32, 24, 3, 1, 1, 12, 10}, Case{16, 32, 3, 2, 1, 9, 9}, Case{40, 16, 1, 1, 0, 8, 8},
                            Case{320, 4, 3, 1, 1, 8, 8}, Case{4, 320, 3, 1, 1, 8, 8}, Case{72, 40, 1, 1, 0, 5, 7}}) {
        PackedWeight w("conv.weight", {c.o, c.i, c.k, c.k}, 6, uint32_t(c.o + c.i), c.o == 16);
        Tensor dense = to_f32(w.view);
        Tensor bias = Tensor::from_data({c.o}, random_vec(size_t(c.o), 4).data());
        TensorView bv = dense_view(bias, "conv.bias");
        cpu::Conv2d packed(w.view, &bv, c.stride, c.pad, prec);
        cpu::Conv2d ref(dense_view(dense, "conv.weight"), &bv, c.stride, c.pad, prec);
        EXPECT_EQ(packed.weight_bytes(), w.view.nbytes);  // before the first run: the source bytes
        Tensor x = Tensor::from_data({2, c.h, c.w, c.i}, random_vec(size_t(2 * c.h * c.w * c.i), 9).data());
        Tensor y = ref.run(x);
        EXPECT_TRUE(bit_equal(packed.run(x), y)) << c.o << "x" << c.i << "x" << c.k << " mode " << int(mode);
        Tensor r = Tensor::from_data(y.shape(), random_vec(size_t(y.numel()), 10).data());
        EXPECT_TRUE(bit_equal(packed.run(x, &r), ref.run(x, &r))) << c.o << "x" << c.i << " residual";
        EXPECT_TRUE(bit_equal(packed.run(x), y)) << "second run";
        // Packed per prepared layout: far below the dense copies of the same layouts.
        EXPECT_LT(packed.weight_bytes(), ref.weight_bytes() / 2 + w.view.palettized->lut_nbytes);
      }
    }
  }
}

// Resident set size in bytes (Linux), 0 when unknown.
size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  if (!(f >> pages >> resident)) return 0;
  return resident * 4096;
}

double ms_per_call(const std::function<void()>& fn, int reps) {
  fn();  // warm-up: plans, scratch
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

TEST(PalettizedKernels, DISABLED_Speed) {
  for (Precision prec : precisions()) {
    const char* pn = prec == Precision::F32 ? "fp32" : "bf16";
    {  // SD v1.4 feed-forward at 16x16 latents (512 px, CFG batch 2): 1280 -> 5120, M = 512
      const int64_t m = 512, k = 1280, n = 5120;
      PackedWeight w("ff.weight", {n, k}, 6, 1);
      Tensor dense = to_f32(w.view);
      size_t r0 = rss_bytes();
      cpu::Linear packed(w.view, nullptr, prec);
      size_t r1 = rss_bytes();
      cpu::Linear ref(dense_view(dense, "ff.weight"), nullptr, prec);
      size_t r2 = rss_bytes();
      Tensor x = Tensor::from_data({m, k}, random_vec(size_t(m * k), 2).data());
      Tensor y = Tensor::empty({m, n});
      std::vector<float> scratch(size_t(n * k));
      double t_dec = ms_per_call([&] { cpu::decode_palettized_weight(*w.view.palettized, scratch.data()); }, 10);
      double t_ref = ms_per_call([&] { ref.run(x.f32(), m, y.f32()); }, 10);
      double t_pk = ms_per_call([&] { packed.run(x.f32(), m, y.f32()); }, 10);
      std::printf("[ speed    ] %s Linear %lldx%lld M=%lld: dense %.2f ms, packed %.2f ms (+%.2f ms, %.0f%%; "
                  "decode alone %.2f ms); weights resident: packed %zu B (RSS +%zu KiB), dense %zu B (RSS +%zu KiB)\n",
                  pn, (long long)n, (long long)k, (long long)m, t_ref, t_pk, t_pk - t_ref, 100 * (t_pk - t_ref) / t_ref,
                  t_dec, packed.weight_bytes(), (r1 - r0) / 1024, ref.weight_bytes(), (r2 - r1) / 1024);
    }
    {  // SD v1.4 down block 0: conv 320 -> 320, 3x3 at 64x64, batch 2
      const int64_t c = 320, h = 64;
      PackedWeight w("conv.weight", {c, c, 3, 3}, 6, 2);
      Tensor dense = to_f32(w.view);
      cpu::Conv2d packed(w.view, nullptr, 1, 1, prec);
      cpu::Conv2d ref(dense_view(dense, "conv.weight"), nullptr, 1, 1, prec);
      Tensor x = Tensor::from_data({2, h, h, c}, random_vec(size_t(2 * h * h * c), 3).data());
      Tensor y = Tensor::empty({2, h, h, c});
      std::vector<float> scratch(size_t(c * c * 9));
      double t_dec = ms_per_call([&] { cpu::decode_palettized_weight(*w.view.palettized, scratch.data()); }, 10);
      double t_ref = ms_per_call([&] { ref.run(x.f32(), 2, h, h, y.f32()); }, 5);
      double t_pk = ms_per_call([&] { packed.run(x.f32(), 2, h, h, y.f32()); }, 5);
      std::printf("[ speed    ] %s Conv2d 320x320x3x3 on 2x64x64: dense %.2f ms, packed %.2f ms (+%.2f ms, %.1f%%; "
                  "decode alone %.2f ms); weights: packed %zu B, dense %zu B\n",
                  pn, t_ref, t_pk, t_pk - t_ref, 100 * (t_pk - t_ref) / t_ref, t_dec, packed.weight_bytes(),
                  ref.weight_bytes());
    }
  }
}

}  // namespace
}  // namespace sdpal
