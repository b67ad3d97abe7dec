// Constants and compile-time (constexpr_*) ops: decoded from the literal or the mapped weight file
// when an op uses them. Semantics from coremltools mil/ops/defs/iOS16/constexpr_ops.py and
// iOS18/compression.py.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/palettized.h"
#include "core/threads.h"
#include "mil/ops.h"
#include "mil/tensor_util.h"

namespace sdpal::mil::detail {

using coreml::MilOp;
using coreml::MilValue;

namespace {

float fp8_e4m3fn(uint8_t b) {
  const float sign = (b & 0x80) ? -1.0f : 1.0f;
  const int e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return std::nanf("");
  if (e == 0) return sign * std::ldexp(float(m), -9);
  return sign * std::ldexp(1.0f + float(m) / 8.0f, e - 7);
}

// Decodes n elements of `t` (little-endian, sub-byte types packed LSB first) into out.
void decode_elements(MilDType t, const uint8_t* p, size_t nbytes, int64_t n, float* out, const std::string& what) {
  const int bits = coreml::mil_dtype_bits(t);
  if (bits > 0 && bits < 8) {
    if (t != MilDType::kInt4 && t != MilDType::kUInt1 && t != MilDType::kUInt2 && t != MilDType::kUInt3 &&
        t != MilDType::kUInt4 && t != MilDType::kUInt6)
      fail(ErrorCode::kUnsupported, "'" + what + "': element type " + coreml::mil_dtype_name(t) + " is not supported");
    parallel_for(
        n,
        [&](int64_t b, int64_t e) {
          std::vector<uint8_t> idx(static_cast<size_t>(std::min<int64_t>(e - b, 1 << 16)));
          for (int64_t s = b; s < e; s += int64_t(idx.size())) {
            const int64_t c = std::min<int64_t>(int64_t(idx.size()), e - s);
            unpack_indices(p, nbytes, bits, s, c, idx.data());
            for (int64_t i = 0; i < c; ++i) {
              int v = idx[size_t(i)];
              if (t == MilDType::kInt4 && v >= 8) v -= 16;
              out[s + i] = float(v);
            }
          }
        },
        1 << 16);
    return;
  }
  auto each = [&](auto load) {
    parallel_for(
        n,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) out[i] = load(i);
        },
        1 << 16);
  };
  auto rd = [&](auto tag, int64_t i) {
    decltype(tag) v;
    std::memcpy(&v, p + size_t(i) * sizeof(v), sizeof(v));
    return v;
  };
  switch (t) {
    case MilDType::kFp32: each([&](int64_t i) { return rd(float{}, i); }); return;
    case MilDType::kFp16: each([&](int64_t i) { return f16_to_f32(rd(uint16_t{}, i)); }); return;
    case MilDType::kBf16: each([&](int64_t i) { return bf16_to_f32(rd(uint16_t{}, i)); }); return;
    case MilDType::kFp64: each([&](int64_t i) { return float(rd(double{}, i)); }); return;
    case MilDType::kFp8E4M3FN: each([&](int64_t i) { return fp8_e4m3fn(p[i]); }); return;
    case MilDType::kFp8E5M2: each([&](int64_t i) { return f16_to_f32(uint16_t(p[i] << 8)); }); return;
    case MilDType::kBool: each([&](int64_t i) { return p[i] ? 1.0f : 0.0f; }); return;
    case MilDType::kInt8: each([&](int64_t i) { return float(rd(int8_t{}, i)); }); return;
    case MilDType::kUInt8: each([&](int64_t i) { return float(p[i]); }); return;
    case MilDType::kInt16: each([&](int64_t i) { return float(rd(int16_t{}, i)); }); return;
    case MilDType::kUInt16: each([&](int64_t i) { return float(rd(uint16_t{}, i)); }); return;
    case MilDType::kInt32: each([&](int64_t i) { return float(rd(int32_t{}, i)); }); return;
    case MilDType::kUInt32: each([&](int64_t i) { return float(rd(uint32_t{}, i)); }); return;
    case MilDType::kInt64: each([&](int64_t i) { return float(rd(int64_t{}, i)); }); return;
    case MilDType::kUInt64: each([&](int64_t i) { return float(rd(uint64_t{}, i)); }); return;
    default: break;
  }
  fail(ErrorCode::kUnsupported, "'" + what + "': element type " + coreml::mil_dtype_name(t) + " is not supported");
}

