// Element-wise ops: unary math and activations, binary ops with numpy broadcasting, select, clip,
// cast. Semantics from coremltools mil/ops/defs/iOS15/{elementwise_unary,elementwise_binary,
// activation}.py (numpy value_inference).
#include <cmath>
#include <numbers>

#include "mil/broadcast.h"
#include "mil/ops.h"
#include "mil/tensor_util.h"

namespace sdpal::mil::detail {

bool is_float_dtype(MilDType t) {
  return t == MilDType::kFp16 || t == MilDType::kBf16 || t == MilDType::kFp32 || t == MilDType::kFp64 ||
         t == MilDType::kFp8E4M3FN || t == MilDType::kFp8E5M2;
}

std::optional<MilDType> cast_dtype_from_name(const std::string& name) {
  auto t = coreml::mil_dtype_from_name(name);
  if (!t || *t == MilDType::kString) return std::nullopt;
  return t;
}

void convert_values(float* x, int64_t n, MilDType t) {
  if (is_float_dtype(t)) return;
  if (t == MilDType::kBool) {
    parallel_map(x, x, n, [](float v) { return v != 0.0f ? 1.0f : 0.0f; });
    return;
  }
  const int bits = coreml::mil_dtype_bits(t);
  const bool is_signed = coreml::mil_dtype_is_signed(t);
  if (bits >= 32) {
    parallel_map(x, x, n, [](float v) { return std::isfinite(v) ? std::trunc(v) : v; });
    return;
  }
  const double mod = std::ldexp(1.0, bits);
  parallel_map(x, x, n, [=](float v) {
    if (!std::isfinite(v)) return 0.0f;
    double w = std::fmod(std::trunc(double(v)), mod);
    if (w < 0) w += mod;
    if (is_signed && w >= mod / 2) w -= mod;
    return float(w);
  });
}

namespace {

// y = f(x) for operand "x", written in place when x's storage may be reused, rounded to fp16 as it
// is written when the output is fp16.
template <typename F>
Tensor unary(OpContext& c, F f) {
  const Tensor x = c.tensor("x");
  Tensor y = c.output_like("x", x.shape());
  const bool round = c.round_output();
  const float* X = x.f32();
  float* Y = y.f32();
  parallel_for(
      x.numel(),
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) Y[i] = f(X[i]);
        if (round) round_span_to_fp16(Y + b, e - b);
      },
      1 << 16);
  if (round) c.set_rounded();
  return y;
}

// out = f(a, b) with broadcasting; in place over an operand of the output's shape when allowed
// (each output element reads the same element of that operand before writing it).
template <typename F>
Tensor binary(OpContext& ctx, const Tensor& a, const Tensor& b, F f, const char* a_name = nullptr,
              const char* b_name = nullptr) {
  const bool round = ctx.round_output();
  const Shape out = broadcast_shapes(a.shape(), b.shape(), ctx.where());
  Tensor y;
  if (a_name && a.shape() == out) y = ctx.output_like(a_name, out);
  if (!y.raw() && b_name && b.shape() == out) y = ctx.output_like(b_name, out);
  if (!y.raw() || y.raw() == nullptr) y = Tensor::empty(out);
  const float* A = a.f32();
  const float* B = b.f32();
  float* Y = y.f32();
  for_each_broadcast_row<2>(out, {a.shape(), b.shape()},
                            [&](int64_t o, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st, int64_t n) {
                              const float* pa = A + off[0];
                              const float* pb = B + off[1];
                              float* py = Y + o;
                              if (st[0] == 1 && st[1] == 1) {
                                for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
                              } else if (st[0] == 1 && st[1] == 0) {
                                const float vb = pb[0];
                                for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], vb);
                              } else if (st[0] == 0 && st[1] == 1) {
                                const float va = pa[0];
                                for (int64_t i = 0; i < n; ++i) py[i] = f(va, pb[i]);
                              } else {
                                for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i * st[0]], pb[i * st[1]]);
                              }
                              if (round) round_span_to_fp16(py, n);
                            });
  if (round) ctx.set_rounded();
  return y;
}

template <typename F>
void add_unary(OpRegistry& r, const char* name, F f) {
  r[name] = [f](OpContext& c) { return std::vector<Tensor>{unary(c, f)}; };
}

template <typename F>
void add_binary(OpRegistry& r, const char* name, F f) {
  r[name] = [f](OpContext& c) { return std::vector<Tensor>{binary(c, c.tensor("x"), c.tensor("y"), f, "x", "y")}; };
}

float gelu_exact(float x) { return 0.5f * x * (1.0f + std::erf(x * float(1.0 / std::numbers::sqrt2))); }

float gelu_tanh(float x) {
  const double a = std::sqrt(2.0 / std::numbers::pi) * (double(x) + 0.044715 * double(x) * x * x);
  return float(0.5 * x * (1.0 + std::tanh(a)));
}

