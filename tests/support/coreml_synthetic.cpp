#include "coreml_synthetic.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/dtype.h"
#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/blob_storage.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/synthetic_weights.h"

namespace sdpal::testing {

namespace fs = std::filesystem;
using coreml::MilOp;
using coreml::MilValue;

void write_plausible_weights(const coreml::MilProgram& p, const std::string& model_dir, uint64_t seed) {
  fs::create_directories(model_dir + "/weights");
  const auto layouts = coreml::plan_blob_layouts(coreml::collect_blob_refs(p));
  check(layouts.size() == 1, ErrorCode::kFormat, p.source + ": expected one weight file");
  const std::string bin = model_dir + "/weights/weight.bin";
  coreml::write_synthetic_weight_bin(layouts.at(0), bin, coreml::SyntheticFill::kRandom, seed);
  const auto storage = coreml::BlobStorage::open(bin);
  std::fstream f(bin, std::ios::in | std::ios::out | std::ios::binary);
  // Rewrites the fp16 blob at `offset` with fn(old value).
  auto rewrite = [&](uint64_t offset, const std::function<float(float)>& fn) {
    const coreml::BlobView b = storage->blob(offset);
    check(b.dtype == coreml::BlobDType::kFloat16, ErrorCode::kFormat, "expected an fp16 blob");
    std::vector<uint16_t> v(b.nbytes / 2);
    std::memcpy(v.data(), b.data, b.nbytes);
    for (uint16_t& h : v) h = f32_to_f16(fn(f16_to_f32(h)));
    f.seekp(std::streamoff(b.data_offset));
    f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(b.nbytes));
  };
  const coreml::MilBlock& block = p.main().block;
  for (const MilOp& op : block.ops) {
    if (op.type == "constexpr_lut_to_dense" && op.outputs.at(0).type.shape.size() >= 2) {
      const Shape& s = op.outputs[0].type.shape;
      const int64_t fan_in = shape_numel(Shape(s.begin() + 1, s.end()));
      float scale = 0.3f / (0.0722f * std::sqrt(float(fan_in)));  // 0.0722: std of U[-1/8, 1/8)
      const std::string n = op.name();
      if (n.find("to_q_weight") != std::string::npos || n.find("to_k_weight") != std::string::npos) scale *= 16.0f;
      rewrite(coreml::const_operand(block, op, "lut")->blob.offset, [scale](float x) { return x * scale; });
      // The text encoder's causal mask is a constant too: make it the real one (0 on and below the
      // diagonal, -inf above), stored as LUT {0, -inf} and packed indices.
      if (n.rfind("causal_attention_mask", 0) == 0 && s.size() == 4 && s[2] == s[3]) {
        const MilValue* lut = coreml::const_operand(block, op, "lut");
        const MilValue* idx = coreml::const_operand(block, op, "indices");
        rewrite(lut->blob.offset, [k = 0](float) mutable { return k++ == 0 ? 0.f : -INFINITY; });
        const coreml::BlobView ib = storage->blob(idx->blob.offset);
        const int64_t count = s[2] * s[3];
        const int64_t nbits = int64_t(ib.nbytes) * 8 / count;  // the packed width (6 for a 64-entry table)
        std::vector<uint8_t> packed(ib.nbytes, 0);
        for (int64_t i = 0; i < count; ++i) {
          const bool above = (i % s[3]) > (i / s[3]);
          if (above) packed[size_t(i * nbits / 8)] |= uint8_t(1u << (i * nbits % 8));  // index 1, LSB first
        }
        f.seekp(std::streamoff(ib.data_offset));
        f.write(reinterpret_cast<const char*>(packed.data()), std::streamsize(packed.size()));
      }
    } else if (op.type == "const" && op.outputs.at(0).type.shape.size() >= 2 && op.name().find("_weight") != std::string::npos) {
      // Dense weights (e.g. an unpalettized VAE) get the same fan-in scaling.
      const MilValue* v = op.attribute("val");
      const Shape& s = op.outputs[0].type.shape;
      if (!v || v->kind != MilValue::Kind::kBlob || op.outputs[0].type.dtype != coreml::MilDType::kFp16) continue;
      const int64_t fan_in = shape_numel(Shape(s.begin() + 1, s.end()));
      const float scale = 0.3f / (0.0722f * std::sqrt(float(fan_in)));
      rewrite(v->blob.offset, [scale](float x) { return x * scale; });
    } else if (op.type == "batch_norm") {
      const coreml::MilBinding& b = op.input("variance")->bindings.at(0);
      if (b.is_value() || b.ref.source != coreml::MilVarRef::Source::kOpOutput) continue;
      const MilOp& producer = block.ops.at(size_t(b.ref.op));
      const MilValue* v = producer.type == "const" ? producer.attribute("val") : coreml::const_operand(block, producer, "lut");
      if (v && v->kind == MilValue::Kind::kBlob) rewrite(v->blob.offset, [](float) { return 1.0f; });
    }
  }
}

void make_sd_resources(const std::string& compiled_dir, const std::string& out_dir,
                       const std::vector<std::string>& models, uint64_t seed) {
  fs::create_directories(out_dir);
  for (const std::string& name : models) {
    const std::string src = compiled_dir + "/" + name + ".mlmodelc", dst = out_dir + "/" + name + ".mlmodelc";
    fs::create_directories(dst);
    fs::copy_file(src + "/model.mil", dst + "/model.mil", fs::copy_options::overwrite_existing);
    if (fs::exists(src + "/metadata.json"))
      fs::copy_file(src + "/metadata.json", dst + "/metadata.json", fs::copy_options::overwrite_existing);
    write_plausible_weights(coreml::read_mil_text_file(dst + "/model.mil"), dst, seed);
  }
  for (const char* f : {"vocab.json", "merges.txt"})
    if (fs::exists(compiled_dir + "/" + f))
      fs::copy_file(compiled_dir + "/" + f, out_dir + "/" + f, fs::copy_options::overwrite_existing);
}

}  // namespace sdpal::testing
