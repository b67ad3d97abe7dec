// bf16 flash attention on AMX tiles (AttentionShape::precision == BF16 on CPUs with AMX-BF16).
// Per (batch, head, block of 32 queries), over blocks of kBk keys:
//   S = (c Q) K^T       TDPBF16PS: A = Q (2 tiles of 16 queries x 32 head-dim values), B = K as
//                       16-key panels [D/2][16][2] (the "VNNI" pair layout), C = 2 x 2 tiles of S;
//                       c = scale * log2(e), so the softmax works in base 2;
//   online softmax      fp32 AVX-512 with its own 2^x (exp2_masked), P rounded to bf16;
//   O += P V            A = P (16 queries x 32 keys), B = V as key pairs [kv/2][Dp][2], C = O
//                       tiles loaded from and stored to the fp32 accumulator in scratch.
// The tile products of the neighbouring key blocks are issued in small steps between the softmax
// rows, so the AMX unit and the vector units work at the same time (run_block).
// Head dims are zero-padded to a multiple of 32 for the QK product (a tile's depth), keys to a
// multiple of 32 for the PV product. Rounding: q * c, k, v and p are rounded to bf16 (nearest even;
// AMX treats bf16 denormals as zero); everything else is fp32.
// Only called when cpu_features() has avx512_core and avx512_bf16 and amx_tiles_usable() is true.
// GCC 12 reports -Wmaybe-uninitialized inside immintrin.h for intrinsics that use
// _mm512_undefined_*() as a don't-care operand: a false positive (see attention_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/threads.h"
#include "kernels/cpu/attention_avx512_common.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/scratch.h"