const MilValue& operand(const coreml::MilBlock& block, const MilOp& op, std::string_view name) {
  const MilValue* v = coreml::const_operand(block, op, name);
  if (!v) fail(ErrorCode::kFormat, op.where() + ": operand '" + std::string(name) + "' must be a constant");
  return *v;
}

Tensor operand_tensor(const coreml::MilBlock& block, const MilOp& op, std::string_view name,
                      const coreml::WeightFiles* weights) {
  return materialize_constant(operand(block, op, name), weights, op.name() + "." + std::string(name));
}

MilDType output_dtype(const MilOp& op) {
  if (op.outputs.size() != 1) fail(ErrorCode::kFormat, op.where() + ": must have one output");
  return op.outputs[0].type.dtype;
}

Value lut_to_dense(const coreml::MilBlock& block, const MilOp& op, const coreml::WeightFiles* weights) {
  const PalettizedView pv = coreml::palettized_view(block, op, weights);
  Tensor out = Tensor::empty(pv.shape);
  float* o = out.f32();
  parallel_for(
      pv.numel(), [&](int64_t b, int64_t e) { decode_palettized(pv, b, e, o + b); }, 1 << 18);
  return Value{output_dtype(op), out};
}

// unquantized = scale * (quantized_data - zero_point); scale and zero_point scalars or vectors along `axis`.
Value affine_dequantize(const coreml::MilBlock& block, const MilOp& op, const coreml::WeightFiles* weights) {
  const Tensor q = operand_tensor(block, op, "quantized_data", weights);
  const Tensor zp = operand_tensor(block, op, "zero_point", weights);
  const Tensor sc = operand_tensor(block, op, "scale", weights);
  const int axis = normalize_axis(operand(block, op, "axis").scalar_int(), q.rank(), op.where());
  const AxisSplit s = split_at_axis(q.shape(), axis);
  for (const Tensor* p : {&zp, &sc})
    if (p->numel() != 1 && p->numel() != s.len)
      fail(ErrorCode::kFormat, op.where() + ": scale / zero_point must be scalars or have " + std::to_string(s.len) +
                                   " elements (axis " + std::to_string(axis) + "), got " + shape_str(p->shape()));
  Tensor out = Tensor::empty(q.shape());
  const float *Q = q.f32(), *Z = zp.f32(), *S = sc.f32();
  float* O = out.f32();
  const bool zv = zp.numel() != 1, sv = sc.numel() != 1;
  parallel_for(
      s.outer * s.len,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t a = r % s.len;
          const float z = Z[zv ? a : 0], c = S[sv ? a : 0];
          for (int64_t i = 0; i < s.inner; ++i) O[r * s.inner + i] = c * (Q[r * s.inner + i] - z);
        }
      },
      grain_for(s.inner));
  return Value{output_dtype(op), out};
}

// output = scale[blk] * (data - offset[blk]) where blk = index / (data.shape / scale.shape) per axis.
Value blockwise_shift_scale(const coreml::MilBlock& block, const MilOp& op, const coreml::WeightFiles* weights) {
  const Tensor data = operand_tensor(block, op, "data", weights);
  const Tensor scale = operand_tensor(block, op, "scale", weights);
  std::optional<Tensor> offset;
  if (coreml::const_operand(block, op, "offset")) offset = operand_tensor(block, op, "offset", weights);
  const Shape& ds = data.shape();
  const Shape& ss = scale.shape();
  if (ds.empty() || ss.size() != ds.size())
    fail(ErrorCode::kFormat, op.where() + ": scale " + shape_str(ss) + " must have the rank of data " + shape_str(ds));
  if (offset && offset->shape() != ss)
    fail(ErrorCode::kFormat, op.where() + ": offset " + shape_str(offset->shape()) + " must have the shape of scale " + shape_str(ss));
  Shape blk(ds.size());
  for (size_t d = 0; d < ds.size(); ++d) {
    if (ss[d] <= 0 || ds[d] % ss[d] != 0)
      fail(ErrorCode::kFormat, op.where() + ": data " + shape_str(ds) + " is not divisible into scale blocks " + shape_str(ss));
    blk[d] = ds[d] / ss[d];
  }
  Tensor out = Tensor::empty(ds);
  const float *D = data.f32(), *S = scale.f32(), *F = offset ? offset->f32() : nullptr;
  float* O = out.f32();
  const int r = int(ds.size());
  const int64_t last = ds.back(), rows = data.numel() / std::max<int64_t>(last, 1);
  const auto sst = row_major_strides(ss);
  parallel_for(rows, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      int64_t rem = row, sbase = 0;
      for (int d = r - 2; d >= 0; --d) {
        const int64_t i = rem % ds[size_t(d)];
        rem /= ds[size_t(d)];
        sbase += (i / blk[size_t(d)]) * sst[size_t(d)];
      }
      for (int64_t j = 0; j < last; ++j) {
        const int64_t si = sbase + j / blk[size_t(r - 1)];
        O[row * last + j] = S[si] * (D[row * last + j] - (F ? F[si] : 0.0f));
      }
    }
  }, grain_for(last));
  return Value{output_dtype(op), out};
}

