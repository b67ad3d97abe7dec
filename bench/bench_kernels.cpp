// Throughput of the CPU kernels on Stable Diffusion v1.x's main shapes (512x512 images: 64x64
// latents, batch 2 for classifier-free guidance). Plain std::chrono timing; reports the best and
// median of several runs after a warm-up.
//   bench_kernels [--threads N] [--min-seconds S] [--precision f32|bf16|both] [filter-substring]
// --precision picks the compute precision of conv, linear and attention (default: both where the
// CPU has native bf16, else f32); names get a " [bf16]" suffix in bf16 mode.
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/precision.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "io/tensor_file.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/bf16_convert.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/norms.h"

using namespace sdpal;

namespace {

double g_min_seconds = 1.0;
std::string g_filter;
std::vector<Precision> g_precisions;

// Whether any benchmark named `name` (or one of its variants) passes the filter: skips building
// weights for benchmarks that will not run.
bool wanted(const std::string& name) {
  return g_filter.empty() || (name + " +residual in place [dnnl_sgemm baseline] [portable]").find(g_filter) != std::string::npos;
}

std::string suffixed(const char* name, Precision p) {
  return p == Precision::BF16 ? std::string(name) + " [bf16]" : std::string(name);
}

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

TensorView view(const std::vector<float>& v, const Shape& shape) {
  TensorView t;
  t.name = "bench";
  t.shape = shape;
  t.data = reinterpret_cast<const uint8_t*>(v.data());
  t.nbytes = v.size() * 4;
  return t;
}

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Runs fn once to warm up (primitive creation, page faults), then until min_seconds have passed
// (at least 3 runs). `work` is FLOPs (unit "GFLOP/s") or bytes moved (unit "GB/s"). "cpu" is the
// CPU time the process got over wall time x threads: below 100% the cores were shared (or threads
// idled), and the rates understate what the kernel does on a quiet machine.
void bench(const std::string& name, double work, const char* unit, const std::function<void()>& fn) {
  if (!wanted(name)) return;
  using clock = std::chrono::steady_clock;
  fn();
  std::vector<double> times;
  auto start = clock::now();
  const double cpu0 = process_cpu_seconds();
  while (times.size() < 3 || std::chrono::duration<double>(clock::now() - start).count() < g_min_seconds) {
    auto t0 = clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    if (times.size() >= 1000) break;
  }
  const double wall = std::chrono::duration<double>(clock::now() - start).count();
  const double util = (process_cpu_seconds() - cpu0) / (wall * num_threads());
  std::sort(times.begin(), times.end());
  double best = times.front(), median = times[times.size() / 2];
  std::printf("%-58s %9.3f ms (median %9.3f)  %7.1f %s (best) %7.1f (median)  cpu %3.0f%%\n", name.c_str(),
              best * 1e3, median * 1e3, work / best * 1e-9, unit, work / median * 1e-9, 100 * util);
  std::fflush(stdout);
}

// Independent FMA chains on every thread: the fp32 peak this machine delivers right now (with the
// cores shared, it is far below the nominal ~220 GFLOP/s per core).
__attribute__((target("avx512f,fma"))) float fma_loop(int64_t iters) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps(0.001f * float(j));
  const __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], b, c);
  alignas(64) float lanes[16];
  float sum = 0;
  for (int j = 0; j < 16; ++j) {
    _mm512_store_ps(lanes, acc[j]);
    for (float x : lanes) sum += x;
  }
  return sum;
}

void bench_peak() {
  if (!cpu_features().avx512_core()) return;
  const int64_t iters = 2000000, threads = num_threads();
  volatile float sink = 0;
  bench("fp32 FMA peak (AVX-512, all threads)", 2.0 * 16 * 16 * double(iters) * double(threads), "GFLOP/s", [&] {
    parallel_for(threads, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) sink = sink + fma_loop(iters);
    });
  });
}

