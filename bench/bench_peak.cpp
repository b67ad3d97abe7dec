// This machine's arithmetic peak, measured: the ceiling the kernel GFLOP/s are compared with.
//   fp32 FMA     AVX-512 VFMADD231PS, 24 independent accumulators    (32 flop / instruction)
//   bf16 dot     AVX512-BF16 VDPBF16PS, 24 independent accumulators  (64 flop / instruction)
//   AMX bf16     TDPBF16PS on 4 independent 16x16 fp32 tiles          (16384 flop / instruction)
// Each runs on 1 thread and on all threads (one copy per thread, OpenMP); best of several runs.
// "GFLOP/s" is all threads' work over the wall time of the slowest; "sum of threads" adds each
// thread's own best rate (timed inside the thread), which stays meaningful when other processes
// share the cores (then the wall-time number mostly measures the sharing). "cpu" is the CPU time
// the process got over wall time x threads: below 100% the cores were shared.
//   bench_peak [--threads N] [--min-seconds S] [--json]
// GCC 12 reports -Wuninitialized inside immintrin.h for _mm512_reduce_add_ps (it uses
// _mm512_undefined_ps() as a don't-care operand): a false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/threads.h"

using namespace sdpal;

namespace {

// One call of a kernel: runs `iters` iterations and returns a value that depends on the results.
using Kernel = float (*)(int64_t iters);

__attribute__((target("avx512f,fma"))) float fma_kernel(int64_t iters) {
  __m512 acc[24];
  for (int j = 0; j < 24; ++j) acc[j] = _mm512_set1_ps(0.001f * float(j));
  const __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < 24; ++j) acc[j] = _mm512_fmadd_ps(acc[j], b, c);
  }
  __m512 s = acc[0];
  for (int j = 1; j < 24; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}
constexpr double kFmaFlopsPerIter = 24.0 * 16 * 2;

__attribute__((target("avx512f,avx512bw,avx512bf16"))) float dpbf16_kernel(int64_t iters) {
  __m512 acc[24];
  for (int j = 0; j < 24; ++j) acc[j] = _mm512_set1_ps(0.001f * float(j));
  // bf16 pairs (0.5, 0.25) and (0.001, 0.001): small products keep the sums finite.
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3e803f00), b = (__m512bh)_mm512_set1_epi32(0x3a833a83);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < 24; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < 24; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}
constexpr double kDpbf16FlopsPerIter = 24.0 * 16 * 2 * 2;

// AMX: the process must ask the kernel for the tile-data state once (Linux >= 5.16).
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

bool amx_permission() {
  static const bool ok = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return ok;
}

struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0..3: C (16 x 16 fp32); tmm4, tmm5: A (16 rows x 32 bf16); tmm6, tmm7: B (16 pair-rows x 16 x 2).
__attribute__((target("amx-tile,amx-bf16"))) float amx_kernel(int64_t iters) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  alignas(64) static const uint16_t ones[16 * 32] = {};  // zeros: timing does not depend on values
  alignas(64) float out[16 * 16];
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  float s = out[0];
  _tile_stored(3, out, 64);
  s += out[255];
  _tile_release();
  return s;
}
constexpr double kAmxFlopsPerIter = 4.0 * 16 * 16 * 32 * 2;

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Result {
  std::string name;
  int threads = 0;
  double gflops = 0, thread_sum = 0, cpu_util = 0;
};

