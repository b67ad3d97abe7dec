#include "kernels/cpu/conv2d.h"

#include "core/mapped_pages.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/flop_counter.h"
#include "core/threads.h"
#include "kernels/cpu/bf16_convert.h"
#include "kernels/cpu/dnnl_context.h"
#include "kernels/cpu/elementwise.h"

namespace sdpal::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
namespace du = dnnl_util;

namespace {

enum class ResidualMode { kNone, kBinary, kSum };

struct Plan {
  dnnl::convolution_forward prim;
  memory::desc src_md, dst_md, scratch_md;
  memory weights;  // dense source: the prepared weights; palettized: unset (decoded per call)
  memory::desc weights_md;
  std::shared_ptr<const du::PackedLayout> packed;  // palettized source: prepared for weights_md
  ResidualMode mode = ResidualMode::kNone;
};

}  // namespace

struct Conv2d::Impl {
  int64_t o = 0, i = 0, kh = 0, kw = 0;
  int stride = 1;
  Padding2d pad;
  Precision precision = Precision::F32;
  dt act_dt = dt::f32;  // src and weights; dst, bias and residual are always f32
  bool has_bias = false;
  memory bias;
  mutable std::mutex mu;
  // Weights are reordered at the first run, into the layout oneDNN picks for that input shape (its
  // choice depends on the spatial size); until then the F32 copy is kept. A later shape that
  // prefers another layout gets a second reordered copy. In bf16 mode the plain copy is bf16.
  mutable Tensor plain;
  mutable du::PreparedWeights weights;
  mutable bool prepared = false;
  mutable du::PackedWeights packed;  // set for a palettized source: kept packed, decoded at each run
  std::string weight_name;
  mutable std::map<std::array<int64_t, 5>, Plan> plans;

  int64_t out_h(int64_t h) const { return (h + pad.top + pad.bottom - kh) / stride + 1; }
  int64_t out_w(int64_t w) const { return (w + pad.left + pad.right - kw) / stride + 1; }

  std::string name() const {
    return "Conv2d [" + std::to_string(o) + ", " + std::to_string(i) + ", " + std::to_string(kh) + ", " +
           std::to_string(kw) + "] stride " + std::to_string(stride);
  }

