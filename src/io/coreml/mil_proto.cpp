#include "io/coreml/mil_proto.h"

#include <algorithm>
#include <limits>

#include "io/coreml/protobuf_wire.h"
#include "io/mapped_file.h"

namespace sdpal::coreml {

namespace {

constexpr int kMaxDepth = 64;

std::optional<MilDType> proto_dtype(uint64_t code) {
  switch (code) {
    case 1: return MilDType::kBool;
    case 2: return MilDType::kString;
    case 10: return MilDType::kFp16;
    case 11: return MilDType::kFp32;
    case 12: return MilDType::kFp64;
    case 13: return MilDType::kBf16;
    case 21: return MilDType::kInt8;
    case 22: return MilDType::kInt16;
    case 23: return MilDType::kInt32;
    case 24: return MilDType::kInt64;
    case 25: return MilDType::kInt4;
    case 31: return MilDType::kUInt8;
    case 32: return MilDType::kUInt16;
    case 33: return MilDType::kUInt32;
    case 34: return MilDType::kUInt64;
    case 35: return MilDType::kUInt4;
    case 36: return MilDType::kUInt2;
    case 37: return MilDType::kUInt1;
    case 38: return MilDType::kUInt6;
    case 39: return MilDType::kUInt3;
    case 40: return MilDType::kFp8E4M3FN;
    case 41: return MilDType::kFp8E5M2;
    default: return std::nullopt;
  }
}

// Raw element values of a TensorValue before they are encoded into the declared dtype.
struct RawTensor {
  enum Kind { kNone, kFloats, kDoubles, kInts, kLongs, kBools, kStrings, kBytes } kind = kNone;
  std::vector<double> f;
  std::vector<int64_t> i;
  std::vector<std::string> s;
  std::string bytes;
};

class Decoder {
 public:
  explicit Decoder(const std::string& source) : source_(source) {}

  void depth_in(WireReader& r) {
    if (++depth_ > kMaxDepth) r.error(0, "nesting deeper than " + std::to_string(kMaxDepth));
  }
  void depth_out() { --depth_; }

  // ---- types ----
  int64_t dimension(WireReader r) {
    int64_t d = kUnknownDim;
    while (r.next()) {
      if (r.field() == 1) {  // constant {1: size}
        WireReader c = r.message("Dimension.ConstantDimension");
        d = 0;
        while (c.next()) {
          if (c.field() == 1) {
            const uint64_t v = c.varint_field();
            if (v > uint64_t(1) << 48) c.error(0, "dimension " + std::to_string(v) + " is too large");
            d = int64_t(v);
          } else {
            c.skip();
          }
        }
      } else if (r.field() == 2) {  // unknown
        r.expect(WireType::kLen);
        r.skip();
        d = kUnknownDim;
      } else {
        r.skip();
      }
    }
    return d;
  }

  MilType tensor_type(WireReader r) {
    MilType t;
    int64_t rank = 0;
    bool have_dtype = false;
    while (r.next()) {
      switch (r.field()) {
        case 1: {
          const uint64_t code = r.varint_field();
          auto dt = proto_dtype(code);
          if (!dt) r.error(0, "unknown data type " + std::to_string(code));
          t.dtype = *dt;
          have_dtype = true;
          break;
        }
        case 2: rank = int64_t(r.varint_field()); break;
        case 3: r.expect(WireType::kLen); t.shape.push_back(dimension(r.message("Dimension"))); break;
        default: r.skip();
      }
      if (t.shape.size() > 64) r.error(0, "tensor rank above 64");
    }
    if (!have_dtype) r.error(0, "tensor type without a data type");
    if (rank < 0) {
      t.unknown_rank = true;
      t.shape.clear();
    } else if (uint64_t(rank) != t.shape.size()) {
      r.error(0, "tensor rank " + std::to_string(rank) + " with " + std::to_string(t.shape.size()) + " dimensions");
    }
    return t;
  }

