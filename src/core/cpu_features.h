// Which instruction-set extensions this CPU (and OS) can run, detected once with CPUID/XGETBV.
// Kernels with hand-written SIMD paths dispatch on this at run time and keep a portable path.
#pragma once
#include <string>

namespace sdpal {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool avx512_fp16 = false;
  bool amx_tile = false;  // AMX also needs the kernel's XTILEDATA permission (oneDNN requests it)
  bool amx_bf16 = false;
  bool amx_int8 = false;

  // The AVX-512 subset our kernels compile their fast paths for (F, BW, DQ, VL + FMA).
  bool avx512_core() const { return avx512f && avx512bw && avx512dq && avx512vl && fma; }
  bool avx2_fma() const { return avx2 && fma; }
};

// Detected once. The environment variable SDPAL_MAX_ISA ("generic", "avx2", "avx512") caps what is
// reported, so the portable paths can be exercised on a machine that has more.
const CpuFeatures& cpu_features();

// True when AMX-BF16 tiles can be used by this process: the CPU has them (and cpu_features() is
// not capped below them) and Linux granted the tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM,
// requested on the first call; oneDNN makes the same request for its own AMX kernels).
bool amx_tiles_usable();

// Short human-readable list, e.g. "avx2 fma avx512f ... amx_bf16".
std::string cpu_features_str(const CpuFeatures& f);

}  // namespace sdpal
