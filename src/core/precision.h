// Compute precision of the GEMM-like kernels (cpu::Linear, cpu::Conv2d, cpu::attention).
//   F32:  fp32 everywhere; reproduces diffusers' fp32 output (the default).
//   BF16: weights stored in bfloat16 (converted once, half the memory), activations rounded to
//         bfloat16 at the kernel's input, products accumulated in fp32, outputs fp32. Runs on
//         AMX-BF16 / AVX512-BF16; results differ from fp32 by bf16 rounding (~3 significant digits).
// Activations stay fp32 in memory at every kernel interface in both modes.
#pragma once
#include <string>
#include <string_view>

#include "core/cpu_features.h"
#include "core/error.h"

namespace sdpal {

enum class Precision { F32, BF16 };

// True when this CPU runs bf16 compute natively (AVX512-BF16 dot products or AMX-BF16 tiles).
inline bool cpu_has_bf16() {
  const CpuFeatures& f = cpu_features();
  return f.avx512_core() && (f.avx512_bf16 || f.amx_bf16);
}

// BF16 where the CPU runs it natively, else F32.
inline Precision default_precision() { return cpu_has_bf16() ? Precision::BF16 : Precision::F32; }

inline const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "f32"; }

// "f32" / "fp32" / "float32", "bf16" / "bfloat16", or "auto" (default_precision()); anything else
// is a kInvalidArgument error naming the value.
inline Precision parse_precision(std::string_view s) {
  if (s == "f32" || s == "fp32" || s == "float32") return Precision::F32;
  if (s == "bf16" || s == "bfloat16") return Precision::BF16;
  if (s == "auto") return default_precision();
  fail(ErrorCode::kInvalidArgument, "unknown precision '" + std::string(s) + "' (expected f32, bf16 or auto)");
}

// Throws kUnsupported naming `what` when `p` is BF16 and the CPU cannot run bf16 natively
// (the kernels call this; oneDNN's emulated bf16 would be slower than fp32).
inline void require_precision_supported(Precision p, const std::string& what) {
  check(p == Precision::F32 || cpu_has_bf16(), ErrorCode::kUnsupported,
        what + ": bf16 precision needs a CPU with AVX512-BF16 or AMX-BF16 (this one has: " +
            cpu_features_str(cpu_features()) + "); use f32");
}

}  // namespace sdpal