  MilType value_type(WireReader r) {
    depth_in(r);
    MilType t;
    bool seen = false;
    while (r.next()) {
      const uint64_t f = r.field();
      if (f < 1 || f > 5) {
        r.skip();
        continue;
      }
      r.expect(WireType::kLen);
      WireReader m = r.message("ValueType");
      seen = true;
      t = MilType();
      switch (f) {
        case 1: t = tensor_type(m); break;
        case 2:
          t.kind = MilType::Kind::kList;
          t.elements.emplace_back();
          while (m.next()) {
            if (m.field() == 1) { m.expect(WireType::kLen); t.elements[0] = value_type(m.message("ListType.type")); }
            else if (m.field() == 2) { m.expect(WireType::kLen); t.list_length = dimension(m.message("ListType.length")); }
            else m.skip();
          }
          break;
        case 3:
          t.kind = MilType::Kind::kTuple;
          while (m.next()) {
            if (m.field() == 1) { m.expect(WireType::kLen); t.elements.push_back(value_type(m.message("TupleType.types"))); }
            else m.skip();
          }
          break;
        case 4:
          t.kind = MilType::Kind::kDict;
          t.elements.resize(2);
          while (m.next()) {
            if (m.field() == 1 || m.field() == 2) { m.expect(WireType::kLen); t.elements[m.field() - 1] = value_type(m.message("DictionaryType")); }
            else m.skip();
          }
          break;
        case 5:
          t.kind = MilType::Kind::kState;
          t.elements.emplace_back();
          while (m.next()) {
            if (m.field() == 1) { m.expect(WireType::kLen); t.elements[0] = value_type(m.message("StateType.wrappedType")); }
            else m.skip();
          }
          break;
      }
    }
    if (!seen) r.error(0, "empty value type");
    depth_out();
    return t;
  }

  MilNamedType named_type(WireReader r) {
    MilNamedType n;
    bool typed = false;
    while (r.next()) {
      if (r.field() == 1) n.name = r.string_field();
      else if (r.field() == 2) { r.expect(WireType::kLen); n.type = value_type(r.message("ValueType")); typed = true; }
      else r.skip();
    }
    if (!typed) r.error(0, "'" + n.name + "' has no type");
    return n;
  }

  // ---- values ----
  RawTensor tensor_value(WireReader r) {
    RawTensor t;
    while (r.next()) {
      const uint64_t f = r.field();
      if (f < 1 || f > 7) {
        r.skip();
        continue;
      }
      r.expect(WireType::kLen);
      WireReader m = r.message("TensorValue");
      t = RawTensor();
      t.kind = RawTensor::Kind(f == 1 ? RawTensor::kFloats : f == 2 ? RawTensor::kInts : f == 3 ? RawTensor::kBools
                               : f == 4 ? RawTensor::kStrings : f == 5 ? RawTensor::kLongs : f == 6 ? RawTensor::kDoubles
                               : RawTensor::kBytes);
      while (m.next()) {
        if (m.field() != 1) {
          m.skip();
          continue;
        }
        switch (t.kind) {
          case RawTensor::kFloats: repeated(m, WireType::kFixed32, [&](WireReader& p) { const uint32_t u = p.fixed32(); float v; std::memcpy(&v, &u, 4); t.f.push_back(v); }); break;
          case RawTensor::kDoubles: repeated(m, WireType::kFixed64, [&](WireReader& p) { const uint64_t u = p.fixed64(); double v; std::memcpy(&v, &u, 8); t.f.push_back(v); }); break;
          case RawTensor::kInts: repeated(m, WireType::kVarint, [&](WireReader& p) {
              const int64_t v = int64_t(p.varint());
              if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) p.error(0, "int32 value out of range");
              t.i.push_back(v);
            }); break;
          case RawTensor::kLongs: repeated(m, WireType::kVarint, [&](WireReader& p) { t.i.push_back(int64_t(p.varint())); }); break;
          case RawTensor::kBools: repeated(m, WireType::kVarint, [&](WireReader& p) { t.i.push_back(p.varint() != 0); }); break;
          case RawTensor::kStrings: t.s.push_back(m.string_field()); break;
          case RawTensor::kBytes: t.bytes = m.string_field(); break;
          case RawTensor::kNone: break;
        }
      }
    }
    return t;
  }