namespace sdpal::cpu::attention_detail {
namespace {

constexpr int64_t kBq = 32;   // query rows per work item: two 16-row tiles
constexpr int64_t kBk = 128;  // keys per online-softmax block: 8 tiles of 16 keys, 4 chunks of 32

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,avx512bf16,amx-tile,amx-bf16")))

// GCC's tile-load intrinsics are asm statements that do not tell the compiler they read memory:
// this keeps ordinary stores to the buffers a tile load reads from being moved after it.
#define MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

// Tile registers: 0-3 accumulators (C), 4-5 left operands (A), 6-7 right operands (B); all 16
// rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

TGT void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  MEMORY_BARRIER();
  _tile_loadconfig(&cfg);
}

TGT inline __m512i to_bf16(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

// 2^x on the lanes in `keep` (others 0), for finite x (and x = -200 for "nothing"): 2^f for the
// fraction f = x - floor(x) in [0, 1) by a degree-4 least-squares polynomial (max relative error
// 2.7e-6, far below the bf16 rounding the probabilities get next), times 2^floor(x) by VSCALEFPS.
// Scores are kept in log2 units (q is pre-scaled by scale * log2(e)), which saves the multiply.
TGT inline __m512 exp2_masked(__mmask16 keep, __m512 x) {
  const __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 p = _mm512_set1_ps(0.0135206032f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.0520374289f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.241427493f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.693006621f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.00000252f));
  return _mm512_maskz_scalef_ps(keep, p, x);
}

// One step of tile work: a depth chunk of one C accumulation (2 x 2 or 2 x 1 tiles). Steps of a
// unit (first .. last) must run in order and no other unit's step may come between them (they
// share tile registers); their memory is scratch that the softmax running alongside does not touch.
struct TileStep {
  enum Kind : uint8_t { kQk2, kQk1, kPv2, kPv1 } kind;
  bool first, last;
  const uint16_t* a;  // left operand, 16 rows (second tile 16 rows further)
  const uint16_t* b;  // right operand (second tile: next key panel / next 16 columns)
  float* c;           // accumulator in memory: S (zeroed, stored) or O (loaded, stored)
};

// Geometry the steps need (byte strides and offsets).
struct TileGeom {
  int64_t dpad, dp;
  int64_t a_qk_stride() const { return dpad * 2; }  // Q rows (bf16)
  int64_t a_qk_next() const { return 16 * dpad; }   // second query tile (bf16 values)
  int64_t b_qk_next() const { return dpad * 16; }   // next 16-key panel (bf16 values)
};

// Issues one step. S rows have stride kBk floats, P rows kBk bf16, O rows dp floats, V pair rows
// dp pairs.
TGT inline void run_step(const TileStep& st, const TileGeom& g) {
  switch (st.kind) {
    case TileStep::kQk2:
      if (st.first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
      }
      _tile_loadd(4, st.a, g.a_qk_stride());
      _tile_loadd(5, st.a + g.a_qk_next(), g.a_qk_stride());
      _tile_loadd(6, st.b, 64);
      _tile_loadd(7, st.b + g.b_qk_next(), 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
      if (st.last) {
        _tile_stored(0, st.c, kBk * 4);
        _tile_stored(1, st.c + 16, kBk * 4);
        _tile_stored(2, st.c + 16 * kBk, kBk * 4);
        _tile_stored(3, st.c + 16 * kBk + 16, kBk * 4);
      }
      break;
    case TileStep::kQk1:
      if (st.first) {
        _tile_zero(0);
        _tile_zero(2);
      }
      _tile_loadd(4, st.a, g.a_qk_stride());
      _tile_loadd(5, st.a + g.a_qk_next(), g.a_qk_stride());
      _tile_loadd(6, st.b, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(2, 5, 6);
      if (st.last) {
        _tile_stored(0, st.c, kBk * 4);
        _tile_stored(2, st.c + 16 * kBk, kBk * 4);
      }
      break;
    case TileStep::kPv2:
      if (st.first) {
        _tile_loadd(0, st.c, g.dp * 4);
        _tile_loadd(1, st.c + 16, g.dp * 4);
        _tile_loadd(2, st.c + 16 * g.dp, g.dp * 4);
        _tile_loadd(3, st.c + 16 * g.dp + 16, g.dp * 4);
      }
      _tile_loadd(4, st.a, kBk * 2);
      _tile_loadd(5, st.a + 16 * kBk, kBk * 2);
      _tile_loadd(6, st.b, g.dp * 4);
      _tile_loadd(7, st.b + 32, g.dp * 4);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
      if (st.last) {
        _tile_stored(0, st.c, g.dp * 4);
        _tile_stored(1, st.c + 16, g.dp * 4);
        _tile_stored(2, st.c + 16 * g.dp, g.dp * 4);
        _tile_stored(3, st.c + 16 * g.dp + 16, g.dp * 4);
      }
      break;
    case TileStep::kPv1:
      if (st.first) {
        _tile_loadd(0, st.c, g.dp * 4);
        _tile_loadd(2, st.c + 16 * g.dp, g.dp * 4);
      }
      _tile_loadd(4, st.a, kBk * 2);
      _tile_loadd(5, st.a + 16 * kBk, kBk * 2);
      _tile_loadd(6, st.b, g.dp * 4);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(2, 5, 6);
      if (st.last) {
        _tile_stored(0, st.c, g.dp * 4);
        _tile_stored(2, st.c + 16 * g.dp, g.dp * 4);
      }
      break;
  }
}

// Appends the steps of S[32][nt * 16] = Q K^T (nt key tiles from panel kp) to `steps`.
void add_qk_steps(std::vector<TileStep>& steps, const uint16_t* qs, const uint16_t* kp, int64_t nt, float* sb,
                  const TileGeom& g) {
  const int64_t dchunks = g.dpad / 32;
  for (int64_t t = 0; t < nt; t += 2)
    for (int64_t c = 0; c < dchunks; ++c)
      steps.push_back({t + 1 < nt ? TileStep::kQk2 : TileStep::kQk1, c == 0, c == dchunks - 1, qs + c * 32,
                       kp + t * g.b_qk_next() + c * 512, sb + t * 16});
}

// Appends the steps of O[32][dp] += P[32][nchunks * 32] V (key pairs from vp) to `steps`.
void add_pv_steps(std::vector<TileStep>& steps, const uint16_t* pb, const uint16_t* vp, int64_t nchunks, float* ob,
                  const TileGeom& g) {
  const int64_t ntiles = g.dp / 16;
  for (int64_t c = 0; c < ntiles; c += 2)
    for (int64_t j = 0; j < nchunks; ++j)
      steps.push_back({c + 1 < ntiles ? TileStep::kPv2 : TileStep::kPv1, j == 0, j == nchunks - 1, pb + j * 32,
                       vp + j * 16 * g.dp * 2 + c * 32, ob + c * 16});
}

// Online-softmax step for rows [0, r) of a block of scores sb[kBq][kBk] (log2 units; columns past
// the keys computed hold stale values and are masked): P = 2^(S - m_new) as bf16 into pb[kBq][kBk]
// over nchunks * 32 columns (zero past each row's valid(i) keys), running max m and sum l updated,
// corr[i] = 2^(m_old - m_new) returned for rescaling O. `steps` (tile work independent of this
// block's softmax) are issued spread over the rows, so the AMX unit works while the vector units
// compute exponentials.
template <typename Valid>
TGT void softmax_block(const float* sb, uint16_t* pb, int64_t r, int64_t nchunks, const Valid& valid, float* m,
                       float* l, float* corr, const std::vector<TileStep>& steps, const TileGeom& g) {
  alignas(64) float m_new[kBq];
  for (int64_t i = 0; i < kBq; ++i) m_new[i] = i < r ? m[i] : 0.f;
  for (int64_t i = 0; i < r; ++i) {
    const int64_t nv = valid(i);
    if (nv <= 0) continue;
    const float* srow = sb + i * kBk;
    __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t c = 0; c < nv; c += 16)
      vmax = _mm512_mask_max_ps(vmax, tail_mask(nv - c), vmax, _mm512_load_ps(srow + c));
    m_new[i] = std::max(m[i], _mm512_reduce_max_ps(vmax));
  }
  for (int64_t i = 0; i < kBq; i += 16) {
    // m_old = -inf (first keys) gives -inf or NaN differences: max(., -200) turns both into -200,
    // i.e. a factor 0 on the (zero) old O and l. Unchanged maxima give exactly 1.
    const __m512 mo = i < r ? _mm512_load_ps(m + i) : _mm512_setzero_ps();
    const __m512 mn = _mm512_load_ps(m_new + i);
    const __m512 x = _mm512_max_ps(_mm512_sub_ps(mo, mn), _mm512_set1_ps(-200.f));
    const __mmask16 same = _mm512_cmp_ps_mask(mo, mn, _CMP_EQ_OQ);
    _mm512_store_ps(corr + i, _mm512_mask_blend_ps(same, exp2_masked(0xffff, x), _mm512_set1_ps(1.f)));
  }
  const size_t nsteps = steps.size();
  size_t issued = 0;
  for (int64_t i = 0; i < r; ++i) {
    for (const size_t due = size_t(i + 1) * nsteps / size_t(r); issued < due; ++issued) run_step(steps[issued], g);
    const int64_t nv = valid(i);
    uint16_t* prow = pb + i * kBk;
    if (nv <= 0) {  // causal: this row sees none of these keys
      for (int64_t c = 0; c < nchunks * 32; c += 32) _mm512_store_si512(prow + c, _mm512_setzero_si512());
      continue;
    }
    const float* srow = sb + i * kBk;
    const __m512 vm = _mm512_set1_ps(m_new[i]);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t c = 0; c < nchunks * 32; c += 32) {
      const __m512 lo = exp2_masked(tail_mask(nv - c), _mm512_sub_ps(_mm512_load_ps(srow + c), vm));
      const __m512 hi = exp2_masked(tail_mask(nv - c - 16), _mm512_sub_ps(_mm512_load_ps(srow + c + 16), vm));
      vsum = _mm512_add_ps(vsum, _mm512_add_ps(lo, hi));
      _mm512_store_si512(prow + c, to_bf16(lo, hi));
    }
    l[i] = l[i] * corr[i] + _mm512_reduce_add_ps(vsum);
    m[i] = m_new[i];
  }
  for (; issued < nsteps; ++issued) run_step(steps[issued], g);
}

struct Job {
  AttentionShape s;
  const float* q;
  float* out;
  const uint16_t* kpack;  // [B*H][npanels][dpad/2][16][2]
  const uint16_t* vpack;  // [B*H][kv_pairs][dp][2], kv_pairs = 16 * ceil(kv_len / 32)
  int64_t npanels, kv_pairs;
  int64_t dpad, dp;  // head_dim rounded up to 32 (QK depth) and to 16 (PV width)
};

// Floats of scratch run_block needs.
int64_t block_scratch_floats(const Job& job) {
  return kBq * job.dpad / 2 + 2 * kBq * kBk + 2 * kBq * kBk / 2 + kBq * job.dp + 4 * kBq;
}

// Queries i0 .. i0+31 of head (b, h). Software-pipelined over key blocks j: while the vector units
// run the softmax of block j, the AMX unit runs O += P V of block j-1 and S = Q K^T of block j+1
// (S and P double-buffered); O is rescaled for block j once P V of block j-1 is stored.
TGT void run_block(const Job& job, int64_t b, int64_t h, int64_t i0, float* scratch, std::vector<TileStep>& steps) {
  const AttentionShape& s = job.s;
  const int64_t d = s.head_dim, dpad = job.dpad, dp = job.dp;
  const TileGeom g{dpad, dp};
  const int64_t r = std::min(kBq, s.q_len - i0);
  uint16_t* qs = reinterpret_cast<uint16_t*>(scratch);  // [kBq][dpad] scaled queries, bf16
  float* sbuf[2] = {scratch + kBq * dpad / 2, scratch + kBq * dpad / 2 + kBq * kBk};  // [kBq][kBk] scores
  uint16_t* pbuf[2] = {reinterpret_cast<uint16_t*>(sbuf[1] + kBq * kBk),
                       reinterpret_cast<uint16_t*>(sbuf[1] + kBq * kBk + kBq * kBk / 2)};  // [kBq][kBk] P, bf16
  float* ob = sbuf[1] + 2 * kBq * kBk;  // [kBq][dp] unnormalized output
  float* m = ob + kBq * dp;
  float* l = m + kBq;
  float* corr = l + kBq;

  const __m512 vscale = _mm512_set1_ps(s.scale * 1.44269504088896341f);  // scores in log2 units
  for (int64_t i = 0; i < kBq; ++i) {
    const float* src = i < r ? job.q + b * s.q_batch_stride + (i0 + i) * s.q_stride + h * d : nullptr;
    for (int64_t e = 0; e < dpad; e += 32) {
      __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
      if (src) {
        lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(d - e), src + e), vscale);
        hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(d - e - 16), src + e + 16), vscale);
      }
      _mm512_store_si512(qs + i * dpad + e, to_bf16(lo, hi));
    }
    for (int64_t e = 0; e < dp; e += 16) _mm512_store_ps(ob + i * dp + e, _mm512_setzero_ps());
    if (i >= r)  // padding rows: zero probabilities, so their (discarded) outputs stay finite
      for (int64_t c = 0; c < kBk; c += 32) {
        _mm512_store_si512(pbuf[0] + i * kBk + c, _mm512_setzero_si512());
        _mm512_store_si512(pbuf[1] + i * kBk + c, _mm512_setzero_si512());
      }
    m[i] = -std::numeric_limits<float>::infinity();
    l[i] = 0.f;
  }

  const int64_t kv_end = s.causal ? std::min(s.kv_len, i0 + r) : s.kv_len;
  const int64_t nblocks = (kv_end + kBk - 1) / kBk;
  const uint16_t* kp = job.kpack + (b * s.heads + h) * job.npanels * dpad * 16;
  const uint16_t* vb = job.vpack + (b * s.heads + h) * job.kv_pairs * dp * 2;
  auto block_keys = [&](int64_t j) { return std::min(kBk, kv_end - j * kBk); };
  auto qk_steps = [&](int64_t j) {  // S of block j into sbuf[j % 2]
    add_qk_steps(steps, qs, kp + j * kBk / 16 * dpad * 16, (block_keys(j) + 15) / 16, sbuf[j % 2], g);
  };
  auto pv_steps = [&](int64_t j) {  // O += P V of block j from pbuf[j % 2]
    add_pv_steps(steps, pbuf[j % 2], vb + j * kBk / 2 * dp * 2, (block_keys(j) + 31) / 32, ob, g);
  };

  MEMORY_BARRIER();  // qs written
  steps.clear();
  qk_steps(0);
  for (const TileStep& st : steps) run_step(st, g);
  for (int64_t j = 0; j < nblocks; ++j) {
    const int64_t k0 = j * kBk, nk = block_keys(j);
    steps.clear();
    if (j > 0) pv_steps(j - 1);
    if (j + 1 < nblocks) qk_steps(j + 1);
    MEMORY_BARRIER();  // P of block j-1 and the rescaled O written
    if (s.causal)
      softmax_block(sbuf[j % 2], pbuf[j % 2], r, (nk + 31) / 32, [&](int64_t i) { return std::min(nk, i0 + i + 1 - k0); },
                    m, l, corr, steps, g);
    else
      softmax_block(sbuf[j % 2], pbuf[j % 2], r, (nk + 31) / 32, [&](int64_t) { return nk; }, m, l, corr, steps, g);
    // P V of block j-1 is stored (tile stores are ordered before these loads): rescale O.
    for (int64_t i = 0; i < r; ++i) {
      if (corr[i] == 1.f) continue;
      const __m512 vc = _mm512_set1_ps(corr[i]);
      for (int64_t e = 0; e < dp; e += 16)
        _mm512_store_ps(ob + i * dp + e, _mm512_mul_ps(_mm512_load_ps(ob + i * dp + e), vc));
    }
  }
  steps.clear();
  pv_steps(nblocks - 1);
  MEMORY_BARRIER();
  for (const TileStep& st : steps) run_step(st, g);

  for (int64_t i = 0; i < r; ++i) {
    float* dst = job.out + b * s.o_batch_stride + (i0 + i) * s.o_stride + h * d;
    const __m512 inv = _mm512_set1_ps(1.f / l[i]);
    for (int64_t e = 0; e < d; e += 16)
      _mm512_mask_storeu_ps(dst + e, tail_mask(d - e), _mm512_mul_ps(_mm512_load_ps(ob + i * dp + e), inv));
  }
}