// Best rate over repeated runs of `iters` iterations on `threads` threads (until min_seconds).
Result measure(const char* name, Kernel k, double flops_per_iter, int64_t iters, int threads, double min_seconds) {
  using clock = std::chrono::steady_clock;
  volatile float sink = 0;
  std::vector<double> thread_best(size_t(threads), 0.0);
  auto run_once = [&] {
#pragma omp parallel num_threads(threads)
    {
      const auto t0 = clock::now();
      float r = k(iters);
      const double t = std::chrono::duration<double>(clock::now() - t0).count();
      double& best = thread_best[size_t(omp_get_thread_num())];
      best = std::max(best, flops_per_iter * double(iters) / t * 1e-9);
#pragma omp critical
      sink = sink + r;
    }
  };
  run_once();  // warm-up: thread start, frequency ramp, AMX state allocation
  std::fill(thread_best.begin(), thread_best.end(), 0.0);
  Result res{name, threads, 0, 0, 0};
  const auto start = clock::now();
  const double cpu0 = process_cpu_seconds();
  int runs = 0;
  while (runs < 5 || std::chrono::duration<double>(clock::now() - start).count() < min_seconds) {
    const auto t0 = clock::now();
    run_once();
    const double t = std::chrono::duration<double>(clock::now() - t0).count();
    res.gflops = std::max(res.gflops, flops_per_iter * double(iters) * threads / t * 1e-9);
    if (++runs >= 1000) break;
  }
  const double wall = std::chrono::duration<double>(clock::now() - start).count();
  res.cpu_util = (process_cpu_seconds() - cpu0) / (wall * threads);
  for (double b : thread_best) res.thread_sum += b;
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double min_seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json")) {
      json = true;
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      set_num_threads(std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--min-seconds") && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_peak [--threads N] [--min-seconds S] [--json]\n");
      return 2;
    }
  }
  const CpuFeatures& f = cpu_features();
  const int all = num_threads();
  std::vector<int> thread_counts{1};
  if (all > 1) thread_counts.push_back(all);

  std::vector<Result> results;
  std::vector<std::string> skipped;
  for (int t : thread_counts) {
    // ~2-20 ms per run per thread at nominal clocks.
    if (f.avx512_core())
      results.push_back(measure("fp32 FMA (AVX-512)", fma_kernel, kFmaFlopsPerIter, 200000, t, min_seconds));
    else if (t == 1)
      skipped.push_back("fp32 FMA (AVX-512): no AVX-512");
    if (f.avx512_core() && f.avx512_bf16)
      results.push_back(measure("bf16 dot (AVX512-BF16)", dpbf16_kernel, kDpbf16FlopsPerIter, 200000, t, min_seconds));
    else if (t == 1)
      skipped.push_back("bf16 dot (AVX512-BF16): not on this CPU");
    if (f.amx_tile && f.amx_bf16 && amx_permission())
      results.push_back(measure("bf16 AMX (TDPBF16PS)", amx_kernel, kAmxFlopsPerIter, 20000, t, min_seconds));
    else if (t == 1)
      skipped.push_back(f.amx_bf16 ? "bf16 AMX: the kernel refused the tile-data permission" : "bf16 AMX: not on this CPU");
  }

  if (json) {
    std::printf("{\n  \"cpu\": \"%s\",\n  \"threads\": %d,\n  \"peaks\": [\n", cpu_features_str(f).c_str(), all);
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf(
          "    {\"name\": \"%s\", \"threads\": %d, \"gflops\": %.1f, \"thread_sum_gflops\": %.1f, \"cpu_util\": %.2f}%s\n",
          r.name.c_str(), r.threads, r.gflops, r.thread_sum, r.cpu_util, i + 1 < results.size() ? "," : "");
    }
    std::printf("  ],\n  \"skipped\": [");
    for (size_t i = 0; i < skipped.size(); ++i)
      std::printf("%s\"%s\"", i ? ", " : "", skipped[i].c_str());
    std::printf("]\n}\n");
    return 0;
  }
  std::printf("cpu: %s\n%-26s %8s %12s %16s %6s\n", cpu_features_str(f).c_str(), "peak", "threads", "GFLOP/s",
              "sum of threads", "cpu");
  for (const Result& r : results)
    std::printf("%-26s %8d %12.1f %16.1f %5.0f%%\n", r.name.c_str(), r.threads, r.gflops, r.thread_sum,
                100 * r.cpu_util);
  for (const std::string& s : skipped) std::printf("skipped: %s\n", s.c_str());
  return 0;
}