  template <typename F>
  void repeated(WireReader& m, WireType single, F read_one) {
    if (m.type() == WireType::kLen) {  // packed
      const std::string_view b = m.bytes();
      WireReader p(reinterpret_cast<const uint8_t*>(b.data()), b.size(), source_, "packed values", m.offset() - b.size());
      while (p.offset() < m.offset()) read_one(p);
    } else {
      m.expect(single);
      read_one(m);
    }
  }

  void encode(MilValue& v, const RawTensor& raw, WireReader& r) {
    const MilType& t = v.type;
    const int64_t n = t.numel();
    if (!t.is_tensor() || n < 0) r.error(0, "immediate value of type " + t.str() + " needs a static tensor shape");
    auto count_error = [&](size_t got) { r.error(0, std::to_string(got) + " values for " + t.str()); };
    if (t.dtype == MilDType::kString) {
      if (raw.kind != RawTensor::kStrings && !(n == 0 && raw.kind == RawTensor::kNone)) r.error(0, "string tensor without strings");
      if (int64_t(raw.s.size()) != n) count_error(raw.s.size());
      v.strings = raw.s;
      return;
    }
    const uint64_t nbytes = mil_packed_nbytes(t.dtype, uint64_t(n));
    if (raw.kind == RawTensor::kBytes || (raw.kind == RawTensor::kNone && n == 0)) {
      if (raw.bytes.size() != nbytes)
        r.error(0, std::to_string(raw.bytes.size()) + " bytes for " + t.str() + " (expected " + std::to_string(nbytes) + ")");
      v.data.assign(raw.bytes.begin(), raw.bytes.end());
      return;
    }
    const bool fl = raw.kind == RawTensor::kFloats || raw.kind == RawTensor::kDoubles;
    const size_t count = fl ? raw.f.size() : raw.i.size();
    if (raw.kind == RawTensor::kStrings || raw.kind == RawTensor::kNone) r.error(0, "strings given for " + t.str());
    if (int64_t(count) != n) count_error(count);
    const int bits = mil_dtype_bits(t.dtype);
    v.data.assign(size_t(nbytes), 0);
    for (size_t k = 0; k < count; ++k) {
      uint64_t bitsval = 0;
      if (mil_dtype_is_float(t.dtype)) {
        const double d = fl ? raw.f[k] : double(raw.i[k]);
        if (t.dtype == MilDType::kFp16) bitsval = f32_to_f16(float(d));
        else if (t.dtype == MilDType::kBf16) bitsval = f32_to_bf16(float(d));
        else if (t.dtype == MilDType::kFp32) { const float f = float(d); std::memcpy(&bitsval, &f, 4); }
        else if (t.dtype == MilDType::kFp64) std::memcpy(&bitsval, &d, 8);
        else r.error(0, std::string("numeric values for ") + mil_dtype_name(t.dtype) + " must be given as bytes");
      } else {
        if (fl) r.error(0, "floating-point values for " + t.str());
        const int64_t x = raw.i[k];
        if (t.dtype != MilDType::kUInt64 && t.dtype != MilDType::kInt64) {
          const bool sgn = mil_dtype_is_signed(t.dtype);
          const int64_t lo = t.dtype == MilDType::kBool ? 0 : sgn ? -(int64_t(1) << (bits - 1)) : 0;
          const int64_t hi = t.dtype == MilDType::kBool ? 1 : sgn ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1;
          if (x < lo || x > hi) r.error(0, "value " + std::to_string(x) + " out of range for " + mil_dtype_name(t.dtype));
        }
        bitsval = uint64_t(x);
      }
      if (bits < 8) {
        bitsval &= (1u << bits) - 1;
        const uint64_t bit = uint64_t(k) * uint64_t(bits);
        v.data[bit >> 3] |= uint8_t(bitsval << (bit & 7));
        if ((bit & 7) + uint64_t(bits) > 8) v.data[(bit >> 3) + 1] |= uint8_t(bitsval >> (8 - (bit & 7)));
      } else {
        std::memcpy(v.data.data() + k * size_t(bits / 8), &bitsval, size_t(bits / 8));
      }
    }
  }

