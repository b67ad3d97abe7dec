#include "io/coreml/synthetic_weights.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/coreml/blob_storage.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_consts.h"
#include "core/dtype.h"
#include <cmath>
#include <fstream>
#include <functional>

namespace sdpal::coreml {

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Small finite values in [-0.125, 0.125), so an interpreter fed these weights stays finite.
float small_float(uint64_t r) { return (float(r >> 40) / float(1 << 24) - 0.5f) * 0.25f; }

void fill_random(const BlobSlot& s, uint64_t seed, std::vector<uint8_t>& buf) {
  uint64_t st = seed ^ (s.offset * 0x2545f4914f6cdd1dull);
  buf.assign(size_t(s.nbytes), 0);
  const int bits = mil_dtype_bits(s.dtype);
  if (mil_dtype_is_float(s.dtype) && bits >= 16) {
    for (uint64_t i = 0; i < s.numel; ++i) {
      const float f = small_float(splitmix(st));
      uint8_t* p = buf.data() + i * uint64_t(bits / 8);
      if (s.dtype == MilDType::kFp16) { const uint16_t h = f32_to_f16(f); std::memcpy(p, &h, 2); }
      else if (s.dtype == MilDType::kBf16) { const uint16_t h = f32_to_bf16(f); std::memcpy(p, &h, 2); }
      else std::memcpy(p, &f, 4);
    }
  } else if (mil_dtype_is_int(s.dtype) && bits >= 16) {
    for (uint64_t i = 0; i < s.numel; ++i) {  // small non-negative values: safe as shapes or gather indices
      const uint64_t v = splitmix(st) & 7;
      std::memcpy(buf.data() + i * uint64_t(bits / 8), &v, size_t(bits / 8));
    }
  } else {  // bytes and sub-byte types: every bit pattern is a valid index or value
    for (size_t i = 0; i < buf.size(); i += 8) {
      const uint64_t r = splitmix(st);
      std::memcpy(buf.data() + i, &r, std::min<size_t>(8, buf.size() - i));
    }
    const uint64_t used = s.numel * uint64_t(bits);
    if (used % 8) buf.back() &= uint8_t((1u << (used % 8)) - 1);  // padding bits stay zero
  }
}

}  // namespace

SyntheticWeightsInfo write_synthetic_weight_bin(const BlobLayout& layout, const std::string& out_path,
                                                SyntheticFill fill, uint64_t seed) {
  SyntheticWeightsInfo info;
  info.file_size = layout.min_file_size < kBlobHeaderSize ? kBlobHeaderSize : layout.min_file_size;
  info.blobs = uint32_t(layout.slots.size());
  AtomicFileWriter w(out_path);
  std::FILE* f = w.stream();
  auto seek = [&](uint64_t off) {
    if (std::fflush(f) != 0 || ::fseeko(f, off_t(off), SEEK_SET) != 0) fail(ErrorCode::kIo, "cannot seek in " + w.temp_path());
  };
  uint8_t header[kBlobHeaderSize] = {};
  const uint32_t version = 2;
  std::memcpy(header, &info.blobs, 4);
  std::memcpy(header + 4, &version, 4);
  w.write(header, sizeof header);
  std::vector<uint8_t> buf;
  for (const BlobSlot& s : layout.slots) {
    const auto code = mil_dtype_to_blob(s.dtype);
    if (!code) fail(ErrorCode::kUnsupported, out_path + ": " + s.what + " has type " + mil_dtype_name(s.dtype) + ", which a weight file cannot hold");
    uint8_t meta[kBlobMetadataSize] = {};
    const uint32_t sentinel = kBlobSentinel, c = uint32_t(*code);
    const uint64_t data_offset = s.offset + kBlobMetadataSize;
    const uint64_t padding = s.nbytes * 8 - s.numel * uint64_t(mil_dtype_bits(s.dtype));
    std::memcpy(meta, &sentinel, 4);
    std::memcpy(meta + 4, &c, 4);
    std::memcpy(meta + 8, &s.nbytes, 8);
    std::memcpy(meta + 16, &data_offset, 8);
    std::memcpy(meta + 24, &padding, 8);
    seek(s.offset);
    w.write(meta, sizeof meta);
    if (fill == SyntheticFill::kRandom) {
      fill_random(s, seed, buf);
      w.write(buf.data(), buf.size());
    }
  }
  // Zero data is never written: the file is extended with holes to its full size.
  if (std::fflush(f) != 0 || ::ftruncate(::fileno(f), off_t(info.file_size)) != 0)
    fail(ErrorCode::kIo, "cannot size " + w.temp_path());
  seek(info.file_size);
  w.commit();
  return info;
}

