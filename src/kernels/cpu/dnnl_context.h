// Shared oneDNN plumbing for the kernels that use it (Linear, Conv2d): one CPU engine, a stream
// per thread, per-thread scratchpads, and weights kept in whatever blocked layouts the primitives
// ask for. Internal to src/kernels/cpu.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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
  std::vector<dnnl::memory> copies_;
};

// A palettized weight kept packed (indices + LUT in the mapped file, kept alive by `owner`): no
// float copy is resident. Each call decodes the whole layer into this thread's fp32 scratch
// (row-major over the dense shape, i.e. `plain_md`'s order) and reorders it into the layout the
// primitive wants (fp32 or bf16, a second per-thread scratch buffer), so the primitive and its
// weights are exactly what a dense source would have prepared.
class PackedWeights {
 public:
  PackedWeights() = default;
  PackedWeights(std::shared_ptr<const PalettizedView> view, std::shared_ptr<const void> owner);
  explicit operator bool() const { return view_ != nullptr; }
  const PalettizedView& view() const { return *view_; }
  // The reorder from the decoded fp32 plain layout into `layout`; build once per plan.
  dnnl::reorder make_unpack(const dnnl::memory::desc& plain_f32_md, const dnnl::memory::desc& layout,
                            dnnl::memory::desc* scratch_md) const;
  // Decodes and reorders into this thread's buffer; the memory is valid until this thread's next
  // decode (any layer). `what` names the layer in errors.
  dnnl::memory decode(const dnnl::reorder& unpack, const dnnl::memory::desc& plain_f32_md,
                      const dnnl::memory::desc& layout, const dnnl::memory::desc& scratch_md,
                      const std::string& what) const;
  // Resident bytes: packed indices + LUT.
  size_t bytes() const { return view_ ? view_->indices_nbytes + view_->lut_nbytes : 0; }

 private:
  std::shared_ptr<const PalettizedView> view_;
  std::shared_ptr<const void> owner_;
};

// Decodes all of `v` (row-major) into out, on all threads.
void decode_palettized_parallel(const PalettizedView& v, float* out);

// Converts a dnnl::error into sdpal::Error with context.
[[noreturn]] void rethrow(const dnnl::error& e, const std::string& what);

}  // namespace sdpal::cpu::dnnl_util
