#include "kernels/cpu/dnnl_context.h"

#include "core/mapped_pages.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/cpu/palettized_decode.h"
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
  buffers_.emplace_back(layout.get_size());
  dnnl::memory dst = wrap(layout, buffers_.back().data());
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
  buffers_.emplace_back(layout.get_size());
  dnnl::memory dst = wrap(layout, buffers_.back().data());
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

namespace {

std::atomic<int> g_decode_mode{-1};  // -1: not read from the environment yet

PalettizedDecode mode_from_env() {
  const char* e = std::getenv("SDPAL_PALETTIZED_DECODE");
  if (e && std::strcmp(e, "legacy") == 0) return PalettizedDecode::kLegacy;
  if (e && std::strcmp(e, "portable") == 0) return PalettizedDecode::kPortable;
  return PalettizedDecode::kAuto;
}

// Builds the re-packed stream of `v` for `layout`; returns "" or why it cannot (then the legacy
// path is used). The layout's physical order is read off its blocking description: the outer
// dims by decreasing stride (each over padded_dims / block), then the inner blocks, outermost
// first (oneDNN's rule: offset = sum outer index * stride + the inner blocks' mixed-radix offset).
// Walking it in that order, each position gathers its source index (the permutation is never
// stored) and the stream is packed as it goes; positions whose coordinates fall in the padding
// become padding runs, zeroed after each decode.
std::string repack(const PalettizedView& v, const dnnl::memory::desc& plain_md, const dnnl::memory::desc& layout_md,
                   PackedLayout& out) {
  if (v.lut_shape.size() != 1) return "grouped or vector table";
  const dnnl_memory_desc_t& L = layout_md.data;
  const dnnl_memory_desc_t& P = plain_md.data;
  if (L.format_kind != dnnl_blocked || P.format_kind != dnnl_blocked) return "not a blocked layout";
  if (L.extra.flags != 0 || L.offset0 != 0 || P.offset0 != 0) return "layout with extra data or an offset";
  if (L.data_type != dnnl_f32 && L.data_type != dnnl_bf16) return "layout data type";
  if (P.format_desc.blocking.inner_nblks != 0 || P.ndims != L.ndims || L.ndims < 1) return "plain descriptor";
  const int nd = L.ndims;
  const auto& blk = L.format_desc.blocking;
  const size_t esize = L.data_type == dnnl_f32 ? 4 : 2;
  const size_t size = layout_md.get_size();
  if (size % esize) return "layout size";
  const int64_t total = int64_t(size / esize);
  if (total >= (int64_t(1) << 40)) return "too large";
  int64_t numel = 1;
  bool padded = false;
  for (int d = 0; d < nd; ++d) {
    if (L.dims[d] != P.dims[d] || L.dims[d] <= 0 || L.padded_dims[d] < L.dims[d]) return "dims";
    padded = padded || L.padded_dims[d] != L.dims[d];
    numel *= L.dims[d];
  }
  if (numel != v.numel()) return "element count";
  // Dense (source) order: plain strides must describe a row-major tensor over some dim order.
  {
    std::vector<int> order(static_cast<size_t>(nd));
    for (int d = 0; d < nd; ++d) order[size_t(d)] = d;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return P.format_desc.blocking.strides[a] > P.format_desc.blocking.strides[b];
    });
    int64_t expect = 1;
    for (int k = nd - 1; k >= 0; --k) {
      const int d = order[size_t(k)];
      if (P.dims[d] > 1 && P.format_desc.blocking.strides[d] != expect) return "plain descriptor not dense";
      expect *= P.dims[d];
    }
  }

  // Levels of the physical order, outermost first: (dim, extent, contribution to the dim's
  // coordinate per step); they must tile the buffer densely.
  struct Level {
    int d;
    int64_t extent, cm, stride;
  };
  std::vector<Level> lv;
  for (int d = 0; d < nd; ++d) {
    int64_t bsz = 1;
    for (int k = 0; k < blk.inner_nblks; ++k)
      if (blk.inner_idxs[k] == d) bsz *= blk.inner_blks[k];
    if (L.padded_dims[d] % bsz) return "padded dims not a multiple of the block";
    lv.push_back({d, L.padded_dims[d] / bsz, bsz, blk.strides[d]});
  }
  std::stable_sort(lv.begin(), lv.end(), [](const Level& a, const Level& b) { return a.stride > b.stride; });
  for (int k = 0; k < blk.inner_nblks; ++k) {
    int64_t cm = 1, stride = 1;
    for (int j = k + 1; j < blk.inner_nblks; ++j) {
      stride *= blk.inner_blks[j];
      if (blk.inner_idxs[j] == blk.inner_idxs[k]) cm *= blk.inner_blks[j];
    }
    lv.push_back({int(blk.inner_idxs[k]), blk.inner_blks[k], cm, stride});
  }
  // Drop extent-1 levels (their stride is arbitrary), then check the tiling.
  lv.erase(std::remove_if(lv.begin(), lv.end(), [](const Level& l) { return l.extent == 1; }), lv.end());
  if (lv.empty()) lv.push_back({0, 1, 1, 1});
  int64_t expect = 1;
  for (size_t k = lv.size(); k-- > 0;) {
    if (lv[k].stride != expect) return "layout not dense in its blocks";
    expect *= lv[k].extent;
  }
  if (expect != total) return "layout size does not match its blocks";
  // At least three levels: one to split work on, and a row of the two innermost.
  while (lv.size() < 3) lv.insert(lv.begin(), Level{0, 1, 0, total});
  const int nl = int(lv.size());
  const Level in = lv.back(), mid = lv[size_t(nl - 2)];
  int64_t pstride[DNNL_MAX_NDIMS];
  for (int d = 0; d < nd; ++d) pstride[d] = P.format_desc.blocking.strides[d];

  // Source index e, read straight from the packed bytes (no unpacked copy: at load, the page faults
  // of a fresh layer-sized buffer cost more than the bit arithmetic).
  const uint8_t* sidx = v.indices;
  const size_t snb = v.indices_nbytes;
  const int nbits = v.nbits;
  const uint32_t smask = (1u << nbits) - 1u;
  auto source = [sidx, snb, nbits, smask](int64_t e) -> uint8_t {
    const uint64_t bit = uint64_t(e) * uint64_t(nbits);
    const size_t byte = size_t(bit >> 3);
    uint32_t w = sidx[byte];
    if (byte + 1 < snb) w |= uint32_t(sidx[byte + 1]) << 8;
    return uint8_t((w >> (bit & 7)) & smask);
  };

  using Run = std::pair<int64_t, int64_t>;  // start, length
  const int64_t outer = lv[0].extent, chunk = total / outer;
  std::vector<std::vector<Run>> runs(static_cast<size_t>(outer));
  out.stream = PageBuffer(size_t((uint64_t(total) * uint64_t(v.nbits) + 7) / 8));
  // Threads and chunks pack whole bytes: chunks are packed one at a time when they are whole bytes
  // (a chunk-sized buffer), else the range is packed at once (then a single thread runs).
  const bool whole = chunk % 8 == 0;
  parallel_for(outer, [&](int64_t c0, int64_t c1) {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[size_t(whole ? chunk : (c1 - c0) * chunk)]);
    std::vector<int64_t> li(static_cast<size_t>(nl), 0);
    int64_t coord[DNNL_MAX_NDIMS];
    for (int64_t c = c0; c < c1; ++c) {
      std::fill(li.begin(), li.end(), 0);
      std::fill(coord, coord + nd, 0);
      coord[lv[0].d] = c * lv[0].cm;
      int64_t src = coord[lv[0].d] * pstride[lv[0].d];
      const int64_t dstep = in.cm * pstride[in.d], mstep = mid.cm * pstride[mid.d];
      std::vector<Run>& rc = runs[size_t(c)];
      for (int64_t pos = 0; pos < chunk; pos += mid.extent * in.extent) {
        for (int64_t jm = 0; jm < mid.extent; ++jm) {  // one row: the innermost level
          int64_t jmax = in.extent;
          if (padded) {
            coord[mid.d] += jm * mid.cm;
            bool ok = true;
            for (int d = 0; d < nd; ++d) ok = ok && (d == in.d || coord[d] < L.dims[d]);
            const int64_t left = L.dims[in.d] - coord[in.d];
            coord[mid.d] -= jm * mid.cm;
            jmax = !ok || left <= 0 ? 0 : std::min(in.extent, (left + in.cm - 1) / in.cm);
          }
          const int64_t p = pos + jm * in.extent;
          uint8_t* o = buf.get() + (whole ? 0 : (c - c0) * chunk) + p;
          const int64_t s0 = src + jm * mstep;
          for (int64_t j = 0; j < jmax; ++j) o[j] = source(s0 + j * dstep);
          if (jmax < in.extent) {
            std::memset(o + jmax, 0, size_t(in.extent - jmax));
            const int64_t start = c * chunk + p + jmax, len = in.extent - jmax;
            if (!rc.empty() && rc.back().first + rc.back().second == start)
              rc.back().second += len;
            else
              rc.push_back({start, len});
          }
        }
        for (int l = nl - 3; l >= 1; --l) {  // next pair of innermost levels
          const Level& x = lv[size_t(l)];
          coord[x.d] += x.cm;
          src += x.cm * pstride[x.d];
          if (++li[size_t(l)] < x.extent) break;
          coord[x.d] -= x.extent * x.cm;
          src -= x.extent * x.cm * pstride[x.d];
          li[size_t(l)] = 0;
        }
      }
      if (whole) palettized::pack_indices(buf.get(), c * chunk, chunk, nbits, out.stream.data());
    }
    if (!whole) palettized::pack_indices(buf.get(), c0 * chunk, (c1 - c0) * chunk, nbits, out.stream.data());
  }, whole ? 1 : outer);

  // Padding runs in order, merged, then folded into strided groups.
  auto& groups = out.padding;
  Run cur{0, 0};
  auto flush = [&](const Run& r) {
    if (r.second == 0) return;
    if (!groups.empty() && groups.back().len == r.second &&
        (groups.back().count == 1 || r.first == groups.back().start + groups.back().count * groups.back().stride)) {
      if (groups.back().count == 1) groups.back().stride = r.first - groups.back().start;
      ++groups.back().count;
    } else {
      groups.push_back({r.first, r.second, 0, 1});
    }
  };
  for (const auto& rc : runs)
    for (const Run& r : rc) {
      if (cur.second && cur.first + cur.second == r.first) {
        cur.second += r.second;
      } else {
        flush(cur);
        cur = r;
      }
    }
  flush(cur);
  out.elements = total;
  return "";
}

}  // namespace

