// Cost of palettized (6-bit LUT) weights in cpu::Linear / cpu::Conv2d on Stable Diffusion v1.4's UNet
// layers (64x64 latents, batch 2 for classifier-free guidance), fp32 and bf16:
//   (a) dense prepared weights, (b) palettized with the legacy per-call decode (fp32 decode in the
//   dense order + a oneDNN reorder), (c) palettized with the indices re-packed in the primitive's
//   layout at load and table-decoded straight into its buffer (the default).
// Variants run alternately in one process, medians of --reps runs; "old+%" / "new+%" = (b - a) / a
// and (c - a) / a (table rows only). The decode alone (old / new, into the same layouts as the
// kernels' primitives) is timed separately for every layer ("old %" / "new %": decode / dense);
// weighted by how often each layer runs in one UNet step it gives the summary at the end. "repack"
// is the load-time cost of re-packing one instance.
//   bench_palettized [--threads N] [--reps R] [--precision f32|bf16|both] [--table-only] [filter]
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/precision.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "io/tensor_file.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/dnnl_context.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/palettized_decode.h"

using namespace sdpal;
namespace du = sdpal::cpu::dnnl_util;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

int g_reps = 5;
std::string g_filter;

// One layer of the UNet: a conv (k x k, stride s, input hw x hw) or a linear (m rows).
struct Layer {
  std::string name;
  bool conv;
  int64_t out, in;
  int k = 1, stride = 1;
  int64_t hw = 0;  // conv input size
  int64_t m = 0;   // linear rows
  int count = 1;   // times per UNet step
  bool table = false;  // one of the shapes the table reports
};

// SD v1.4 UNet, one step at 512x512 with CFG (batch 2). Transformer blocks: d -> d projections
// (proj_in, q, k, v, out, cross q, cross out, proj_out: 8), cross k/v 768 -> d at 2 x 77 rows,
// GEGLU d -> 8d, ff out 4d -> d; 5 blocks at each of 320 (64x64), 640 (32x32), 1280 (16x16), one
// at 8x8 (mid). 1x1 shortcuts are Conv2d; time projections are linears over 2 rows.
std::vector<Layer> unet_layers() {
  std::vector<Layer> L;
  auto conv = [&](int64_t o, int64_t i, int k, int s, int64_t hw, int count, bool table = false) {
    std::string n = "conv " + std::to_string(k) + "x" + std::to_string(k) + " " + std::to_string(i) + "->" +
                    std::to_string(o) + " @" + std::to_string(hw) + (s == 2 ? " s2" : "");
    L.push_back({n, true, o, i, k, s, hw, 0, count, table});
  };
  auto lin = [&](int64_t n, int64_t k, int64_t m, int count, const std::string& what, bool table = false) {
    L.push_back({"linear " + std::to_string(k) + "->" + std::to_string(n) + " M" + std::to_string(m) + " " + what,
                 false, n, k, 1, 1, 0, m, count, table});
  };
  conv(320, 4, 3, 1, 64, 1);  // conv_in
  conv(320, 320, 3, 1, 64, 7, true);
  conv(320, 320, 3, 2, 64, 1);
  conv(640, 320, 3, 1, 32, 1);
  conv(640, 640, 3, 1, 32, 6, true);
  conv(640, 320, 1, 1, 32, 1);
  conv(640, 640, 3, 2, 32, 1);
  conv(1280, 640, 3, 1, 16, 1);
  conv(1280, 1280, 3, 1, 16, 7, true);
  conv(1280, 640, 1, 1, 16, 1);
  conv(1280, 1280, 3, 2, 16, 1);
  conv(1280, 1280, 3, 1, 8, 11, true);  // down 3, mid, up 0 conv2
  conv(1280, 2560, 3, 1, 8, 3);
  conv(1280, 2560, 1, 1, 8, 3);
  conv(1280, 1280, 3, 1, 32, 1);  // up 1 upsampler (after 2x nearest)
  conv(1280, 2560, 3, 1, 16, 2);
  conv(1280, 1920, 3, 1, 16, 1);
  conv(1280, 2560, 1, 1, 16, 2);
  conv(1280, 1920, 1, 1, 16, 1);
  conv(640, 1920, 3, 1, 32, 1);
  conv(640, 1280, 3, 1, 32, 1);
  conv(640, 960, 3, 1, 32, 1);
  conv(640, 1920, 1, 1, 32, 1);
  conv(640, 1280, 1, 1, 32, 1);
  conv(640, 960, 1, 1, 32, 1);
  conv(640, 640, 3, 1, 64, 1);  // up 2 upsampler
  conv(320, 960, 3, 1, 64, 1);
  conv(320, 640, 3, 1, 64, 2);
  conv(320, 960, 1, 1, 64, 1);
  conv(320, 640, 1, 1, 64, 2);
  conv(4, 320, 3, 1, 64, 1);  // conv_out
  struct Level {
    int64_t d, m;
    int blocks;
  };
  for (const Level& l : {Level{320, 8192, 5}, Level{640, 2048, 5}, Level{1280, 512, 5}, Level{1280, 128, 1}}) {
    const bool t = l.d == 320;
    lin(l.d, l.d, l.m, 8 * l.blocks, "attn q/k/v/out, proj in/out", t);
    lin(l.d, 768, 154, 2 * l.blocks, "cross k/v", t);
    lin(8 * l.d, l.d, l.m, l.blocks, "GEGLU proj", t);
    lin(l.d, 4 * l.d, l.m, l.blocks, "ff out", t);
  }
  lin(1280, 320, 8192, 0, "(table only)", true);  // 320 -> 1280 over 2 x 4096 rows (1280 -> 320: ff out)
  lin(1280, 320, 2, 1, "time_embedding 1");
  lin(1280, 1280, 2, 1, "time_embedding 2");
  lin(320, 1280, 2, 5, "resnet time proj");
  lin(640, 1280, 2, 5, "resnet time proj");
  lin(1280, 1280, 2, 12, "resnet time proj");
  return L;
}