void bench_conv(const char* base, int64_t n, int64_t hw, int64_t cin, int64_t cout, int k, int stride, Precision prec) {
  const std::string name = suffixed(base, prec);
  if (!wanted(name)) return;
  auto w = random_vec(size_t(cout * cin * k * k), 1), b = random_vec(size_t(cout), 2);
  TensorView wv = view(w, {cout, cin, k, k}), bv = view(b, {cout});
  cpu::Conv2d conv(wv, &bv, stride, k / 2, prec);
  Tensor x = Tensor::from_data({n, hw, hw, cin}, random_vec(size_t(n * hw * hw * cin), 3).data());
  const int64_t ho = conv.out_height(hw), wo = conv.out_width(hw);
  Tensor y = Tensor::empty({n, ho, wo, cout});
  double flops = 2.0 * double(n * ho * wo * cout) * double(cin * k * k);
  bench(name, flops, "GFLOP/s", [&] { conv.run(x.f32(), n, hw, hw, y.f32()); });
  Tensor res = y.clone();
  bench(name + " +residual", flops, "GFLOP/s", [&] { conv.run(x.f32(), n, hw, hw, y.f32(), res.f32()); });
  bench(name + " +residual in place", flops, "GFLOP/s", [&] { conv.run(x.f32(), n, hw, hw, y.f32(), y.f32()); });
}

void bench_linear(const char* base, int64_t m, int64_t k, int64_t n, Precision prec) {
  const std::string name = suffixed(base, prec);
  if (!wanted(name)) return;
  auto w = random_vec(size_t(n * k), 4), b = random_vec(size_t(n), 5);
  TensorView wv = view(w, {n, k}), bv = view(b, {n});
  cpu::Linear lin(wv, &bv, prec);
  auto x = random_vec(size_t(m * k), 6);
  std::vector<float> y(size_t(m * n)), res = random_vec(size_t(m * n), 7);
  double flops = 2.0 * double(m) * double(n) * double(k);
  bench(name, flops, "GFLOP/s", [&] { lin.run(x.data(), m, y.data()); });
  bench(name + " +residual", flops, "GFLOP/s", [&] { lin.run(x.data(), m, y.data(), res.data()); });
  bench(name + " +residual in place", flops, "GFLOP/s", [&] { lin.run(x.data(), m, y.data(), y.data()); });
  if (prec == Precision::F32) {
    // A plain oneDNN sgemm call (y = x W^T, no bias) for comparison: Linear must not be slower.
    bench(name + " [dnnl_sgemm baseline]", flops, "GFLOP/s", [&] {
      dnnl_sgemm('N', 'T', m, n, k, 1.f, x.data(), k, w.data(), k, 0.f, y.data(), n);
    });
  }
}

void bench_attention(const char* base, int64_t batch, int64_t heads, int64_t sq, int64_t sk, int64_t d,
                     bool portable_too, Precision prec) {
  const std::string name = suffixed(base, prec);
  if (!wanted(name)) return;
  if (prec == Precision::BF16) portable_too = false;
  cpu::AttentionShape s;
  s.precision = prec;
  s.batch = batch, s.heads = heads, s.q_len = sq, s.kv_len = sk, s.head_dim = d;
  s.scale = 1.f / std::sqrt(float(d));
  auto q = random_vec(size_t(batch * sq * heads * d), 8);
  auto k = random_vec(size_t(batch * sk * heads * d), 9);
  auto v = random_vec(size_t(batch * sk * heads * d), 10);
  std::vector<float> out(q.size());
  double flops = 4.0 * double(batch * heads) * double(sq) * double(sk) * double(d);
  bench(name, flops, "GFLOP/s", [&] { cpu::attention(s, q.data(), k.data(), v.data(), out.data()); });
  if (prec == Precision::BF16 && cpu_features().avx512_bf16 && amx_tiles_usable()) {
    // The AVX512-BF16 dot-product kernel, which cpu::attention uses only on CPUs without AMX.
    cpu::AttentionShape r = cpu::attention_detail::resolve(s);
    bench(name + " [avx512-bf16 kernel]", flops, "GFLOP/s",
          [&] { cpu::attention_detail::attention_avx512_bf16(r, q.data(), k.data(), v.data(), out.data()); });
  }
  if (portable_too) {
    cpu::AttentionShape r = cpu::attention_detail::resolve(s);
    bench(name + " [portable]", flops, "GFLOP/s",
          [&] { cpu::attention_detail::attention_portable(r, q.data(), k.data(), v.data(), out.data()); });
  }
}

}  // namespace