void set_palettized_decode(PalettizedDecode mode) { g_decode_mode.store(int(mode)); }

PalettizedDecode palettized_decode() {
  int m = g_decode_mode.load();
  if (m < 0) {
    m = int(mode_from_env());
    int expected = -1;
    if (!g_decode_mode.compare_exchange_strong(expected, m)) m = expected;
  }
  return PalettizedDecode(m);
}

PackedWeights::PackedWeights(std::shared_ptr<const PalettizedView> view, std::shared_ptr<const void> owner)
    : view_(std::move(view)), owner_(std::move(owner)) {
  validate_palettized(*view_);
}

std::shared_ptr<const PackedLayout> PackedWeights::prepare(const dnnl::memory::desc& plain_f32_md,
                                                           const dnnl::memory::desc& layout) {
  for (const auto& l : layouts_)
    if (l->layout == layout && l->plain_md == plain_f32_md) return l;
  auto l = std::make_shared<PackedLayout>();
  l->layout = layout;
  l->plain_md = plain_f32_md;
  const PalettizedDecode mode = palettized_decode();
  l->portable = mode == PalettizedDecode::kPortable;
  l->legacy_reason = mode == PalettizedDecode::kLegacy ? "legacy decode requested"
                                                       : repack(*view_, plain_f32_md, layout, *l);
  if (!l->repacked()) {
    l->stream = PageBuffer();
    l->padding.clear();
    dnnl::reorder::primitive_desc pd(engine(), plain_f32_md, engine(), layout, base_attr());
    l->unpack_scratch_md = pd.scratchpad_desc();
    l->unpack = dnnl::reorder(pd);
  } else {
    // The re-packed copy is what runs read from now on: give back the mapped source's pages.
    release_mapped_pages(view_->indices, view_->indices_nbytes);
  }
  layouts_.push_back(l);
  return l;
}