// Random 6-bit indices and a 64-entry fp16 table, as Core ML's SD models store them.
struct Packed {
  std::shared_ptr<std::vector<uint8_t>> bytes = std::make_shared<std::vector<uint8_t>>();
  TensorView view;
  Packed(const Shape& shape, uint32_t seed) {
    PalettizedView p;
    p.name = "bench";
    p.shape = shape;
    p.nbits = 6;
    const int64_t n = shape_numel(shape);
    p.indices_nbytes = size_t((n * 6 + 7) / 8);
    p.lut_dtype = DType::F16;
    p.lut_nbytes = 128;
    p.lut_shape = {64};
    bytes->resize(p.indices_nbytes + p.lut_nbytes);
    std::mt19937 gen(seed);
    for (size_t i = 0; i < p.indices_nbytes; ++i) (*bytes)[i] = uint8_t(gen());
    std::uniform_real_distribution<float> d(-0.1f, 0.1f);
    for (size_t i = 0; i < 64; ++i) {
      const uint16_t h = f32_to_f16(d(gen));
      std::memcpy(bytes->data() + p.indices_nbytes + 2 * i, &h, 2);
    }
    p.indices = bytes->data();
    p.lut = bytes->data() + p.indices_nbytes;
    view = palettized_tensor_view(std::move(p), bytes);
  }
};

TensorView dense_view(const Tensor& t) {
  TensorView v;
  v.name = "bench";
  v.dtype = DType::F32;
  v.shape = t.shape();
  v.data = static_cast<const uint8_t*>(t.raw());
  v.nbytes = t.nbytes();
  return v;
}

// The weight layout the kernels' primitives pick (mirrors Linear::Impl::make_pd and
// Conv2d::Impl::make_pd for a run without residual), for timing the decode alone.
memory::desc kernel_layout(const Layer& l, dt act) {
  const dnnl::primitive_attr attr = du::base_attr();
  if (!l.conv) {
    memory::desc src({l.m, l.in}, act, tag::ab), dst({l.m, l.out}, dt::f32, tag::ab);
    memory::desc w({l.in, l.out}, act, tag::any), b({1, l.out}, dt::f32, tag::ab);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, b, dst), attr, du::engine()).weights_desc();
  }
  const int64_t ho = (l.hw + 2 * (l.k / 2) - l.k) / l.stride + 1;
  memory::desc src({2, l.in, l.hw, l.hw}, act, tag::nhwc), dst({2, l.out, ho, ho}, dt::f32, tag::nhwc);
  memory::desc w({l.out, l.in, l.k, l.k}, act, tag::any), b({l.out}, dt::f32, tag::x);
  const int p = l.k / 2;
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, w,
                                    b, dst, {l.stride, l.stride}, {p, p}, {p, p});
  return dnnl::convolution_forward::primitive_desc(d, attr, du::engine()).weights_desc();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Runs the functions alternately (rotating which goes first), `reps` times each after a warm-up;
// returns the median milliseconds of each.
std::vector<double> alternate(const std::vector<std::function<void()>>& fns, int reps) {
  for (const auto& f : fns) f();
  std::vector<std::vector<double>> t(fns.size());
  for (int r = 0; r < reps; ++r)
    for (size_t j = 0; j < fns.size(); ++j) {
      const size_t i = (j + size_t(r)) % fns.size();
      auto t0 = std::chrono::steady_clock::now();
      fns[i]();
      t[i].push_back(ms_since(t0));
    }
  std::vector<double> med;
  for (auto& v : t) med.push_back(median(v));
  return med;
}

