#include "kernels/cpu/linear.h"

#include "core/mapped_pages.h"

#include <cstring>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/flop_counter.h"
#include "kernels/cpu/bf16_convert.h"
#include "kernels/cpu/dnnl_context.h"

namespace sdpal::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
namespace du = dnnl_util;

namespace {

// The weight layout is chosen for this M; oneDNN's brgemm matmul picks the same blocked layout for
// every M on the CPUs seen so far, and PreparedWeights keeps a second copy if one ever differs.
constexpr int64_t kRepresentativeM = 256;

enum class ResidualMode { kNone, kBinary, kSum };

struct Plan {
  dnnl::matmul prim;
  memory::desc src_md, dst_md, residual_md, scratch_md;
  memory weights;  // dense source: the prepared weights; palettized: unset (decoded per call)
  memory::desc weights_md;
  std::shared_ptr<const du::PackedLayout> packed;  // palettized source: prepared for weights_md
  ResidualMode mode = ResidualMode::kNone;
};

}  // namespace

struct Linear::Impl {
  int64_t n = 0, k = 0;
  Precision precision = Precision::F32;
  dt act_dt = dt::f32;  // data type of the GEMM's src and weights (dst, bias, residual: always f32)
  bool has_bias = false;
  memory bias;
  mutable std::mutex mu;
  mutable du::PreparedWeights weights;
  mutable du::PackedWeights packed;  // set for a palettized source: kept packed, decoded at each run
  std::string name;
  mutable std::map<std::pair<int64_t, int>, Plan> plans;

  dnnl::matmul::primitive_desc make_pd(int64_t m, ResidualMode mode, const memory::desc& w_md) const {
    memory::desc src({m, k}, act_dt, tag::ab), dst({m, n}, dt::f32, tag::ab);
    memory::desc bias_md = has_bias ? memory::desc({1, n}, dt::f32, tag::ab) : memory::desc();
    dnnl::primitive_attr attr = du::base_attr();
    dnnl::post_ops ops;
    if (mode == ResidualMode::kBinary) ops.append_binary(dnnl::algorithm::binary_add, dst);
    if (mode == ResidualMode::kSum) ops.append_sum(1.f);
    attr.set_post_ops(ops);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w_md, bias_md, dst), attr, du::engine());
  }

  const Plan& plan(int64_t m, ResidualMode mode) const {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_pair(m, int(mode));
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    Plan p;
    try {
      const memory::desc any({k, n}, act_dt, tag::any);
      auto pd = make_pd(m, mode, any);
      // A fused binary add that only oneDNN's reference code supports would be far slower than
      // copying the residual into y and using the (always fast) sum post-op.
      if (mode == ResidualMode::kBinary && du::is_reference_impl(pd))
        fill(p, make_pd(m, ResidualMode::kSum, any), ResidualMode::kSum);
      else
        fill(p, pd, mode);
    } catch (const dnnl::error& e) {
      du::rethrow(e, "Linear [" + std::to_string(n) + ", " + std::to_string(k) + "] with M=" + std::to_string(m));
    }
    return plans.emplace(key, p).first->second;
  }

  void fill(Plan& p, const dnnl::matmul::primitive_desc& pd, ResidualMode mode) const {
    p.prim = dnnl::matmul(pd);
    p.mode = mode;
    p.src_md = pd.src_desc();
    p.dst_md = pd.dst_desc();
    p.residual_md = pd.dst_desc();
    p.scratch_md = pd.scratchpad_desc();
    p.weights_md = pd.weights_desc();
    if (packed)
      p.packed = packed.prepare(plain_md(), p.weights_md);
    else
      p.weights = weights.get(pd.weights_desc());
  }

  // torch stores W as [N, K]: that is the [K, N] matmul operand in column-major ("ba") order.
  memory::desc plain_md() const { return memory::desc({k, n}, dt::f32, tag::ba); }
};