Value sparse_to_dense(const coreml::MilBlock& block, const MilOp& op, const coreml::WeightFiles* weights) {
  const Tensor nz = operand_tensor(block, op, "nonzero_data", weights);
  const MilValue& mask = operand(block, op, "mask");
  const coreml::ConstBytes mb = coreml::const_bytes(mask, weights, op.name() + ".mask");
  Shape shape;
  if (const MilValue* s = coreml::const_operand(block, op, "shape")) {  // iOS16: uint8 bit mask + shape
    for (int64_t d : s->ints()) shape.push_back(d);
  } else {  // iOS18: uint1 mask of the dense shape
    shape = mb.type.shape;
  }
  const int64_t n = shape_numel(shape);
  if (int64_t(mb.nbytes) * 8 < n)
    fail(ErrorCode::kFormat, op.where() + ": mask has " + std::to_string(mb.nbytes) + " bytes, too few for " + shape_str(shape));
  Tensor out = Tensor::zeros(shape);
  float* O = out.f32();
  const float* V = nz.f32();
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!((mb.data[i >> 3] >> (i & 7)) & 1)) continue;
    if (k >= nz.numel()) fail(ErrorCode::kFormat, op.where() + ": mask has more set bits than nonzero_data values");
    O[i] = V[k++];
  }
  if (k != nz.numel()) fail(ErrorCode::kFormat, op.where() + ": mask has fewer set bits than nonzero_data values");
  return Value{output_dtype(op), out};
}

}  // namespace

Tensor materialize_constant(const MilValue& v, const coreml::WeightFiles* weights, const std::string& what) {
  if (v.kind != MilValue::Kind::kTensor && v.kind != MilValue::Kind::kBlob)
    fail(ErrorCode::kFormat, "'" + what + "' is a " + v.str() + ", not a tensor");
  if (v.type.dtype == MilDType::kString) fail(ErrorCode::kFormat, "'" + what + "' is a string, not numeric data");
  const coreml::ConstBytes c = coreml::const_bytes(v, weights, what);
  Tensor t = Tensor::empty(c.type.shape);
  decode_elements(c.type.dtype, c.data, c.nbytes, t.numel(), t.f32(), what);
  return t;
}

bool is_constexpr_op(std::string_view type) { return type.substr(0, 10) == "constexpr_"; }

bool is_supported_constexpr_op(std::string_view type) {
  return type == "constexpr_lut_to_dense" || type == "constexpr_affine_dequantize" || type == "constexpr_cast" ||
         type == "constexpr_blockwise_shift_scale" || type == "constexpr_sparse_to_dense";
}

Value eval_constexpr(const coreml::MilBlock& block, const MilOp& op, const coreml::WeightFiles* weights) {
  if (op.type == "constexpr_lut_to_dense") return lut_to_dense(block, op, weights);
  if (op.type == "constexpr_affine_dequantize") return affine_dequantize(block, op, weights);
  if (op.type == "constexpr_blockwise_shift_scale") return blockwise_shift_scale(block, op, weights);
  if (op.type == "constexpr_sparse_to_dense") return sparse_to_dense(block, op, weights);
  if (op.type == "constexpr_cast") return Value{output_dtype(op), operand_tensor(block, op, "source_val", weights)};
  fail(ErrorCode::kUnsupported, op.where() + ": op type '" + op.type + "' is not supported by the MIL interpreter");
}

}  // namespace sdpal::mil::detail