struct Result {
  double dense = 0, old_path = 0, new_path = 0;  // whole layer, ms
  double dec_old = 0, dec_new = 0;               // decode alone, ms
  double repack_ms = 0;                          // the load-time re-pack of this layer
  bool repacked = false;
};

Result run_layer(const Layer& l, Precision prec, bool full) {
  Result r;
  const dt act = prec == Precision::BF16 ? dt::bf16 : dt::f32;
  const Shape shape = l.conv ? Shape{l.out, l.in, l.k, l.k} : Shape{l.out, l.in};
  Packed w(shape, uint32_t(l.out * 7 + l.in));
  Tensor dense = to_f32(w.view);
  std::vector<float> bias_v(size_t(l.out), 0.01f);
  Tensor bias = Tensor::from_data({l.out}, bias_v.data());
  TensorView bv = dense_view(bias);

  // Decode alone, into the layout the kernel's primitive uses.
  const memory::desc layout = kernel_layout(l, act);
  const memory::desc plain = l.conv ? memory::desc({l.out, l.in, l.k, l.k}, dt::f32, tag::oihw)
                                    : memory::desc({l.in, l.out}, dt::f32, tag::ba);
  du::set_palettized_decode(du::PalettizedDecode::kLegacy);
  du::PackedWeights p_old(w.view.palettized, w.view.owner);
  auto l_old = p_old.prepare(plain, layout);
  du::set_palettized_decode(du::PalettizedDecode::kAuto);
  du::PackedWeights p_new(w.view.palettized, w.view.owner);
  auto t0 = std::chrono::steady_clock::now();
  auto l_new = p_new.prepare(plain, layout);
  r.repack_ms = ms_since(t0);
  r.repacked = l_new->repacked();
  auto dec = alternate({[&] { p_old.decode(*l_old, "old"); }, [&] { p_new.decode(*l_new, "new"); }},
                       std::max(g_reps, 7));
  r.dec_old = dec[0];
  r.dec_new = dec[1];

  if (l.conv) {
    Tensor x = Tensor::from_data({2, l.hw, l.hw, l.in}, std::vector<float>(size_t(2 * l.hw * l.hw * l.in), 0.5f).data());
    cpu::Conv2d a(dense_view(dense), &bv, l.stride, l.k / 2, prec);
    const int64_t ho = a.out_height(l.hw);
    Tensor y = Tensor::empty({2, ho, ho, l.out});
    // The decode mode is read when a kernel plans its first run: warm each up under its mode.
    du::set_palettized_decode(du::PalettizedDecode::kLegacy);
    cpu::Conv2d b(w.view, &bv, l.stride, l.k / 2, prec);
    b.run(x.f32(), 2, l.hw, l.hw, y.f32());
    du::set_palettized_decode(du::PalettizedDecode::kAuto);
    cpu::Conv2d c(w.view, &bv, l.stride, l.k / 2, prec);
    c.run(x.f32(), 2, l.hw, l.hw, y.f32());
    std::vector<std::function<void()>> fns{[&] { a.run(x.f32(), 2, l.hw, l.hw, y.f32()); }};
    if (full) {
      fns.push_back([&] { b.run(x.f32(), 2, l.hw, l.hw, y.f32()); });
      fns.push_back([&] { c.run(x.f32(), 2, l.hw, l.hw, y.f32()); });
    }
    auto t = alternate(fns, g_reps);
    r.dense = t[0];
    if (full) r.old_path = t[1], r.new_path = t[2];
  } else {
    Tensor x = Tensor::from_data({l.m, l.in}, std::vector<float>(size_t(l.m * l.in), 0.5f).data());
    Tensor y = Tensor::empty({l.m, l.out});
    cpu::Linear a(dense_view(dense), &bv, prec);
    du::set_palettized_decode(du::PalettizedDecode::kLegacy);
    cpu::Linear b(w.view, &bv, prec);
    b.run(x.f32(), l.m, y.f32());
    du::set_palettized_decode(du::PalettizedDecode::kAuto);
    cpu::Linear c(w.view, &bv, prec);
    std::vector<std::function<void()>> fns{[&] { a.run(x.f32(), l.m, y.f32()); }};
    if (full) {
      fns.push_back([&] { b.run(x.f32(), l.m, y.f32()); });
      fns.push_back([&] { c.run(x.f32(), l.m, y.f32()); });
    }
    auto t = alternate(fns, g_reps);
    r.dense = t[0];
    if (full) r.old_path = t[1], r.new_path = t[2];
  }
  return r;
}

