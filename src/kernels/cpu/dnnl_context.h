// Shared oneDNN plumbing for the kernels that use it (Linear, Conv2d): one CPU engine, a stream
// per thread, per-thread scratchpads, and weights kept in whatever blocked layouts the primitives
// ask for. Internal to src/kernels/cpu.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/page_buffer.h"
#include "core/palettized.h"

namespace sdpal::cpu::dnnl_util {

const dnnl::engine& engine();

// Attributes every primitive starts from: strict fp32 math (an environment default of bf16 must not
// silently change results) and a caller-provided scratchpad, so one primitive can run on several
// threads at once.
dnnl::primitive_attr base_attr();

// Runs `prim` on this thread's stream with a scratchpad of `scratch_md` (this thread's buffer) and
// waits. oneDNN errors become sdpal::Error naming `what`.
void execute(const dnnl::primitive& prim, std::unordered_map<int, dnnl::memory>& args,
             const dnnl::memory::desc& scratch_md, const std::string& what);

// A memory object over caller-owned data (no copy).
dnnl::memory wrap(const dnnl::memory::desc& md, const void* data);

// True when oneDNN fell back to its reference (slow, unblocked) implementation.
bool is_reference_impl(const dnnl::primitive_desc_base& pd);

// True for oneDNN's brgemm-based implementations ("brg:", "brgconv:", "brgconv_1x1:" ...).
bool is_brgemm_impl(const dnnl::primitive_desc_base& pd);

// A weight tensor stored in the blocked layouts primitives asked for. The first layout is made at
// construction; a primitive that prefers another layout (oneDNN's choice can depend on the
// activation shape) gets a reordered copy, made once and kept.
class PreparedWeights {
 public:
  PreparedWeights() = default;
  // Reorders `plain` (described by plain_md) into `layout`.
  PreparedWeights(const dnnl::memory::desc& plain_md, const void* plain, const dnnl::memory::desc& layout);
  // The weights in `layout`, reordered from the first layout when new. Not thread-safe: callers hold
  // their own lock while building plans.
  dnnl::memory get(const dnnl::memory::desc& layout);
  dnnl::memory::desc first_layout() const { return copies_.front().get_desc(); }
  size_t layouts() const { return copies_.size(); }
  // Bytes of all copies together.
  size_t bytes() const;

 private:
  std::vector<dnnl::memory> copies_;  // over buffers_: their own pages, not the heap (core/page_buffer.h)
  std::vector<PageBuffer> buffers_;
};

// How a palettized weight is decoded per call (process-wide; read when a layout is prepared, so a
// kernel keeps the mode it was planned with). The default comes from the environment variable
// SDPAL_PALETTIZED_DECODE ("auto", "portable" or "legacy"), else kAuto.
//   kAuto:     indices re-packed in the primitive's layout order at load, decoded straight into
//              its buffer (fp32 or bf16) with the AVX-512 VBMI kernel where the CPU has it.
//   kPortable: the same re-packed stream, decoded by the portable loop (for tests and timing).
//   kLegacy:   the old per-call path, decode to plain fp32 + a oneDNN reorder (for tests, timing).
enum class PalettizedDecode { kAuto, kPortable, kLegacy };
void set_palettized_decode(PalettizedDecode mode);
PalettizedDecode palettized_decode();

// A palettized weight prepared for one primitive weight layout.
struct PackedLayout {
  dnnl::memory::desc layout;
  // Re-packed path: the indices in the layout's physical order (padding positions hold index 0 and
  // are zeroed after the decode), at the source's bit width; empty when the legacy path is used.
  PageBuffer stream;  // its own pages, not the heap (core/page_buffer.h)
  int64_t elements = 0;  // physical elements of `layout` (padding included)
  struct PadRuns {       // `count` runs of `len` padding elements at start + c * stride
    int64_t start = 0, len = 0, stride = 0, count = 0;
  };
  std::vector<PadRuns> padding;
  bool portable = false;  // decode with the portable loop even where the AVX-512 kernel runs
  // Legacy path (grouped or vector tables, layouts that are not plain blocked, kLegacy): decoded
  // fp32 in plain_md's order, then reordered.
  std::string legacy_reason;  // empty for the re-packed path
  dnnl::memory::desc plain_md, unpack_scratch_md;
  dnnl::reorder unpack;
  bool repacked() const { return legacy_reason.empty(); }
};

// A palettized weight kept packed (indices + LUT in the mapped file, kept alive by `owner`): no
// float copy is resident. prepare() builds, once per primitive weight layout, a copy of the indices
// permuted into that layout's order (same bit width, so about the packed size; the permutation is
// not kept); decode() then runs one table-lookup pass straight into this thread's buffer in the
// layout's data type. Grouped or vector tables and unusual layouts use the legacy path instead:
// decode the whole layer into fp32 scratch (row-major over the dense shape) and reorder it. Either
// way the primitive and its weights are exactly what a dense source would have prepared.
class PackedWeights {
 public:
  PackedWeights() = default;
  PackedWeights(std::shared_ptr<const PalettizedView> view, std::shared_ptr<const void> owner);
  explicit operator bool() const { return view_ != nullptr; }
  const PalettizedView& view() const { return *view_; }
  // The prepared form for `layout` (fp32 or bf16, as the primitive wants); plain_f32_md describes
  // the dense (row-major) order of the view's elements in the primitive's dims, e.g. oihw, or
  // {K, N} tag::ba for a torch [N, K] Linear weight. Made once per layout and kept. Not thread-safe:
  // callers hold their own lock while building plans.
  std::shared_ptr<const PackedLayout> prepare(const dnnl::memory::desc& plain_f32_md, const dnnl::memory::desc& layout);
  // Decodes into this thread's buffer; the memory is valid until this thread's next decode (any
  // layer). `what` names the layer in errors.
  dnnl::memory decode(const PackedLayout& prepared, const std::string& what) const;
  // Resident bytes: the re-packed indices of every prepared layout + the LUT (+ the source indices
  // while no layout is prepared or one uses the legacy path).
  size_t bytes() const;

 private:
  std::shared_ptr<const PalettizedView> view_;
  std::shared_ptr<const void> owner_;
  std::vector<std::shared_ptr<const PackedLayout>> layouts_;
};

// Decodes all of `v` (row-major) into out, on all threads.
void decode_palettized_parallel(const PalettizedView& v, float* out);

// Converts a dnnl::error into sdpal::Error with context.
[[noreturn]] void rethrow(const dnnl::error& e, const std::string& what);

}  // namespace sdpal::cpu::dnnl_util
