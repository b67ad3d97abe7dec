#include "io/coreml/mil_consts.h"

#include "core/error.h"
#include "io/zip_archive.h"

namespace sdpal::coreml {

namespace {
constexpr std::string_view kModelPath = "@model_path/";
}

std::shared_ptr<WeightFiles> WeightFiles::in_directory(const std::string& model_dir) {
  return std::make_shared<WeightFiles>([model_dir](const std::string& rel) {
    return BlobStorage::open(model_dir + "/" + rel);
  });
}

std::string blob_relative_path(const std::string& blob_path) {
  if (blob_path.compare(0, kModelPath.size(), kModelPath) != 0)
    fail(ErrorCode::kFormat, "BLOBFILE path '" + blob_path + "' does not start with " + std::string(kModelPath));
  std::string rel = blob_path.substr(kModelPath.size());
  if (!ZipArchive::is_safe_path(rel)) fail(ErrorCode::kFormat, "BLOBFILE path '" + blob_path + "' is not a safe relative path");
  return rel;
}

const BlobStorage& WeightFiles::storage(const std::string& blob_path) const {
  const std::string rel = blob_relative_path(blob_path);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(rel);
  if (it == open_.end()) {
    auto s = opener_(rel);
    if (!s) fail(ErrorCode::kIo, "weight file '" + rel + "' is not available");
    it = open_.emplace(rel, std::move(s)).first;
  }
  return *it->second;
}

const MilValue* const_value(const MilBlock& block, const MilBinding& b) {
  if (b.value) return &*b.value;
  if (b.ref.source != MilVarRef::Source::kOpOutput || b.ref.depth != 0 || b.ref.op < 0 ||
      size_t(b.ref.op) >= block.ops.size())
    return nullptr;
  const MilOp& producer = block.ops[size_t(b.ref.op)];
  if (producer.type != "const") return nullptr;
  return producer.attribute("val");
}

const MilValue* const_operand(const MilBlock& block, const MilOp& op, std::string_view name) {
  if (const MilArgument* a = op.input(name)) {
    if (a->bindings.size() != 1) return nullptr;
    return const_value(block, a->bindings[0]);
  }
  return op.attribute(name);
}

ConstBytes const_bytes(const MilValue& v, const WeightFiles* weights, const std::string& what) {
  ConstBytes c;
  c.type = v.type;
  if (v.kind == MilValue::Kind::kTensor) {
    if (v.type.dtype == MilDType::kString) fail(ErrorCode::kFormat, "'" + what + "' is a string tensor, not numeric data");
    check_value(v, "'" + what + "'");
    c.data = v.data.data();
    c.nbytes = v.data.size();
    return c;
  }
  if (v.kind != MilValue::Kind::kBlob) fail(ErrorCode::kFormat, "'" + what + "' is a " + v.str() + ", not a tensor");
  if (!weights) fail(ErrorCode::kFormat, "'" + what + "' is stored in " + v.blob.path + " but no weight files were given");
  const int64_t n = v.type.numel();
  if (n < 0) fail(ErrorCode::kFormat, "'" + what + "' has no static shape: " + v.type.str());
  const BlobView b = weights->storage(v.blob.path).blob_for(v.blob.offset, v.type.dtype, uint64_t(n), what);
  c.data = b.data;
  c.nbytes = size_t(b.nbytes);
  return c;
}

TensorView const_tensor_view(const MilValue& v, const WeightFiles* weights, const std::string& what) {
  const ConstBytes c = const_bytes(v, weights, what);
  const auto dt = mil_dtype_to_dtype(c.type.dtype);
  if (!dt) fail(ErrorCode::kUnsupported, "'" + what + "' has element type " + mil_dtype_name(c.type.dtype) + ", which has no dense view");
  TensorView t;
  t.name = what;
  t.dtype = *dt;
  t.shape = c.type.shape;
  t.data = c.data;
  t.nbytes = c.nbytes;
  return t;
}

PalettizedView palettized_view(const MilBlock& block, const MilOp& op, const WeightFiles* weights) {
  const std::string name = op.name();
  auto err = [&](const std::string& msg) { fail(ErrorCode::kFormat, op.where() + ": " + msg); };
  if (op.type != "constexpr_lut_to_dense") err("not a constexpr_lut_to_dense op");
  const MilValue* indices = const_operand(block, op, "indices");
  const MilValue* lut = const_operand(block, op, "lut");
  const MilValue* shape = const_operand(block, op, "shape");
  const MilValue* vaxis = const_operand(block, op, "vector_axis");
  if (!indices || !lut) err("'indices' and 'lut' must be constants");
  const ConstBytes ib = const_bytes(*indices, weights, name + ".indices");
  const ConstBytes lb = const_bytes(*lut, weights, name + ".lut");

  PalettizedView pv;
  pv.name = name;
  const auto ldt = mil_dtype_to_dtype(lb.type.dtype);
  if (!ldt || (*ldt != DType::F16 && *ldt != DType::F32 && *ldt != DType::BF16 && *ldt != DType::I8 && *ldt != DType::U8))
    err(std::string("unsupported table type ") + mil_dtype_name(lb.type.dtype));
  pv.lut_dtype = *ldt;
  pv.lut = lb.data;
  pv.lut_nbytes = lb.nbytes;
  pv.lut_shape = lb.type.shape;
  pv.indices = ib.data;
  pv.indices_nbytes = ib.nbytes;

  if (shape) {  // iOS16 form: flat uint8 index bytes, one table, explicit output shape
    if (ib.type.dtype != MilDType::kUInt8 || ib.type.shape.size() != 1) err("iOS16 'indices' must be uint8 [M], got " + ib.type.str());
    if (lb.type.shape.size() != 1) err("iOS16 'lut' must be a vector, got " + lb.type.str());
    const int64_t p = lb.type.shape[0];
    int nbits = 0;
    while (nbits < 9 && (int64_t(1) << nbits) < p) ++nbits;
    if (nbits < 1 || nbits > 8 || (int64_t(1) << nbits) != p) err("table size " + std::to_string(p) + " is not 2^n for n in 1..8");
    pv.nbits = nbits;
    if (shape->kind != MilValue::Kind::kTensor || shape->type.shape.size() != 1) err("'shape' must be an integer vector");
    for (int64_t d : shape->ints()) {
      if (d < 0) err("negative dimension in 'shape'");
      pv.shape.push_back(d);
    }
  } else {  // iOS18 form: typed sub-byte indices, per-group tables, optional vectors
    switch (ib.type.dtype) {
      case MilDType::kUInt1: case MilDType::kUInt2: case MilDType::kUInt3: case MilDType::kUInt4:
      case MilDType::kUInt6: case MilDType::kUInt8:
        pv.nbits = mil_dtype_bits(ib.type.dtype);
        break;
      default: err("'indices' must be uint1..uint8, got " + ib.type.str());
    }
    const size_t rank = ib.type.shape.size();
    if (rank == 0) err("'indices' must have rank >= 1");
    if (lb.type.shape.size() != rank + 2) err("'lut' " + lb.type.str() + " must have rank " + std::to_string(rank + 2));
    pv.shape = ib.type.shape;
    const int64_t vs = lb.type.shape.back();
    if (vaxis) {
      int64_t a = vaxis->scalar_int();
      if (a < -int64_t(rank) || a >= int64_t(rank)) err("vector_axis " + std::to_string(a) + " out of range");
      if (a < 0) a += int64_t(rank);
      pv.vector_axis = int(a);
    } else if (vs > 1) {
      err("vector size " + std::to_string(vs) + " needs a vector_axis");
    }
    if (vs > 1) {
      int64_t& d = pv.shape[size_t(pv.vector_axis)];
      if (d > (int64_t(1) << 48) / vs) err("shape too large");
      d *= vs;
    }
  }
  try {
    validate_palettized(pv);
  } catch (const Error& e) {
    err(e.what());
  }
  if (op.outputs.size() != 1) err("must have one output");
  const MilType& out = op.outputs[0].type;
  bool ok = out.is_tensor() && !out.unknown_rank && out.dtype == lb.type.dtype && out.shape.size() == pv.shape.size();
  for (size_t k = 0; ok && k < pv.shape.size(); ++k) ok = out.shape[k] < 0 || out.shape[k] == pv.shape[k];
  if (!ok) err("declared output " + out.str() + " does not match the decoded " + std::string(mil_dtype_name(lb.type.dtype)) + " " + shape_str(pv.shape));
  return pv;
}

}  // namespace sdpal::coreml