// The decode kernel alone on a stream of n 6-bit indices, both output types: elements per ns.
void bench_kernel(int64_t n) {
  namespace pd = cpu::palettized;
  std::vector<uint8_t> packed(size_t(n * 6 / 8));
  std::mt19937 gen(1);
  for (uint8_t& b : packed) b = uint8_t(gen());
  std::vector<float> vals(64);
  for (int i = 0; i < 64; ++i) vals[size_t(i)] = 0.01f * float(i - 32);
  const pd::DecodeTable t = pd::make_decode_table(6, vals.data());
  std::vector<float> out(static_cast<size_t>(n));
  std::printf("decode kernel, %lld indices (%.1f MB of fp32):", (long long)n, double(n) * 4e-6);
  for (pd::OutType type : {pd::OutType::kF32, pd::OutType::kBF16}) {
    std::vector<std::function<void()>> fns{[&] {
      pd::decode_lut_stream_parallel(packed.data(), packed.size(), 6, n, t, type, out.data(), pd::DecodeImpl::kPortable);
    }};
    if (pd::fast_decode_available())
      fns.push_back([&] { pd::decode_lut_stream_parallel(packed.data(), packed.size(), 6, n, t, type, out.data()); });
    auto ms = alternate(fns, std::max(g_reps, 9));
    std::printf("  %s portable %.2f/ns", type == pd::OutType::kF32 ? "f32" : "bf16", double(n) / (ms[0] * 1e6));
    if (ms.size() > 1) std::printf(", avx512-vbmi %.2f/ns", double(n) / (ms[1] * 1e6));
  }
  std::printf("\n");
}

int run(int argc, char** argv) {
  std::vector<Precision> precs;
  bool table_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      set_num_threads(std::atoi(argv[++i]));
    } else if (a == "--reps" && i + 1 < argc) {
      g_reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--precision" && i + 1 < argc) {
      std::string p = argv[++i];
      if (p == "f32" || p == "both") precs.push_back(Precision::F32);
      if (p == "bf16" || p == "both") precs.push_back(Precision::BF16);
    } else if (a == "--table-only") {
      table_only = true;
    } else {
      g_filter = a;
    }
  }
  if (precs.empty()) {
    precs.push_back(Precision::F32);
    if (cpu_has_bf16()) precs.push_back(Precision::BF16);
  }
  std::printf("bench_palettized: %d threads, %d reps (medians), CPU: %s, fast decode: %s\n", num_threads(), g_reps,
              cpu_features_str(cpu_features()).c_str(),
              cpu::palettized::fast_decode_available() ? "AVX-512 VBMI" : "portable");
  bench_kernel(1 << 18);
  bench_kernel(1280 * 1280 * 9);
  for (Precision prec : precs) {
    const char* pn = prec == Precision::BF16 ? "bf16" : "f32";
    std::printf("\n[%s] 6-bit palettized, batch 2. dense = (a), old = (b) decode+reorder, new = (c) re-packed.\n", pn);
    std::printf("%-50s %5s %8s %8s %8s %7s %7s | %7s %7s %6s %6s %7s\n", "layer", "count", "dense", "old", "new",
                "old+%", "new+%", "dec old", "dec new", "old %", "new %", "repack");
    double sum_dense = 0, sum_old = 0, sum_new = 0, sum_repack = 0;
    for (const Layer& l : unet_layers()) {
      if (!g_filter.empty() && l.name.find(g_filter) == std::string::npos) continue;
      if (table_only && !l.table) continue;
      const bool full = l.table;
      Result r = run_layer(l, prec, full);
      sum_dense += l.count * r.dense;
      sum_old += l.count * r.dec_old;
      sum_new += l.count * r.dec_new;
      sum_repack += l.count * r.repack_ms;  // every instance is re-packed at load
      char whole[64] = "      -        -        -       -       -";
      if (full)
        std::snprintf(whole, sizeof whole, "%8.2f %8.2f %8.2f %6.1f%% %6.1f%%", r.dense, r.old_path, r.new_path,
                      100 * (r.old_path - r.dense) / r.dense, 100 * (r.new_path - r.dense) / r.dense);
      else
        std::snprintf(whole, sizeof whole, "%8.2f %8s %8s %7s %7s", r.dense, "-", "-", "-", "-");
      std::printf("%-50s %5d %s | %7.3f %7.3f %5.1f%% %5.1f%% %5.1fms%s\n", l.name.c_str(), l.count, whole, r.dec_old,
                  r.dec_new, 100 * r.dec_old / r.dense, 100 * r.dec_new / r.dense, r.repack_ms,
                  r.repacked ? "" : " (legacy)");
      std::fflush(stdout);
    }
    std::printf("[%s] UNet step estimate (sum over layers x count): conv+linear compute %.0f ms; per-call decode: "
                "old %.0f ms (%.1f%% of it), new %.0f ms (%.1f%%); re-pack at load %.0f ms\n",
                pn, sum_dense, sum_old, 100 * sum_old / sum_dense, sum_new, 100 * sum_new / sum_dense, sum_repack);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_palettized: %s\n", e.what());
    return 1;
  }
}