  MilValue value(WireReader r) {
    depth_in(r);
    MilValue v;
    bool typed = false, valued = false;
    RawTensor raw;
    bool tensor_payload = false;
    while (r.next()) {
      switch (r.field()) {
        case 2: r.expect(WireType::kLen); v.type = value_type(r.message("ValueType")); typed = true; break;
        case 3: {
          r.expect(WireType::kLen);
          WireReader m = r.message("ImmediateValue");
          valued = true;
          tensor_payload = false;
          v.items.clear();
          while (m.next()) {
            const uint64_t f = m.field();
            if (f < 1 || f > 4) { m.skip(); continue; }
            m.expect(WireType::kLen);
            WireReader x = m.message("ImmediateValue");
            if (f == 1) {
              v.kind = MilValue::Kind::kTensor;
              raw = tensor_value(x);
              tensor_payload = true;
            } else if (f == 2 || f == 3) {
              v.kind = f == 2 ? MilValue::Kind::kTuple : MilValue::Kind::kList;
              v.items.clear();
              while (x.next()) {
                if (x.field() == 1) { x.expect(WireType::kLen); v.items.push_back(value(x.message("Value"))); }
                else x.skip();
              }
            } else {
              v.kind = MilValue::Kind::kDict;
              v.items.clear();
              while (x.next()) {
                if (x.field() != 1) { x.skip(); continue; }
                x.expect(WireType::kLen);
                WireReader kv = x.message("DictionaryValue.KeyValuePair");
                std::optional<MilValue> key, val;
                while (kv.next()) {
                  if (kv.field() == 1) { kv.expect(WireType::kLen); key = value(kv.message("Value")); }
                  else if (kv.field() == 2) { kv.expect(WireType::kLen); val = value(kv.message("Value")); }
                  else kv.skip();
                }
                if (!key || !val) kv.error(0, "dictionary entry without a key or value");
                v.items.push_back(std::move(*key));
                v.items.push_back(std::move(*val));
              }
            }
          }
          break;
        }
        case 5: {
          r.expect(WireType::kLen);
          WireReader m = r.message("BlobFileValue");
          v.kind = MilValue::Kind::kBlob;
          valued = true;
          tensor_payload = false;
          while (m.next()) {
            if (m.field() == 1) v.blob.path = m.string_field();
            else if (m.field() == 2) v.blob.offset = m.varint_field();
            else m.skip();
          }
          break;
        }
        default: r.skip();
      }
    }
    if (!typed) r.error(0, "value without a type");
    if (!valued) r.error(0, "value of type " + v.type.str() + " has no immediate or file value");
    if (tensor_payload) encode(v, raw, r);
    check_value(v, source_ + ": protobuf value at byte " + std::to_string(r.offset()));
    depth_out();
    return v;
  }

  // map<string, X> entry {1: key, 2: value}
  template <typename F>
  std::string map_entry(WireReader r, F on_value) {
    std::string key;
    bool have_value = false;
    while (r.next()) {
      if (r.field() == 1) key = r.string_field();
      else if (r.field() == 2) { r.expect(WireType::kLen); on_value(r.message("map value")); have_value = true; }
      else r.skip();
    }
    if (!have_value) on_value(WireReader(nullptr, 0, source_, "map value", r.offset()));
    return key;
  }

  void attribute_entry(WireReader& r, std::vector<MilAttribute>& out) {
    r.expect(WireType::kLen);
    MilAttribute a;
    a.name = map_entry(r.message("attributes entry"), [&](WireReader m) { a.value = value(m); });
    for (const auto& o : out)
      if (o.name == a.name) r.error(0, "attribute '" + a.name + "' given twice");
    out.push_back(std::move(a));
  }

  // ---- program structure ----
  MilBlock block(WireReader r) {
    depth_in(r);
    MilBlock b;
    while (r.next()) {
      switch (r.field()) {
        case 1: r.expect(WireType::kLen); b.inputs.push_back(named_type(r.message("NamedValueType"))); break;
        case 2: b.outputs.push_back(r.string_field()); break;
        case 3: r.expect(WireType::kLen); b.ops.push_back(operation(r.message("Operation"))); break;
        default: r.skip();
      }
    }
    depth_out();
    return b;
  }

