#include "quant/palettize.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/kmeans_1d.h"

namespace sdpal {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

// The tensor's elements as float16 bits, -0 folded into +0; throws on values float16 cannot hold.
std::vector<uint16_t> to_f16_bits(const TensorView& v) {
  const int64_t n = v.numel();
  std::vector<uint16_t> h(static_cast<size_t>(n));
  switch (v.dtype) {
    case DType::F16:
      std::memcpy(h.data(), v.data, size_t(n) * 2);
      break;
    case DType::F32: {
      for (int64_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, v.data + 4 * i, 4);
        h[size_t(i)] = f32_to_f16(f);
      }
      break;
    }
    case DType::BF16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, v.data + 2 * i, 2);
        h[size_t(i)] = f32_to_f16(bf16_to_f32(b));
      }
      break;
    }
    case DType::F64: {
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, v.data + 8 * i, 8);
        h[size_t(i)] = f64_to_f16(d);
      }
      break;
    }
    default:
      fail(ErrorCode::kInvalidArgument, "tensor '" + v.name + "': cannot palettize " + dtype_name(v.dtype));
  }
  for (int64_t i = 0; i < n; ++i) {
    uint16_t& b = h[size_t(i)];
    if ((b & 0x7c00u) == 0x7c00u)
      fail(ErrorCode::kInvalidArgument, "tensor '" + v.name + "': element " + std::to_string(i) +
                                            " is not finite in float16 (NaN, inf or beyond +-65504)");
    if (b == 0x8000u) b = 0;
  }
  return h;
}

}  // namespace

PalettizedView PalettizedTensor::view() const {
  PalettizedView v;
  v.name = name;
  v.shape = shape;
  v.nbits = nbits;
  v.indices = indices.data();
  v.indices_nbytes = indices.size();
  v.lut_dtype = DType::F16;
  v.lut = reinterpret_cast<const uint8_t*>(lut.data());
  v.lut_nbytes = lut.size() * 2;
  v.lut_shape = lut_shape;
  return v;
}

uint16_t f64_to_f16(double d) {
  // Round to odd into float32 (24 bits >= 11 + 2), then to nearest even into float16: the same
  // result as one correct rounding of d.
  float f = float(d);
  if (std::isfinite(d) && std::isfinite(f) && double(f) != d) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    if (std::fabs(double(f)) > std::fabs(d)) b -= 1;  // truncate toward zero
    b |= 1u;                                           // sticky bit
    std::memcpy(&f, &b, 4);
  }
  return f32_to_f16(f);
}

std::vector<uint8_t> pack_indices(const uint8_t* values, int64_t count, int nbits) {
  check(nbits >= 1 && nbits <= 8, ErrorCode::kInvalidArgument, "pack_indices: bad width " + std::to_string(nbits));
  std::vector<uint8_t> out(size_t((uint64_t(count) * uint64_t(nbits) + 7) / 8), 0);
  uint64_t bit = 0;
  for (int64_t i = 0; i < count; ++i, bit += uint64_t(nbits)) {
    const uint32_t v = uint32_t(values[i]) << (bit & 7);
    const size_t byte = size_t(bit >> 3);
    out[byte] = uint8_t(out[byte] | (v & 0xffu));
    if ((bit & 7) + uint64_t(nbits) > 8) out[byte + 1] = uint8_t(out[byte + 1] | (v >> 8));
  }
  return out;
}