int run(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      set_num_threads(std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--min-seconds") && i + 1 < argc) {
      g_min_seconds = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc) {
      const std::string p = argv[++i];
      if (p == "both")
        g_precisions = {Precision::F32, Precision::BF16};
      else
        g_precisions = {parse_precision(p)};
    } else {
      g_filter = argv[i];
    }
  }
  if (g_precisions.empty()) {
    g_precisions = {Precision::F32};
    if (cpu_has_bf16()) g_precisions.push_back(Precision::BF16);
  }
  std::printf("threads %d, cpu: %s\n", num_threads(), cpu_features_str(cpu_features()).c_str());

  bench_peak();
  for (Precision prec : g_precisions) {
    bench_conv("conv 320->320 3x3 64x64 b2", 2, 64, 320, 320, 3, 1, prec);
    bench_conv("conv 1280->1280 3x3 8x8 b2", 2, 8, 1280, 1280, 3, 1, prec);
    bench_conv("conv 640->640 3x3 32x32 b2", 2, 32, 640, 640, 3, 1, prec);
    bench_conv("conv 640->640 3x3 s2 32x32 b2 (downsample)", 2, 32, 640, 640, 3, 2, prec);
    bench_conv("conv 4->320 3x3 64x64 b2 (conv_in)", 2, 64, 4, 320, 3, 1, prec);
    bench_linear("linear 8192x320x320 (4096 tokens b2)", 8192, 320, 320, prec);
    bench_linear("linear 8192x320->2560 (GEGLU proj)", 8192, 320, 2560, prec);
    bench_linear("linear 154x768->320 (cross-attn k/v)", 154, 768, 320, prec);
    bench_linear("linear 2x320->1280 (time embedding)", 2, 320, 1280, prec);
    bench_attention("attention self 4096x4096 d40 h8 b2", 2, 8, 4096, 4096, 40, false, prec);
    bench_attention("attention cross 4096x77 d40 h8 b2", 2, 8, 4096, 77, 40, false, prec);
    bench_attention("attention self 1024x1024 d80 h8 b2", 2, 8, 1024, 1024, 80, false, prec);
    bench_attention("attention self 256x256 d160 h8 b2", 2, 8, 256, 256, 160, false, prec);
    bench_attention("attention self 1024x1024 d64 h8 b2 (portable ref)", 2, 8, 1024, 1024, 64, true, prec);
    bench_attention("attention VAE 4096x4096 d512 h1 b1", 1, 1, 4096, 4096, 512, false, prec);
  }
  {
    const int64_t n = 2, hw = 4096, c = 320;
    auto x = random_vec(size_t(n * hw * c), 11), g = random_vec(size_t(c), 12), b = random_vec(size_t(c), 13);
    std::vector<float> y(x.size());
    bench("group_norm+silu [2, 4096, 320] g32", 3.0 * 4 * double(x.size()), "GB/s",
          [&] { cpu::group_norm(x.data(), y.data(), n, hw, c, 32, g.data(), b.data(), 1e-5f, true); });
    bench("layer_norm [8192, 320]", 2.0 * 4 * double(x.size()), "GB/s",
          [&] { cpu::layer_norm(x.data(), y.data(), n * hw, c, g.data(), b.data(), 1e-5f); });
    auto gx = random_vec(size_t(8192 * 2560), 14);
    std::vector<float> gy(gx.size() / 2);
    bench("geglu [8192, 2*1280]", 4.0 * 1.5 * double(gx.size()), "GB/s",
          [&] { cpu::geglu(gx.data(), gy.data(), 8192, 1280); });
    std::vector<uint16_t> xb(x.size());
    bench("f32->bf16 convert [8192, 320] (bf16 input pass)", 6.0 * double(x.size()), "GB/s",
          [&] { cpu::f32_to_bf16_parallel(x.data(), xb.data(), int64_t(x.size())); });
    {
      using dnnl::memory;
      static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
      dnnl::stream strm(eng);
      memory a({{int64_t(x.size())}, memory::data_type::f32, memory::format_tag::a}, eng, x.data());
      memory bm({{int64_t(x.size())}, memory::data_type::bf16, memory::format_tag::a}, eng, xb.data());
      dnnl::reorder r(a, bm);
      bench("f32->bf16 convert [8192, 320] [oneDNN reorder]", 6.0 * double(x.size()), "GB/s", [&] {
        r.execute(strm, a, bm);
        strm.wait();
      });
    }
    bench("silu [2, 4096, 320]", 2.0 * 4 * double(x.size()), "GB/s", [&] { cpu::silu(y.data(), int64_t(y.size())); });
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // sdpal::Error (bad --precision, kernel errors)
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
}