  MilOp operation(WireReader r) {
    MilOp op;
    while (r.next()) {
      switch (r.field()) {
        case 1: op.type = r.string_field(); break;
        case 2: {
          r.expect(WireType::kLen);
          MilArgument a;
          a.name = map_entry(r.message("inputs entry"), [&](WireReader m) {
            while (m.next()) {
              if (m.field() != 1) { m.skip(); continue; }
              m.expect(WireType::kLen);
              WireReader b = m.message("Argument.Binding");
              MilBinding bind;
              bool set = false;
              while (b.next()) {
                if (b.field() == 1) { bind.name = b.string_field(); bind.value.reset(); set = true; }
                else if (b.field() == 2) { b.expect(WireType::kLen); bind.value = value(b.message("Value")); bind.name.clear(); set = true; }
                else b.skip();
              }
              if (!set) b.error(0, "empty argument binding");
              a.bindings.push_back(std::move(bind));
            }
          });
          for (const auto& o : op.inputs)
            if (o.name == a.name) r.error(0, "argument '" + a.name + "' given twice");
          op.inputs.push_back(std::move(a));
          break;
        }
        case 3: r.expect(WireType::kLen); op.outputs.push_back(named_type(r.message("NamedValueType"))); break;
        case 4: r.expect(WireType::kLen); op.blocks.push_back(block(r.message("Block"))); break;
        case 5: attribute_entry(r, op.attributes); break;
        default: r.skip();
      }
    }
    if (op.type.empty()) r.error(0, "operation without a type");
    return op;
  }

  MilFunction function(WireReader r, const std::string& name) {
    MilFunction f;
    f.name = name;
    std::string opset;
    std::vector<std::pair<std::string, MilBlock>> specs;
    while (r.next()) {
      switch (r.field()) {
        case 1: r.expect(WireType::kLen); f.inputs.push_back(named_type(r.message("NamedValueType"))); break;
        case 2: opset = r.string_field(); break;
        case 4: attribute_entry(r, f.attributes); break;
        case 3: {
          r.expect(WireType::kLen);
          MilBlock b;
          std::string key = map_entry(r.message("block_specializations entry"), [&](WireReader m) { b = block(m); });
          specs.emplace_back(std::move(key), std::move(b));
          break;
        }
        default: r.skip();
      }
    }
    for (auto& [k, b] : specs)
      if (k == opset) f.block = std::move(b);
    if (std::none_of(specs.begin(), specs.end(), [&](const auto& s) { return s.first == opset; }))
      r.error(0, "function '" + name + "' has no block for its opset '" + opset + "'");
    f.opset = opset_text_name(opset);
    return f;
  }

  MilProgram program(WireReader r) {
    MilProgram p;
    p.source = source_;
    while (r.next()) {
      switch (r.field()) {
        case 1: p.version = std::to_string(int64_t(r.varint_field())); break;
        case 2: {
          r.expect(WireType::kLen);
          MilFunction f;
          std::string name = map_entry(r.message("functions entry"), [&](WireReader m) { f = function(m, ""); });
          f.name = name;
          p.functions.push_back(std::move(f));
          break;
        }
        case 4: attribute_entry(r, p.attributes); break;
        default: r.skip();
      }
    }
    return p;
  }