  // banded: the plan of one band of output rows, whose input rows arrive with their halo, so without
  // top/bottom padding.
  dnnl::convolution_forward::primitive_desc make_pd(int64_t n, int64_t h, int64_t w, ResidualMode mode,
                                                    const memory::desc& w_md, bool banded = false) const {
    memory::desc src({n, i, h, w}, act_dt, tag::nhwc);
    const int pt = banded ? 0 : pad.top, pb = banded ? 0 : pad.bottom;
    memory::desc dst({n, o, (h + pt + pb - kh) / stride + 1, out_w(w)}, dt::f32, tag::nhwc);
    memory::desc bias_md = has_bias ? memory::desc({o}, dt::f32, tag::x) : memory::desc();
    dnnl::primitive_attr attr = du::base_attr();
    dnnl::post_ops ops;
    if (mode == ResidualMode::kBinary) ops.append_binary(dnnl::algorithm::binary_add, dst);
    if (mode == ResidualMode::kSum) ops.append_sum(1.f);
    attr.set_post_ops(ops);
    // convolution_direct, never Winograd: its transform changes rounding noticeably.
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                                      w_md, bias_md, dst, {stride, stride}, {pt, pad.left}, {pb, pad.right});
    return dnnl::convolution_forward::primitive_desc(d, attr, du::engine());
  }

  memory::desc plain_f32_md() const { return memory::desc({o, i, kh, kw}, dt::f32, tag::oihw); }
  memory::desc any_weights() const { return memory::desc({o, i, kh, kw}, act_dt, tag::any); }

  void fill(Plan& p, const dnnl::convolution_forward::primitive_desc& pd, ResidualMode mode) const {
    p.prim = dnnl::convolution_forward(pd);
    p.src_md = pd.src_desc();
    p.dst_md = pd.dst_desc();
    p.scratch_md = pd.scratchpad_desc();
    p.weights_md = pd.weights_desc();
    p.mode = mode;
    if (packed) {
      p.packed = packed.prepare(plain_f32_md(), p.weights_md);  // re-packed for this layout once
      return;
    }
    if (!prepared) {
      memory::desc plain_md({o, i, kh, kw}, act_dt, tag::oihw);
      weights = du::PreparedWeights(plain_md, plain.raw(), pd.weights_desc());
      plain = Tensor();
      prepared = true;
    }
    p.weights = weights.get(pd.weights_desc());
    p.mode = mode;
  }

  // Runs a plan: src in act_dt, out (and residual) as the plan's dst. A binary residual the plan turned
  // into a sum is copied into out first.
  void execute(const Plan& p, ResidualMode requested, const void* src, const memory& wts, float* out,
               const float* residual) const {
    if (requested == ResidualMode::kBinary && p.mode == ResidualMode::kSum)
      std::memcpy(out, residual, p.dst_md.get_size());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, du::wrap(p.src_md, src)},
                                         {DNNL_ARG_WEIGHTS, wts},
                                         {DNNL_ARG_DST, du::wrap(p.dst_md, out)}};
    if (has_bias) args[DNNL_ARG_BIAS] = bias;
    if (p.mode == ResidualMode::kBinary)
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = du::wrap(p.dst_md, residual);
    du::execute(p.prim, args, p.scratch_md, name());
  }

  const Plan& plan(int64_t n, int64_t h, int64_t w, ResidualMode mode, bool banded = false) const {
    std::lock_guard<std::mutex> lock(mu);
    std::array<int64_t, 5> key{n, h, w, int64_t(mode), int64_t(banded)};
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    Plan p;
    try {
      auto pd = make_pd(n, h, w, mode, any_weights(), banded);
      ResidualMode used = mode;
      if (mode == ResidualMode::kBinary) {
        // A binary add only the reference code supports would be far slower than a copy + sum. In
        // bf16, oneDNN 2.6 runs a binary add on its older jit AMX convolution instead of brgconv:
        // ~20% slower on SD's 3x3 shapes than copying the residual and using the sum (and its
        // weight layout differs: a second copy of the weights).
        const bool ref = du::is_reference_impl(pd);
        if (ref || (act_dt == dt::bf16 && !du::is_brgemm_impl(pd))) {
          auto sum_pd = make_pd(n, h, w, ResidualMode::kSum, any_weights(), banded);
          if (ref || du::is_brgemm_impl(sum_pd)) {
            pd = sum_pd;
            used = ResidualMode::kSum;
          }
        }
      }
      fill(p, pd, used);
    } catch (const dnnl::error& e) {
      du::rethrow(e, name() + " on input [" + std::to_string(n) + ", " + std::to_string(h) + ", " +
                         std::to_string(w) + ", " + std::to_string(i) + "]");
    }
    return plans.emplace(key, p).first->second;
  }
};

Conv2d::Conv2d(const TensorView& weight, const TensorView* bias, int stride, int padding, Precision precision)
    : Conv2d(weight, bias, stride, Padding2d{padding, padding, padding, padding}, precision) {}

Conv2d::Conv2d(const TensorView& weight, const TensorView* bias, int stride, Padding2d padding, Precision precision)
    : impl_(std::make_unique<Impl>()) {
  const Shape& s = weight.shape;
  check(s.size() == 4 && s[0] > 0 && s[1] > 0 && s[2] > 0 && s[3] > 0, ErrorCode::kInvalidArgument,
        "Conv2d weight '" + weight.name + "' must be [O, I, kh, kw], got " + shape_str(s));
  check(stride >= 1, ErrorCode::kInvalidArgument, "Conv2d '" + weight.name + "': stride must be >= 1");
  check(padding.top >= 0 && padding.bottom >= 0 && padding.left >= 0 && padding.right >= 0,
        ErrorCode::kInvalidArgument, "Conv2d '" + weight.name + "': negative padding");
  require_precision_supported(precision, "Conv2d '" + weight.name + "'");
  Impl& im = *impl_;
  im.precision = precision;
  im.act_dt = precision == Precision::BF16 ? dt::bf16 : dt::f32;
  im.o = s[0];
  im.i = s[1];
  im.kh = s[2];
  im.kw = s[3];
  im.stride = stride;
  im.pad = padding;
  im.weight_name = weight.name;
  if (weight.palettized) {
    check(weight.palettized->shape == s, ErrorCode::kInvalidArgument,
          "Conv2d weight '" + weight.name + "': palettized source has shape " + shape_str(weight.palettized->shape) +
              ", view has " + shape_str(s));
    im.packed = du::PackedWeights(weight.palettized, weight.owner);
    im.prepared = true;  // nothing to prepare: decoded at each run
  } else {
    im.plain = to_f32(weight);
    release_mapped_pages(weight.data, weight.nbytes);  // the kernel keeps its own copy (core/mapped_pages.h)
  }
  if (precision == Precision::BF16 && !im.packed) {
    Tensor b16 = Tensor::empty(im.plain.shape(), DType::BF16);
    f32_to_bf16_serial(im.plain.f32(), static_cast<uint16_t*>(b16.raw()), im.plain.numel());
    im.plain = std::move(b16);
  }
  try {
    if (bias) {
      check(bias->numel() == im.o, ErrorCode::kInvalidArgument,
            "Conv2d bias '" + bias->name + "' has shape " + shape_str(bias->shape) + ", expected [" +
                std::to_string(im.o) + "]");
      Tensor b = to_f32(*bias);
      im.has_bias = true;
      im.bias = memory({{im.o}, dt::f32, tag::x}, du::engine());
      std::memcpy(im.bias.get_data_handle(), b.f32(), size_t(im.o) * 4);
    }
  } catch (const dnnl::error& e) {
    du::rethrow(e, "preparing Conv2d weight '" + weight.name + "'");
  }
}