Linear::Linear(const TensorView& weight, const TensorView* bias, Precision precision)
    : impl_(std::make_unique<Impl>()) {
  const Shape& s = weight.shape;
  bool ok = s.size() == 2 || (s.size() == 4 && s[2] == 1 && s[3] == 1);
  check(ok && s[0] > 0 && s[1] > 0, ErrorCode::kInvalidArgument,
        "Linear weight '" + weight.name + "' must be [N, K] or [N, K, 1, 1], got " + shape_str(s));
  require_precision_supported(precision, "Linear '" + weight.name + "'");
  impl_->n = s[0];
  impl_->k = s[1];
  impl_->precision = precision;
  impl_->act_dt = precision == Precision::BF16 ? dt::bf16 : dt::f32;
  impl_->name = weight.name;
  if (weight.palettized) {
    const std::shared_ptr<const PalettizedView>& pv = weight.palettized;  // see reshape_view for matrix views
    check(pv->shape == s, ErrorCode::kInvalidArgument,
          "Linear weight '" + weight.name + "': palettized source has shape " + shape_str(pv->shape) +
              ", view has " + shape_str(s));
    impl_->packed = du::PackedWeights(pv, weight.owner);
  }
  Tensor w = weight.palettized ? Tensor() : to_f32(weight);
  // The kernel keeps its own copy from here on (core/mapped_pages.h).
  if (!weight.palettized) release_mapped_pages(weight.data, weight.nbytes);
  try {
    if (bias) {
      check(bias->numel() == impl_->n, ErrorCode::kInvalidArgument,
            "Linear bias '" + bias->name + "' has shape " + shape_str(bias->shape) + ", expected [" +
                std::to_string(impl_->n) + "]");
      Tensor b = to_f32(*bias);
      impl_->has_bias = true;
      impl_->bias = memory({{1, impl_->n}, dt::f32, tag::ab}, du::engine());
      std::memcpy(impl_->bias.get_data_handle(), b.f32(), size_t(impl_->n) * 4);
    }
    // In bf16 mode the reorder also rounds the weights to bf16 (nearest even).
    memory::desc plain = impl_->plain_md();
    auto pd = impl_->make_pd(kRepresentativeM, ResidualMode::kNone,
                             memory::desc({impl_->k, impl_->n}, impl_->act_dt, tag::any));
    // Palettized: no resident float copy; the indices are re-packed in the layout's order now (at
    // load) and decoded per call.
    if (impl_->packed)
      impl_->packed.prepare(plain, pd.weights_desc());
    else
      impl_->weights = du::PreparedWeights(plain, w.f32(), pd.weights_desc());
  } catch (const dnnl::error& e) {
    du::rethrow(e, "preparing Linear weight '" + weight.name + "'");
  }
}

Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

int64_t Linear::in_features() const { return impl_->k; }
int64_t Linear::out_features() const { return impl_->n; }
Precision Linear::precision() const { return impl_->precision; }

size_t Linear::weight_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->packed ? impl_->packed.bytes() : impl_->weights.bytes();
}

int64_t Linear::cached_plans() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return int64_t(impl_->plans.size());
}

void decode_palettized_weight(const PalettizedView& v, float* out) { du::decode_palettized_parallel(v, out); }

void f32_to_bf16(const float* src, uint16_t* dst, int64_t n) { f32_to_bf16_parallel(src, dst, n); }

void Linear::run(const float* x, int64_t m, float* y, const float* residual) const {
  check(m >= 0, ErrorCode::kInvalidArgument, "Linear: negative row count");
  check(static_cast<const void*>(x) != y, ErrorCode::kInvalidArgument, "Linear: output must not alias the input");
  if (m == 0) return;
  if (impl_->act_dt == dt::bf16) {
    thread_local Bf16Scratch xb;  // per thread: run() may be called from several threads
    uint16_t* xs = xb.get(size_t(m * impl_->k));
    f32_to_bf16_parallel(x, xs, m * impl_->k);
    return execute(xs, m, y, residual);
  }
  execute(x, m, y, residual);
}

void Linear::run_bf16(const uint16_t* x, int64_t m, float* y, const float* residual) const {
  check(impl_->act_dt == dt::bf16, ErrorCode::kInvalidArgument, "Linear::run_bf16 needs Precision::BF16");
  check(m >= 0, ErrorCode::kInvalidArgument, "Linear: negative row count");
  check(static_cast<const void*>(x) != y, ErrorCode::kInvalidArgument, "Linear: output must not alias the input");
  if (m == 0) return;
  execute(x, m, y, residual);
}

void Linear::execute(const void* src, int64_t m, float* y, const float* residual) const {
  const Impl& im = *impl_;
  ResidualMode mode = !residual ? ResidualMode::kNone : residual == y ? ResidualMode::kSum : ResidualMode::kBinary;
  const Plan& p = im.plan(m, mode);
  if (mode == ResidualMode::kBinary && p.mode == ResidualMode::kSum)
    std::memcpy(y, residual, size_t(m * im.n) * 4);
  memory w = im.packed ? im.packed.decode(*p.packed, "Linear '" + im.name + "'") : p.weights;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, du::wrap(p.src_md, src)},
                                       {DNNL_ARG_WEIGHTS, w},
                                       {DNNL_ARG_DST, du::wrap(p.dst_md, y)}};
  if (im.has_bias) args[DNNL_ARG_BIAS] = im.bias;
  if (p.mode == ResidualMode::kBinary)
    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = du::wrap(p.residual_md, residual);
  du::execute(p.prim, args, p.scratch_md, "Linear");
  count_flops(2 * m * im.n * im.k);
}

Tensor Linear::run(const Tensor& x, const Tensor* residual) const {
  check(x.rank() >= 1 && x.dim(-1) == impl_->k, ErrorCode::kInvalidArgument,
        "Linear expects [..., " + std::to_string(impl_->k) + "], got " + shape_str(x.shape()));
  Shape out_shape = x.shape();
  out_shape.back() = impl_->n;
  if (residual)
    check(residual->shape() == out_shape, ErrorCode::kInvalidArgument,
          "Linear residual has shape " + shape_str(residual->shape()) + ", expected " + shape_str(out_shape));
  Tensor y = Tensor::empty(out_shape);
  run(x.f32(), x.numel() / impl_->k, y.f32(), residual ? residual->f32() : nullptr);
  return y;
}

}  // namespace sdpal::cpu