// K panels [lo, hi) of all (batch, head): panel idx = (b * heads + h) * npanels + p, laid out
// [dpad/2][16 keys][2], zero past head_dim and kv_len.
TGT void pack_k(const AttentionShape& s, const float* k, uint16_t* kpack, int64_t npanels, int64_t dpad, int64_t lo,
                int64_t hi) {
  const int64_t d = s.head_dim;
  const __m512i rows = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
  for (int64_t idx = lo; idx < hi; ++idx) {
    const int64_t bh = idx / npanels, p = idx % npanels;
    const int64_t b = bh / s.heads, h = bh % s.heads;
    uint32_t* dst = reinterpret_cast<uint32_t*>(kpack + idx * dpad * 16);
    for (int64_t j = 0; j < 16; ++j) {
      const int64_t key = p * 16 + j;
      const float* src = key < s.kv_len ? k + b * s.k_batch_stride + key * s.k_stride + h * d : nullptr;
      for (int64_t e = 0; e < dpad; e += 32) {
        __m512i pairs = _mm512_setzero_si512();
        if (src)
          pairs = to_bf16(_mm512_maskz_loadu_ps(tail_mask(d - e), src + e),
                          _mm512_maskz_loadu_ps(tail_mask(d - e - 16), src + e + 16));
        // 16 pairs (e/2 .. e/2+15) of this key go to rows e/2 + i, column j.
        _mm512_i32scatter_epi32(dst + (e / 2) * 16 + j, rows, pairs, 4);
      }
    }
  }
}