Conv2d::~Conv2d() = default;
Conv2d::Conv2d(Conv2d&&) noexcept = default;
Conv2d& Conv2d::operator=(Conv2d&&) noexcept = default;

int64_t Conv2d::in_channels() const { return impl_->i; }
int64_t Conv2d::out_channels() const { return impl_->o; }
int Conv2d::kernel_size() const { return int(impl_->kh); }
int Conv2d::kernel_width() const { return int(impl_->kw); }
int Conv2d::stride() const { return impl_->stride; }
Padding2d Conv2d::padding() const { return impl_->pad; }
Precision Conv2d::precision() const { return impl_->precision; }

size_t Conv2d::weight_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->packed) return impl_->packed.bytes();
  return impl_->prepared ? impl_->weights.bytes() : impl_->plain.nbytes();
}
int64_t Conv2d::out_height(int64_t h) const { return impl_->out_h(h); }
int64_t Conv2d::out_width(int64_t w) const { return impl_->out_w(w); }

int64_t Conv2d::cached_plans() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return int64_t(impl_->plans.size());
}

namespace {

// Output rows per band when a bf16 convolution runs band by band: a divisor of the output height (one
// plan, one weight layout) whose input band with its halo fits in kBandBytes; 0 = don't band.
constexpr int64_t kBandBytes = int64_t(8) << 20;
constexpr int64_t kBandMinInputBytes = int64_t(24) << 20;

int64_t band_rows(int64_t out_h, int64_t in_row_bytes, int64_t halo) {
  const int64_t most = kBandBytes / in_row_bytes - halo;
  for (int64_t r = std::min(most, out_h / 2); r >= 8; --r)
    if (out_h % r == 0) return r;
  return 0;
}

}  // namespace

// Band by band (bf16, stride 1): each band's input rows, with the halo the kernel needs and zero rows
// where they fall outside the picture, are rounded to bf16 (and nearest-upsampled when `up`) into a
// small per-thread buffer, and the band's output rows are written in place. Neither the whole bf16 copy
// of the input nor an upsampled fp32 tensor exists: at 512x512 in the VAE decoder they are 134 and
// 268 MB. h, w are the sizes of x; the convolution sees 2h x 2w when `up`.
void Conv2d::run_banded(const float* x, int64_t n, int64_t h, int64_t w, bool up, int64_t rows, float* out,
                        const float* residual) const {
  const Impl& im = *impl_;
  const int64_t H = up ? 2 * h : h, W = up ? 2 * w : w;
  const int64_t ho = im.out_h(H), wo = im.out_w(W), rows_in = rows + im.kh - 1;
  ResidualMode mode = !residual ? ResidualMode::kNone : residual == out ? ResidualMode::kSum : ResidualMode::kBinary;
  const Plan& p = im.plan(1, rows_in, W, mode, /*banded=*/true);
  thread_local Bf16Scratch xb;
  uint16_t* band = xb.get(size_t(rows_in * W * im.i));
  memory wts = im.packed ? im.packed.decode(*p.packed, im.name() + " '" + im.weight_name + "'") : p.weights;
  const int64_t c = im.i, out_row = wo * im.o;
  for (int64_t img = 0; img < n; ++img) {
    const float* xi = x + img * h * w * c;
    for (int64_t r0 = 0; r0 < ho; r0 += rows) {
      parallel_for(rows_in, [&](int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) {
          uint16_t* dst = band + j * W * c;
          const int64_t y = r0 + j - im.pad.top;  // row of the (upsampled) input
          if (y < 0 || y >= H) {
            std::memset(dst, 0, size_t(W * c) * 2);
          } else if (!up) {
            f32_to_bf16_serial(xi + y * w * c, dst, W * c);
          } else {
            const float* src = xi + (y / 2) * w * c;
            for (int64_t xx = 0; xx < w; ++xx) {
              f32_to_bf16_serial(src + xx * c, dst + 2 * xx * c, c);
              std::memcpy(dst + (2 * xx + 1) * c, dst + 2 * xx * c, size_t(c) * 2);
            }
          }
        }
      });
      const int64_t at = (img * ho + r0) * out_row;
      im.execute(p, mode, band, wts, out + at, residual ? residual + at : nullptr);
    }
  }
  count_flops(2 * n * ho * wo * im.o * im.i * im.kh * im.kw);
}