SyntheticWeightsInfo write_plausible_weight_bin(const MilProgram& p, const std::string& bin, uint64_t seed) {
  const auto layouts = plan_blob_layouts(collect_blob_refs(p));
  check(layouts.size() == 1, ErrorCode::kFormat, p.source + ": expected one weight file");
  const SyntheticWeightsInfo info = write_synthetic_weight_bin(layouts.at(0), bin, SyntheticFill::kRandom, seed);
  const auto storage = BlobStorage::open(bin);
  std::fstream f(bin, std::ios::in | std::ios::out | std::ios::binary);
  // Rewrites the fp16 blob at `offset` with fn(old value).
  auto rewrite = [&](uint64_t offset, const std::function<float(float)>& fn) {
    const BlobView b = storage->blob(offset);
    check(b.dtype == BlobDType::kFloat16, ErrorCode::kFormat, "expected an fp16 blob");
    std::vector<uint16_t> v(b.nbytes / 2);
    std::memcpy(v.data(), b.data, b.nbytes);
    for (uint16_t& h : v) h = f32_to_f16(fn(f16_to_f32(h)));
    f.seekp(std::streamoff(b.data_offset));
    f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(b.nbytes));
  };
  const MilBlock& block = p.main().block;
  for (const MilOp& op : block.ops) {
    if (op.type == "constexpr_lut_to_dense" && op.outputs.at(0).type.shape.size() >= 2) {
      const Shape& s = op.outputs[0].type.shape;
      const int64_t fan_in = shape_numel(Shape(s.begin() + 1, s.end()));
      float scale = 0.3f / (0.0722f * std::sqrt(float(fan_in)));  // 0.0722: std of U[-1/8, 1/8)
      const std::string n = op.name();
      if (n.find("to_q_weight") != std::string::npos || n.find("to_k_weight") != std::string::npos) scale *= 16.0f;
      rewrite(const_operand(block, op, "lut")->blob.offset, [scale](float x) { return x * scale; });
      // The text encoder's causal mask is a constant too: make it the real one (0 on and below the
      // diagonal, -inf above), stored as LUT {0, -inf} and packed indices.
      if (n.rfind("causal_attention_mask", 0) == 0 && s.size() == 4 && s[2] == s[3]) {
        const MilValue* lut = const_operand(block, op, "lut");
        const MilValue* idx = const_operand(block, op, "indices");
        rewrite(lut->blob.offset, [k = 0](float) mutable { return k++ == 0 ? 0.f : -INFINITY; });
        const BlobView ib = storage->blob(idx->blob.offset);
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
      if (!v || v->kind != MilValue::Kind::kBlob || op.outputs[0].type.dtype != MilDType::kFp16) continue;
      const int64_t fan_in = shape_numel(Shape(s.begin() + 1, s.end()));
      const float scale = 0.3f / (0.0722f * std::sqrt(float(fan_in)));
      rewrite(v->blob.offset, [scale](float x) { return x * scale; });
    } else if (op.type == "batch_norm") {
      const MilBinding& b = op.input("variance")->bindings.at(0);
      if (b.is_value() || b.ref.source != MilVarRef::Source::kOpOutput) continue;
      const MilOp& producer = block.ops.at(size_t(b.ref.op));
      const MilValue* v = producer.type == "const" ? producer.attribute("val") : const_operand(block, producer, "lut");
      if (v && v->kind == MilValue::Kind::kBlob) rewrite(v->blob.offset, [](float) { return 1.0f; });
    }
  }
  f.close();
  check(!f.fail(), ErrorCode::kIo, "cannot write " + bin);
  return info;
}

}  // namespace sdpal::coreml
