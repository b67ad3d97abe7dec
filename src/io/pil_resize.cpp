#include "io/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

// Pillow is built without fused multiply-add; contracting a*b+c here would change coefficients
// in the last bit and occasionally flip a rounded pixel.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace sdpal {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images

double bilinear(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic(double x) {  // Keys cubic with a = -0.5
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output index: the first input index, the tap count, and ksize fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;
};

Coeffs precompute(int in_size, int out_size, PilFilter filter) {
  double (*fn)(double) = filter == PilFilter::kBicubic ? bicubic : bilinear;
  const double filter_support = filter == PilFilter::kBicubic ? 2.0 : 1.0;
  // Pillow computes the box width in float (exact for these sizes), then in double.
  const double scale = double(float(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter_support * filterscale;
  Coeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);  // truncation, as Pillow does
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[size_t(xx) * c.ksize + x] =
          v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits)) : int32_t(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;  // arithmetic shift, as on every Pillow platform
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Rows [row0, row0 + out_h) of `in` (in_w wide) filtered horizontally to out_w columns.
std::vector<uint8_t> horizontal(const uint8_t* in, int in_w, int row0, int out_h, const Coeffs& c, int out_w) {
  std::vector<uint8_t> out(size_t(out_w) * out_h * 3);
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* src = in + size_t(row0 + y) * in_w * 3;
    uint8_t* dst = out.data() + size_t(y) * out_w * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &c.k[size_t(xx) * c.ksize];
      const uint8_t* p = src + size_t(c.first[xx]) * 3;
      int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < c.count[xx]; ++x) {
        s0 += int64_t(p[3 * x + 0]) * k[x];
        s1 += int64_t(p[3 * x + 1]) * k[x];
        s2 += int64_t(p[3 * x + 2]) * k[x];
      }
      dst[3 * xx + 0] = clip8(s0);
      dst[3 * xx + 1] = clip8(s1);
      dst[3 * xx + 2] = clip8(s2);
    }
  }
  return out;
}

// `in` (w wide) filtered vertically to out_h rows; coefficient row indices are shifted by -row0.
std::vector<uint8_t> vertical(const uint8_t* in, int w, int row0, const Coeffs& c, int out_h) {
  std::vector<uint8_t> out(size_t(w) * out_h * 3);
  const size_t stride = size_t(w) * 3;
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &c.k[size_t(yy) * c.ksize];
    const uint8_t* src = in + size_t(c.first[yy] - row0) * stride;
    uint8_t* dst = out.data() + size_t(yy) * stride;
    for (size_t i = 0; i < stride; ++i) {
      int64_t s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < c.count[yy]; ++y) s += int64_t(src[size_t(y) * stride + i]) * k[y];
      dst[i] = clip8(s);
    }
  }
  return out;
}

}  // namespace

std::vector<uint8_t> pil_resize_rgb8(const uint8_t* rgb, int width, int height, int out_width, int out_height,
                                     PilFilter filter) {
  constexpr int kMax = 1 << 16;
  check(rgb != nullptr && width > 0 && height > 0 && out_width > 0 && out_height > 0 && width <= kMax &&
            height <= kMax && out_width <= kMax && out_height <= kMax,
        ErrorCode::kInvalidArgument,
        "invalid resize " + std::to_string(width) + "x" + std::to_string(height) + " -> " + std::to_string(out_width) +
            "x" + std::to_string(out_height));
  check(filter == PilFilter::kBicubic || filter == PilFilter::kBilinear, ErrorCode::kUnsupported,
        "unsupported resample filter " + std::to_string(int(filter)));
  if (width == out_width && height == out_height)  // Image.resize returns a copy
    return std::vector<uint8_t>(rgb, rgb + size_t(width) * height * 3);

  const Coeffs vc = precompute(height, out_height, filter);
  // The horizontal pass only computes the rows the vertical pass will read.
  const int row_first = vc.first[0];
  const int row_last = vc.first[out_height - 1] + vc.count[out_height - 1];
  std::vector<uint8_t> tmp;
  const uint8_t* src = rgb;
  int src_w = width, row0 = 0;
  if (out_width != width) {
    tmp = horizontal(rgb, width, row_first, row_last - row_first, precompute(width, out_width, filter), out_width);
    src = tmp.data();
    src_w = out_width;
    row0 = row_first;
  }
  if (out_height == height) return tmp;
  return vertical(src, src_w, row0, vc, out_height);
}

}  // namespace sdpal