size_t PackedWeights::bytes() const {
  if (!view_) return 0;
  size_t total = view_->lut_nbytes;
  bool source = layouts_.empty();
  for (const auto& l : layouts_) {
    total += l->stream.size();
    source = source || !l->repacked();
  }
  return total + (source ? view_->indices_nbytes : 0);
}

dnnl::memory PackedWeights::decode(const PackedLayout& l, const std::string& what) const {
  thread_local ScratchBuffer blocked;  // the weights in the primitive's layout (fp32 or bf16)
  dnnl::memory dst = wrap(l.layout, blocked.get((l.layout.get_size() + 3) / 4));
  if (!l.repacked()) {
    thread_local ScratchBuffer plain;  // the decoded fp32 weights, plain layout
    float* p = plain.get(size_t(view_->numel()));
    decode_palettized_parallel(*view_, p);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_FROM, wrap(l.plain_md, p)}, {DNNL_ARG_TO, dst}};
    execute(l.unpack, args, l.unpack_scratch_md, what + " (unpacking palettized weight '" + view_->name + "')");
    return dst;
  }
  const bool f32 = l.layout.data.data_type == dnnl_f32;
  const palettized::DecodeTable table = palettized::make_decode_table(*view_);
  uint8_t* out = static_cast<uint8_t*>(dst.get_data_handle());
  palettized::decode_lut_stream_parallel(l.stream.data(), l.stream.size(), view_->nbits, l.elements, table,
                                         f32 ? palettized::OutType::kF32 : palettized::OutType::kBF16, out,
                                         l.portable ? palettized::DecodeImpl::kPortable : palettized::DecodeImpl::kAuto);
  const size_t esize = f32 ? 4 : 2;
  for (const PackedLayout::PadRuns& r : l.padding)
    for (int64_t c = 0; c < r.count; ++c)
      std::memset(out + size_t(r.start + c * r.stride) * esize, 0, size_t(r.len) * esize);
  return dst;
}

}  // namespace sdpal::cpu::dnnl_util