float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

float floor_div(float a, float b) { return std::floor(a / b); }

float py_mod(float a, float b) {
  float r = std::fmod(a, b);
  if (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) r += b;
  return r;
}

}  // namespace

void register_elementwise_ops(OpRegistry& r) {
  add_unary(r, "abs", [](float x) { return std::fabs(x); });
  add_unary(r, "acos", [](float x) { return std::acos(x); });
  add_unary(r, "asin", [](float x) { return std::asin(x); });
  add_unary(r, "atan", [](float x) { return std::atan(x); });
  add_unary(r, "atanh", [](float x) { return std::atanh(x); });
  add_unary(r, "ceil", [](float x) { return std::ceil(x); });
  add_unary(r, "cos", [](float x) { return std::cos(x); });
  add_unary(r, "cosh", [](float x) { return std::cosh(x); });
  add_unary(r, "erf", [](float x) { return std::erf(x); });
  add_unary(r, "exp", [](float x) { return std::exp(x); });
  add_unary(r, "exp2", [](float x) { return std::exp2(x); });
  add_unary(r, "floor", [](float x) { return std::floor(x); });
  add_unary(r, "round", [](float x) { return std::nearbyint(x); });  // half to even, as np.round
  add_unary(r, "sign", [](float x) { return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x; });
  add_unary(r, "sin", [](float x) { return std::sin(x); });
  add_unary(r, "sinh", [](float x) { return std::sinh(x); });
  add_unary(r, "sqrt", [](float x) { return std::sqrt(x); });
  add_unary(r, "square", [](float x) { return x * x; });
  add_unary(r, "tan", [](float x) { return std::tan(x); });
  add_unary(r, "tanh", [](float x) { return std::tanh(x); });
  add_unary(r, "relu", [](float x) { return std::isnan(x) || x > 0.0f ? x : 0.0f; });
  add_unary(r, "relu6", [](float x) { return std::fmin(std::fmax(x, 0.0f), 6.0f); });
  add_unary(r, "sigmoid", sigmoid);
  add_unary(r, "silu", [](float x) { return x * sigmoid(x); });
  add_unary(r, "softsign", [](float x) { return x / (1.0f + std::fabs(x)); });
  add_unary(r, "softplus", [](float x) { return std::log1p(std::exp(-std::fabs(x))) + std::fmax(x, 0.0f); });
  add_unary(r, "logical_not", [](float x) { return x == 0.0f ? 1.0f : 0.0f; });

  // Unary ops with an epsilon or parameters.
  r["inverse"] = [](OpContext& c) {
    const float eps = float(c.float_or("epsilon", 1e-4));
    return std::vector<Tensor>{unary(c, [eps](float x) { return 1.0f / (x + eps); })};
  };
  r["log"] = [](OpContext& c) {
    const float eps = float(c.float_or("epsilon", 1e-45));
    return std::vector<Tensor>{unary(c, [eps](float x) { return std::log(x + eps); })};
  };
  r["rsqrt"] = [](OpContext& c) {
    const float eps = float(c.float_or("epsilon", 1e-12));
    return std::vector<Tensor>{unary(c, [eps](float x) { return 1.0f / std::sqrt(x + eps); })};
  };
  r["threshold"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha"));
    return std::vector<Tensor>{unary(c, [a](float x) { return std::fmax(x, a); })};
  };
  r["clip"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha")), b = float(c.float_scalar("beta"));
    return std::vector<Tensor>{unary(c, [a, b](float x) { return std::fmin(std::fmax(x, a), b); })};
  };
  r["leaky_relu"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha"));
    return std::vector<Tensor>{unary(c, [a](float x) { return x < 0.0f ? a * x : x; })};
  };
  r["elu"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha"));
    return std::vector<Tensor>{unary(c, [a](float x) { return x < 0.0f ? a * (std::exp(x) - 1.0f) : x; })};
  };
  r["thresholded_relu"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha"));
    return std::vector<Tensor>{unary(c, [a](float x) { return x < a ? 0.0f : x; })};
  };
  r["linear_activation"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha")), b = float(c.float_scalar("beta"));
    return std::vector<Tensor>{unary(c, [a, b](float x) { return a * x + b; })};
  };
  r["scaled_tanh"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha")), b = float(c.float_scalar("beta"));
    return std::vector<Tensor>{unary(c, [a, b](float x) { return a * std::tanh(x * b); })};
  };
  r["sigmoid_hard"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha")), b = float(c.float_scalar("beta"));
    return std::vector<Tensor>{unary(c, [a, b](float x) { return std::fmin(std::fmax(a * x + b, 0.0f), 1.0f); })};
  };
  r["clamped_relu"] = [](OpContext& c) {
    const float a = float(c.float_scalar("alpha")), b = float(c.float_scalar("beta"));
    return std::vector<Tensor>{unary(c, [a, b](float x) {
      return x >= 0.0f ? std::fmin(b, x) : std::fmin(b, a * x);
    })};
  };
  r["prelu"] = [](OpContext& c) {
    const Tensor x = c.tensor("x"), alpha = c.tensor("alpha");
    if (x.rank() < 3 || alpha.rank() != 1 || alpha.numel() != x.dim(1))
      c.fail("alpha " + shape_str(alpha.shape()) + " must be a vector over the channels of x " + shape_str(x.shape()));
    Shape s(size_t(x.rank()), 1);
    s[1] = x.dim(1);
    return std::vector<Tensor>{binary(c, x, alpha.reshape(s), [](float v, float a) { return v > 0.0f ? v : v * a; })};
  };
  r["gelu"] = [](OpContext& c) {
    const std::string mode = c.string_or("mode", "EXACT");
    if (mode == "EXACT") return std::vector<Tensor>{unary(c, gelu_exact)};
    if (mode == "TANH_APPROXIMATION") return std::vector<Tensor>{unary(c, gelu_tanh)};
    if (mode == "SIGMOID_APPROXIMATION") return std::vector<Tensor>{unary(c, [](float v) { return v * sigmoid(1.702f * v); })};
    c.fail("unknown gelu mode '" + mode + "' (EXACT, TANH_APPROXIMATION or SIGMOID_APPROXIMATION)");
  };
  r["identity"] = [](OpContext& c) { return std::vector<Tensor>{c.tensor("x")}; };
  r["cast"] = [](OpContext& c) {
    const std::string name = c.string_param("dtype");
    const auto t = cast_dtype_from_name(name);
    if (!t) c.fail("unknown cast dtype '" + name + "'");
    if (*t != c.out_dtype()) c.fail("cast to '" + name + "' but the output is declared " + c.out_type().str());
    return std::vector<Tensor>{c.tensor("x").clone()};  // the interpreter converts the copy to the output type
  };

  add_binary(r, "add", [](float a, float b) { return a + b; });
  add_binary(r, "sub", [](float a, float b) { return a - b; });
  add_binary(r, "mul", [](float a, float b) { return a * b; });
  add_binary(r, "real_div", [](float a, float b) { return a / b; });
  add_binary(r, "pow", [](float a, float b) { return std::pow(a, b); });
  add_binary(r, "maximum", [](float a, float b) { return std::isnan(a) || std::isnan(b) ? a + b : std::fmax(a, b); });
  add_binary(r, "minimum", [](float a, float b) { return std::isnan(a) || std::isnan(b) ? a + b : std::fmin(a, b); });
  add_binary(r, "floor_div", floor_div);
  add_binary(r, "mod", py_mod);
  add_binary(r, "equal", [](float a, float b) { return a == b ? 1.0f : 0.0f; });
  add_binary(r, "not_equal", [](float a, float b) { return a != b ? 1.0f : 0.0f; });
  add_binary(r, "less", [](float a, float b) { return a < b ? 1.0f : 0.0f; });
  add_binary(r, "less_equal", [](float a, float b) { return a <= b ? 1.0f : 0.0f; });
  add_binary(r, "greater", [](float a, float b) { return a > b ? 1.0f : 0.0f; });
  add_binary(r, "greater_equal", [](float a, float b) { return a >= b ? 1.0f : 0.0f; });
  add_binary(r, "logical_and", [](float a, float b) { return (a != 0.0f && b != 0.0f) ? 1.0f : 0.0f; });
  add_binary(r, "logical_or", [](float a, float b) { return (a != 0.0f || b != 0.0f) ? 1.0f : 0.0f; });
  add_binary(r, "logical_xor", [](float a, float b) { return ((a != 0.0f) != (b != 0.0f)) ? 1.0f : 0.0f; });

  r["select"] = [](OpContext& c) {
    const Tensor cond = c.tensor("cond"), a = c.tensor("a"), b = c.tensor("b");
    const Shape out = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), c.where()), b.shape(), c.where());
    Tensor y = Tensor::empty(out);
    const float *C = cond.f32(), *A = a.f32(), *B = b.f32();
    float* Y = y.f32();
    for_each_broadcast_row<3>(out, {cond.shape(), a.shape(), b.shape()},
                              [&](int64_t o, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& st, int64_t n) {
                                for (int64_t i = 0; i < n; ++i)
                                  Y[o + i] = C[off[0] + i * st[0]] != 0.0f ? A[off[1] + i * st[1]] : B[off[2] + i * st[2]];
                              });
    return std::vector<Tensor>{y};
  };
}

}  // namespace sdpal::mil::detail