int64_t Conv2d::banded_rows(int64_t n, int64_t h, int64_t w, bool up) const {
  const Impl& im = *impl_;
  if (im.act_dt != dt::bf16 || im.stride != 1) return 0;
  const int64_t H = up ? 2 * h : h, W = up ? 2 * w : w;
  const int64_t in_row_bytes = W * im.i * 2;
  if (!up && n * H * in_row_bytes < kBandMinInputBytes) return 0;
  return band_rows(im.out_h(H), in_row_bytes, im.kh - 1);
}

void Conv2d::run(const float* x, int64_t n, int64_t h, int64_t w, float* out, const float* residual) const {
  const Impl& im = *impl_;
  check(n >= 0 && h > 0 && w > 0 && im.out_h(h) > 0 && im.out_w(w) > 0 &&
            h + im.pad.top + im.pad.bottom >= im.kh && w + im.pad.left + im.pad.right >= im.kw,
        ErrorCode::kInvalidArgument,
        im.name() + ": input " + std::to_string(h) + "x" + std::to_string(w) + " is smaller than the kernel");
  if (n == 0) return;
  if (const int64_t rows = banded_rows(n, h, w, false)) return run_banded(x, n, h, w, false, rows, out, residual);
  ResidualMode mode = !residual ? ResidualMode::kNone : residual == out ? ResidualMode::kSum : ResidualMode::kBinary;
  const Plan& p = im.plan(n, h, w, mode);
  const void* src = x;
  if (im.act_dt == dt::bf16) {
    thread_local Bf16Scratch xb;  // per thread: run() may be called from several threads
    const int64_t count = n * h * w * im.i;
    uint16_t* xs = xb.get(size_t(count));
    f32_to_bf16_parallel(x, xs, count);
    src = xs;
  }
  memory wts = im.packed ? im.packed.decode(*p.packed, im.name() + " '" + im.weight_name + "'") : p.weights;
  im.execute(p, mode, src, wts, out, residual);
  count_flops(2 * n * im.out_h(h) * im.out_w(w) * im.o * im.i * im.kh * im.kw);
}

Tensor Conv2d::run_upsampled2x(const Tensor& x) const {
  const Impl& im = *impl_;
  check(x.rank() == 4 && x.dim(3) == im.i && x.dim(1) > 0 && x.dim(2) > 0, ErrorCode::kInvalidArgument,
        im.name() + " expects NHWC input with " + std::to_string(im.i) + " channels, got " + shape_str(x.shape()));
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
  const int64_t rows = banded_rows(n, h, w, true);
  if (!rows) {
    Tensor up = Tensor::empty({n, 2 * h, 2 * w, im.i});
    upsample_nearest2x(x.f32(), up.f32(), n, h, w, im.i);
    return run(up);
  }
  Tensor out = Tensor::empty({n, im.out_h(2 * h), im.out_w(2 * w), im.o});
  run_banded(x.f32(), n, h, w, true, rows, out.f32(), nullptr);
  return out;
}

Tensor Conv2d::run(const Tensor& x, const Tensor* residual) const {
  const Impl& im = *impl_;
  check(x.rank() == 4 && x.dim(3) == im.i, ErrorCode::kInvalidArgument,
        im.name() + " expects NHWC input with " + std::to_string(im.i) + " channels, got " + shape_str(x.shape()));
  int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
  check(h > 0 && w > 0 && im.out_h(h) > 0 && im.out_w(w) > 0, ErrorCode::kInvalidArgument,
        im.name() + ": input " + shape_str(x.shape()) + " is smaller than the kernel");
  Shape out_shape{n, im.out_h(h), im.out_w(w), im.o};
  if (residual)
    check(residual->shape() == out_shape, ErrorCode::kInvalidArgument,
          im.name() + ": residual has shape " + shape_str(residual->shape()) + ", expected " + shape_str(out_shape));
  Tensor out = Tensor::empty(out_shape);
  run(x.f32(), n, h, w, out.f32(), residual ? residual->f32() : nullptr);
  return out;
}

}  // namespace sdpal::cpu