PalettizedTensor palettize(const TensorView& v, const PalettizeOptions& o) {
  const std::string what = "tensor '" + v.name + "'";
  check(o.nbits == 1 || o.nbits == 2 || o.nbits == 3 || o.nbits == 4 || o.nbits == 6 || o.nbits == 8,
        ErrorCode::kInvalidArgument, what + ": cannot palettize to " + std::to_string(o.nbits) + " bits");
  check(!v.is_palettized(), ErrorCode::kInvalidArgument, what + ": already palettized");
  check(is_float(v.dtype), ErrorCode::kInvalidArgument, what + ": cannot palettize " + std::string(dtype_name(v.dtype)));
  check(!v.shape.empty() && v.numel() > 0, ErrorCode::kInvalidArgument, what + ": cannot palettize an empty or scalar tensor");
  check(v.data != nullptr && v.nbytes == size_t(v.numel()) * dtype_size(v.dtype), ErrorCode::kInvalidArgument,
        what + ": no data or a size not matching " + shape_str(v.shape));
  const int64_t out_ch = v.shape[0];
  check(o.group_size >= 0, ErrorCode::kInvalidArgument, what + ": negative group size");
  const int64_t g_size = o.group_size ? o.group_size : out_ch;
  check(out_ch % g_size == 0, ErrorCode::kInvalidArgument,
        what + ": " + std::to_string(out_ch) + " output channels are not a multiple of the group size " +
            std::to_string(g_size));
  const int64_t groups = out_ch / g_size;
  const int64_t per_group = v.numel() / groups;
  const int64_t palette = int64_t(1) << o.nbits;

  PalettizedTensor r;
  r.name = v.name;
  r.shape = v.shape;
  r.nbits = o.nbits;
  if (o.group_size) {
    r.lut_shape.assign(v.shape.size() + 2, 1);
    r.lut_shape[0] = groups;
    r.lut_shape[v.shape.size()] = palette;
  } else {
    r.lut_shape = {palette};
  }
  r.lut.assign(size_t(groups * palette), 0);

  const std::vector<uint16_t> h = to_f16_bits(v);
  std::vector<uint8_t> idx(h.size());
  std::vector<uint32_t> count(65536);
  std::vector<uint8_t> label(65536);
  std::vector<double> values, weights;
  std::vector<uint16_t> bits;
  values.reserve(65536);
  weights.reserve(65536);
  bits.reserve(65536);
  for (int64_t g = 0; g < groups; ++g) {
    const uint16_t* src = h.data() + g * per_group;
    std::fill(count.begin(), count.end(), 0u);
    for (int64_t i = 0; i < per_group; ++i) ++count[src[i]];
    // Distinct values in ascending order: negatives from the most negative (largest bit pattern
    // below the infinities) up, then zero and the positives.
    values.clear();
    weights.clear();
    bits.clear();
    for (uint32_t b = 0xfbffu; b > 0x8000u; --b)
      if (count[b]) bits.push_back(uint16_t(b));
    for (uint32_t b = 0; b < 0x7c00u; ++b)
      if (count[b]) bits.push_back(uint16_t(b));
    for (uint16_t b : bits) {
      values.push_back(double(f16_to_f32(b)));
      weights.push_back(double(count[b]));
    }
    const KMeans1DResult km = kmeans_1d(values.data(), weights.data(), values.size(),
                                        std::min<size_t>(values.size(), size_t(palette)));
    for (size_t j = 0; j < bits.size(); ++j) label[bits[j]] = uint8_t(km.labels[j]);
    for (size_t c = 0; c < km.centroids.size(); ++c) r.lut[size_t(g * palette) + c] = f64_to_f16(km.centroids[c]);
    uint8_t* dst = idx.data() + g * per_group;
    for (int64_t i = 0; i < per_group; ++i) dst[i] = label[src[i]];
  }
  r.indices = pack_indices(idx.data(), int64_t(idx.size()), o.nbits);
  validate_palettized(r.view());
  return r;
}

bool palettize_eligible(const TensorView& v, std::string* why, int64_t threshold) {
  auto no = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (v.is_palettized()) return no("already palettized");
  if (!is_float(v.dtype)) return no(std::string(dtype_name(v.dtype)) + " is not a float type");
  if (v.shape.size() < 2) return no("rank " + std::to_string(v.shape.size()) + " (vectors stay dense)");
  if (v.numel() <= threshold) return no(std::to_string(v.numel()) + " elements <= " + std::to_string(threshold));
  if (!ends_with(v.name, ".weight")) return no("not a layer weight (embedding or buffer)");
  for (const char* e : {"token_embedding.weight", "position_embedding.weight", "embed_tokens.weight",
                        "embed_positions.weight"})
    if (ends_with(v.name, e)) return no("embedding table");
  if (why) why->clear();
  return true;
}

double snr_db(const float* ref, const float* approx, int64_t n) {
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = ref[i], d = r - double(approx[i]);
    signal += r * r;
    noise += d * d;
  }
  if (noise == 0) return std::numeric_limits<double>::infinity();
  if (signal == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

}  // namespace sdpal