  // ---- Model / ModelDescription ----
  ModelFeature feature(WireReader r) {
    ModelFeature f;
    while (r.next()) {
      if (r.field() == 1) f.name = r.string_field();
      else if (r.field() == 3) {
        r.expect(WireType::kLen);
        WireReader t = r.message("FeatureType");
        while (t.next()) {
          static const char* kKinds[] = {"", "Int64", "Double", "String", "Image", "MultiArray", "Dictionary", "Sequence", "State"};
          const uint64_t k = t.field();
          if (k == 1000) { f.optional = t.varint_field() != 0; continue; }
          if (k < 1 || k > 8) { t.skip(); continue; }
          t.expect(WireType::kLen);
          f.kind = kKinds[k];
          WireReader a = t.message("FeatureType");
          if (k == 8) {  // StateFeatureType{1: ArrayFeatureType}
            WireReader s = a;
            a = WireReader(nullptr, 0, source_, "ArrayFeatureType");
            while (s.next()) {
              if (s.field() == 1) { s.expect(WireType::kLen); a = s.message("ArrayFeatureType"); }
              else s.skip();
            }
          } else if (k != 5) {
            continue;
          }
          while (a.next()) {
            if (a.field() == 1) repeated(a, WireType::kVarint, [&](WireReader& p) { f.shape.push_back(int64_t(p.varint())); });
            else if (a.field() == 2) {
              const uint64_t dt = a.varint_field();
              f.dtype = dt == 65568 ? "Float32" : dt == 65600 ? "Float64" : dt == 131104 ? "Int32" : dt == 131080 ? "Int8"
                        : dt == 65552 ? "Float16" : "Unknown(" + std::to_string(dt) + ")";
            } else a.skip();
            if (f.shape.size() > 64) a.error(0, "feature rank above 64");
          }
        }
      } else {
        r.skip();
      }
    }
    return f;
  }

  ModelDescription description(WireReader r) {
    ModelDescription d;
    while (r.next()) {
      switch (r.field()) {
        case 1: r.expect(WireType::kLen); d.inputs.push_back(feature(r.message("FeatureDescription"))); break;
        case 10: r.expect(WireType::kLen); d.outputs.push_back(feature(r.message("FeatureDescription"))); break;
        case 13: r.expect(WireType::kLen); d.states.push_back(feature(r.message("FeatureDescription"))); break;
        case 100: {
          r.expect(WireType::kLen);
          WireReader m = r.message("Metadata");
          while (m.next()) {
            switch (m.field()) {
              case 1: d.short_description = m.string_field(); break;
              case 2: d.version = m.string_field(); break;
              case 3: d.author = m.string_field(); break;
              case 4: d.license = m.string_field(); break;
              case 100: {
                m.expect(WireType::kLen);
                WireReader e = m.message("userDefined entry");  // map<string, string> entry
                std::string key, val;
                while (e.next()) {
                  if (e.field() == 1) key = e.string_field();
                  else if (e.field() == 2) val = e.string_field();
                  else e.skip();
                }
                d.user_metadata.emplace_back(std::move(key), std::move(val));
                break;
              }
              default: m.skip();
            }
          }
          break;
        }
        default: r.skip();
      }
    }
    return d;
  }

 private:
  const std::string& source_;
  int depth_ = 0;
};

}  // namespace

std::string opset_text_name(const std::string& p) {
  if (p == "CoreML5") return "ios15";
  if (p == "CoreML6") return "ios16";
  if (p == "CoreML7") return "ios17";
  if (p == "CoreML8") return "ios18";
  return p;
}

MlModelSpec parse_mlmodel(const uint8_t* data, size_t size, const std::string& source) {
  MlModelSpec spec;
  Decoder d(source);
  WireReader r(data, size, source, "Model");
  bool have_program = false;
  while (r.next()) {
    switch (r.field()) {
      case 1: spec.specification_version = int32_t(r.varint_field()); break;
      case 2: r.expect(WireType::kLen); spec.description = d.description(r.message("ModelDescription")); break;
      case 502: r.expect(WireType::kLen); spec.program = d.program(r.message("Program")); have_program = true; break;
      default:
        if (r.field() >= 200 && r.field() < 3001 && r.field() != 502)
          fail(ErrorCode::kUnsupported, source + ": model type " + std::to_string(r.field()) +
                                            " is not an ML program (only mlprogram models are supported)");
        r.skip();
    }
  }
  if (!have_program) fail(ErrorCode::kUnsupported, source + ": the model has no ML program");
  validate(spec.program);
  return spec;
}

MlModelSpec read_mlmodel_file(const std::string& path) {
  auto f = MappedFile::open(path);
  return parse_mlmodel(f->data(), f->size(), path);
}

}  // namespace sdpal::coreml