// V key pairs [lo, hi) of all (batch, head): idx = (b * heads + h) * kv_pairs + pair, laid out
// [dp][2], zero past head_dim and kv_len.
TGT void pack_v(const AttentionShape& s, const float* v, uint16_t* vpack, int64_t kv_pairs, int64_t dp, int64_t lo,
                int64_t hi) {
  alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                           21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                           11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i perm = _mm512_load_si512(kInterleave);
  const int64_t d = s.head_dim;
  for (int64_t idx = lo; idx < hi; ++idx) {
    const int64_t bh = idx / kv_pairs, j2 = idx % kv_pairs;
    const float* base = v + bh / s.heads * s.v_batch_stride + bh % s.heads * d;
    const float* r0 = 2 * j2 < s.kv_len ? base + 2 * j2 * s.v_stride : nullptr;
    const float* r1 = 2 * j2 + 1 < s.kv_len ? base + (2 * j2 + 1) * s.v_stride : nullptr;
    uint16_t* dst = vpack + idx * dp * 2;
    for (int64_t c = 0; c < dp; c += 16) {
      const __mmask16 mk = tail_mask(d - c);
      const __m512 a = r0 ? _mm512_maskz_loadu_ps(mk, r0 + c) : _mm512_setzero_ps();
      const __m512 bv = r1 ? _mm512_maskz_loadu_ps(mk, r1 + c) : _mm512_setzero_ps();
      _mm512_store_si512(dst + 2 * c, _mm512_permutexvar_epi16(perm, to_bf16(a, bv)));
    }
  }
}

