#include "kernels/cpu/dnnl_context.h"

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/cpu/scratch.h"

namespace sdpal::cpu::dnnl_util {

const dnnl::engine& engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::primitive_attr base_attr() {
  dnnl::primitive_attr attr;
  attr.set_fpmath_mode(dnnl::fpmath_mode::strict);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void rethrow(const dnnl::error& e, const std::string& what) {
  ErrorCode code = e.status == dnnl_unimplemented ? ErrorCode::kUnsupported : ErrorCode::kInternal;
  fail(code, what + ": oneDNN error: " + e.what());
}

dnnl::memory wrap(const dnnl::memory::desc& md, const void* data) {
  return dnnl::memory(md, engine(), const_cast<void*>(data));
}

void execute(const dnnl::primitive& prim, std::unordered_map<int, dnnl::memory>& args,
             const dnnl::memory::desc& scratch_md, const std::string& what) {
  thread_local ScratchBuffer scratch;  // grows to the largest scratchpad this thread needed
  thread_local std::unique_ptr<dnnl::stream> stream;
  try {
    if (!stream) stream = std::make_unique<dnnl::stream>(engine());
    size_t bytes = scratch_md.get_size();
    if (bytes) args[DNNL_ARG_SCRATCHPAD] = wrap(scratch_md, scratch.get((bytes + 3) / 4));
    prim.execute(*stream, args);
    stream->wait();
  } catch (const dnnl::error& e) {
    rethrow(e, what);
  }
}

bool is_reference_impl(const dnnl::primitive_desc_base& pd) {
  std::string impl = pd.impl_info_str();
  return impl.rfind("ref", 0) == 0;
}

PreparedWeights::PreparedWeights(const dnnl::memory::desc& plain_md, const void* plain,
                                 const dnnl::memory::desc& layout) {
  dnnl::memory src = wrap(plain_md, plain);
  dnnl::memory dst(layout, engine());
  dnnl::stream s(engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  copies_.push_back(dst);
}

bool is_brgemm_impl(const dnnl::primitive_desc_base& pd) {
  std::string impl = pd.impl_info_str();
  return impl.rfind("brg", 0) == 0;
}

size_t PreparedWeights::bytes() const {
  size_t total = 0;
  for (const dnnl::memory& m : copies_) total += m.get_desc().get_size();
  return total;
}

dnnl::memory PreparedWeights::get(const dnnl::memory::desc& layout) {
  for (const dnnl::memory& m : copies_)
    if (m.get_desc() == layout) return m;
  dnnl::memory dst(layout, engine());
  dnnl::stream s(engine());
  dnnl::reorder(copies_.front(), dst).execute(s, copies_.front(), dst);
  s.wait();
  copies_.push_back(dst);
  return dst;
}

void decode_palettized_parallel(const PalettizedView& v, float* out) {
  validate_palettized(v);
  const int64_t n = v.numel();
  // Chunks of whole 4-index groups (the 6-bit fast path's unit), large enough that the table set-up
  // each decode_palettized call makes is negligible.
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    const int64_t b = c0 * kChunk, e = std::min(n, c1 * kChunk);
    decode_palettized(v, b, e, out + b);
  });
}

PackedWeights::PackedWeights(std::shared_ptr<const PalettizedView> view, std::shared_ptr<const void> owner)
    : view_(std::move(view)), owner_(std::move(owner)) {
  validate_palettized(*view_);
}

dnnl::reorder PackedWeights::make_unpack(const dnnl::memory::desc& plain_f32_md, const dnnl::memory::desc& layout,
                                         dnnl::memory::desc* scratch_md) const {
  dnnl::reorder::primitive_desc pd(engine(), plain_f32_md, engine(), layout, base_attr());
  *scratch_md = pd.scratchpad_desc();
  return dnnl::reorder(pd);
}

dnnl::memory PackedWeights::decode(const dnnl::reorder& unpack, const dnnl::memory::desc& plain_f32_md,
                                   const dnnl::memory::desc& layout, const dnnl::memory::desc& scratch_md,
                                   const std::string& what) const {
  thread_local ScratchBuffer plain;    // the decoded fp32 weights, plain layout
  thread_local ScratchBuffer blocked;  // the same in the primitive's layout (fp32 or bf16)
  float* p = plain.get(size_t(view_->numel()));
  decode_palettized_parallel(*view_, p);
  dnnl::memory dst = wrap(layout, blocked.get((layout.get_size() + 3) / 4));
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_FROM, wrap(plain_f32_md, p)}, {DNNL_ARG_TO, dst}};
  execute(unpack, args, scratch_md, what + " (unpacking palettized weight '" + view_->name + "')");
  return dst;
}

}  // namespace sdpal::cpu::dnnl_util