TGT void run_items(const Job& job, int64_t qblocks, int64_t lo, int64_t hi, float* buf) {
  thread_local std::vector<TileStep> steps;
  configure_tiles();
  for (int64_t idx = lo; idx < hi; ++idx) {
    const int64_t item = idx / qblocks, qb = idx % qblocks;
    run_block(job, item / job.s.heads, item % job.s.heads, qb * kBq, buf, steps);
  }
  _tile_release();
}

}  // namespace

void attention_amx_bf16(const AttentionShape& s, const float* q, const float* k, const float* v, float* out) {
  if (s.batch == 0 || s.q_len == 0) return;
  Job job;
  job.s = s;
  job.q = q;
  job.out = out;
  job.npanels = (s.kv_len + 15) / 16;
  job.kv_pairs = (s.kv_len + 31) / 32 * 16;
  job.dpad = (s.head_dim + 31) / 32 * 32;
  job.dp = (s.head_dim + 15) / 16 * 16;
  const int64_t bh = s.batch * s.heads;

  thread_local ScratchBuffer kpack_buf, vpack_buf;
  // Sizes in floats: two bf16 values per float.
  uint16_t* kpack = reinterpret_cast<uint16_t*>(kpack_buf.get(size_t(bh * job.npanels * job.dpad * 8)));
  uint16_t* vpack = reinterpret_cast<uint16_t*>(vpack_buf.get(size_t(bh * job.kv_pairs * job.dp)));
  parallel_for(bh * job.npanels, [&](int64_t lo, int64_t hi) { pack_k(s, k, kpack, job.npanels, job.dpad, lo, hi); },
               4);
  parallel_for(bh * job.kv_pairs, [&](int64_t lo, int64_t hi) { pack_v(s, v, vpack, job.kv_pairs, job.dp, lo, hi); },
               128);
  job.kpack = kpack;
  job.vpack = vpack;

  const int64_t qblocks = (s.q_len + kBq - 1) / kBq;
  const size_t scratch_floats = size_t(block_scratch_floats(job));
  parallel_for(bh * qblocks, [&](int64_t lo, int64_t hi) {
    thread_local ScratchBuffer scratch;
    run_items(job, qblocks, lo, hi, scratch.get(scratch_floats));
  });
}

#undef MEMORY_BARRIER
#undef TGT

}  // namespace sdpal::cpu::attention_detail
