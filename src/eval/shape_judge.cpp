#include "eval/shape_judge.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace sdpal::eval {
namespace {

float color_distance(const float a[3], const float b[3]) {
  const float dr = a[0] - b[0], dg = a[1] - b[1], db = a[2] - b[2];
  return std::sqrt(dr * dr + dg * dg + db * db);
}

// Median of a list of bytes (the lower middle for even counts), as a float.
float median(std::vector<uint8_t>& v) {
  if (v.empty()) return 0.f;
  auto mid = v.begin() + (v.size() - 1) / 2;
  std::nth_element(v.begin(), mid, v.end());
  return float(*mid);
}

// Shape prototypes: the features of clean renders (demo/make_dataset.py, averaged over sizes),
// as (fill, corners_top, corners_bottom, centroid_y, cross_moment). See classify_shape.
struct Prototype {
  ShapeKind shape;
  double fill, corners_top, corners_bottom, centroid_y, cross_moment;
};
constexpr Prototype kPrototypes[] = {
    {ShapeKind::Circle, 0.78, 0.54, 0.54, 0.50, 0.33},
    {ShapeKind::Square, 1.00, 0.95, 0.95, 0.50, 0.55},
    {ShapeKind::Triangle, 0.545, 0.01, 0.775, 0.653, 0.33},
    {ShapeKind::Cross, 0.57, 0.075, 0.075, 0.50, 0.13},
};

}  // namespace

const Palette& demo_palette() {
  static const Palette p = {
      {"red", {220, 40, 40}},     {"orange", {240, 125, 15}}, {"yellow", {245, 222, 40}},
      {"green", {40, 160, 60}},   {"blue", {40, 80, 220}},    {"purple", {135, 55, 185}},
      {"pink", {245, 140, 195}},  {"brown", {120, 70, 30}},   {"white", {245, 245, 245}},
      {"black", {25, 25, 25}},    {"gray", {130, 130, 130}},
  };
  return p;
}

int nearest_color(const Palette& palette, const float rgb[3]) {
  int best = -1;
  float best_d = 0;
  for (size_t i = 0; i < palette.size(); ++i) {
    const float c[3] = {float(palette[i].rgb[0]), float(palette[i].rgb[1]), float(palette[i].rgb[2])};
    const float d = color_distance(rgb, c);
    if (best < 0 || d < best_d) best = int(i), best_d = d;
  }
  return best;
}

const char* shape_name(ShapeKind s) {
  switch (s) {
    case ShapeKind::Circle: return "circle";
    case ShapeKind::Square: return "square";
    case ShapeKind::Triangle: return "triangle";
    case ShapeKind::Cross: return "cross";
    default: return "none";
  }
}

ShapeKind parse_shape(const std::string& name) {
  for (ShapeKind s : {ShapeKind::Circle, ShapeKind::Square, ShapeKind::Triangle, ShapeKind::Cross})
    if (name == shape_name(s)) return s;
  return ShapeKind::None;
}

const std::vector<std::string>& position_names() {
  static const std::vector<std::string> names = {"top left", "top", "top right", "left", "center",
                                                 "right", "bottom left", "bottom", "bottom right"};
  return names;
}

int parse_position(const std::string& name) {
  const auto& n = position_names();
  auto it = std::find(n.begin(), n.end(), name);
  return it == n.end() ? -1 : int(it - n.begin());
}

ShapeFeatures measure_shape(const std::vector<float>& alpha, int width, int height) {
  ShapeFeatures f;
  double sx = 0, sy = 0;
  int x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const float a = alpha[size_t(y) * width + x];
      f.area += a;
      sx += a * x;
      sy += a * y;
      if (a >= 0.5f) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x1 < 0 || f.area <= 0) return f;
  f.x0 = x0, f.y0 = y0, f.x1 = x1, f.y1 = y1;
  // Sub-pixel bounding box: an edge pixel row / column is only partly covered, and the one outside
  // the alpha >= 0.5 box may be too; each side moves by their largest coverage.
  auto col_max = [&](int x) {
    float m = 0;
    if (x >= 0 && x < width)
      for (int y = 0; y < height; ++y) m = std::max(m, alpha[size_t(y) * width + x]);
    return double(m);
  };
  auto row_max = [&](int y) {
    float m = 0;
    if (y >= 0 && y < height)
      for (int x = 0; x < width; ++x) m = std::max(m, alpha[size_t(y) * width + x]);
    return double(m);
  };
  const double bx0 = x0 + 1 - col_max(x0) - col_max(x0 - 1), bx1 = x1 + col_max(x1) + col_max(x1 + 1);
  const double by0 = y0 + 1 - row_max(y0) - row_max(y0 - 1), by1 = y1 + row_max(y1) + row_max(y1 + 1);
  const double bw = bx1 - bx0, bh = by1 - by0;
  f.fill = f.area / (bw * bh);
  f.aspect = bw / bh;
  // Centroid height within the bbox (pixel centres: row y covers [y, y + 1)).
  f.centroid_y = (sy / f.area + 0.5 - by0) / bh;

  // Perimeter: 4-neighbour edges between alpha >= 0.5 and < 0.5, scaled by pi/4 (the mean
  // overestimate of the city-block length for boundaries in all directions).
  auto in = [&](int x, int y) {
    return x >= 0 && y >= 0 && x < width && y < height && alpha[size_t(y) * width + x] >= 0.5f;
  };
  int edges = 0;
  for (int y = y0 - 1; y <= y1 + 1; ++y)
    for (int x = x0 - 1; x <= x1 + 1; ++x) {
      if (in(x, y) != in(x + 1, y)) ++edges;
      if (in(x, y) != in(x, y + 1)) ++edges;
    }
  const double perimeter = edges * M_PI / 4.0;
  f.compactness = perimeter > 0 ? 4.0 * M_PI * f.area / (perimeter * perimeter) : 0.0;

  // Mean alpha over the cells of the bbox's 3 x 3 split; pixels are split fractionally between cells.
  double cell[3][3] = {}, cell_area[3][3] = {};
  for (int y = std::max(0, y0 - 1); y <= std::min(height - 1, y1 + 1); ++y)
    for (int x = std::max(0, x0 - 1); x <= std::min(width - 1, x1 + 1); ++x) {
      const double a = alpha[size_t(y) * width + x];
      // pixel [x, x+1) x [y, y+1) in bbox units [0, 3), clipped to the bbox
      const double px0 = std::max(0.0, (x - bx0) * 3.0 / bw), px1 = std::min(3.0, (x + 1 - bx0) * 3.0 / bw);
      const double py0 = std::max(0.0, (y - by0) * 3.0 / bh), py1 = std::min(3.0, (y + 1 - by0) * 3.0 / bh);
      if (px1 <= px0 || py1 <= py0) continue;
      for (int r = int(py0); r <= std::min(2, int(py1 - 1e-9)); ++r)
        for (int c = int(px0); c <= std::min(2, int(px1 - 1e-9)); ++c) {
          const double ox = std::min(px1, c + 1.0) - std::max(px0, double(c));
          const double oy = std::min(py1, r + 1.0) - std::max(py0, double(r));
          if (ox <= 0 || oy <= 0) continue;
          cell[r][c] += a * ox * oy;
          cell_area[r][c] += ox * oy;
        }
    }
  auto mean = [&](int r, int c) { return cell_area[r][c] > 0 ? cell[r][c] / cell_area[r][c] : 0.0; };
  f.corners_top = (mean(0, 0) + mean(0, 2)) / 2;
  f.corners_bottom = (mean(2, 0) + mean(2, 2)) / 2;
  f.middle = mean(1, 1);

  // Fourth-order moments about the centroid, in units of the standard deviations (blur-tolerant:
  // they depend on where the mass is, not on the exact edges).
  const double mx = sx / f.area, my = sy / f.area;
  double vx = 0, vy = 0;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const double a = alpha[size_t(y) * width + x];
      vx += a * (x - mx) * (x - mx), vy += a * (y - my) * (y - my);
    }
  vx /= f.area, vy /= f.area;
  if (vx > 0 && vy > 0) {
    double uv = 0, u4v4 = 0;
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        const double a = alpha[size_t(y) * width + x];
        const double u2 = (x - mx) * (x - mx) / vx, v2 = (y - my) * (y - my) / vy;
        uv += a * u2 * v2, u4v4 += a * (u2 * u2 + v2 * v2);
      }
    f.cross_moment = u4v4 > 0 ? 2 * uv / u4v4 : 0;
  }
  return f;
}

// Nearest prototype in (fill, corners_top, corners_bottom, 3 * centroid_y, 2 * cross_moment): the
// corner cells tell a square (full), circle (partly covered), triangle (bottom only) and cross (empty)
// apart; fill, the low centroid of the apex-up triangle and the fourth moments (which survive blur
// and rounded corners) back them up when a drawn shape is imperfect.
ShapeKind classify_shape(const ShapeFeatures& f) {
  if (f.area <= 0) return ShapeKind::None;
  ShapeKind best = ShapeKind::None;
  double best_d = 0;
  for (const Prototype& p : kPrototypes) {
    const double d = std::pow(f.fill - p.fill, 2) + std::pow(f.corners_top - p.corners_top, 2) +
                     std::pow(f.corners_bottom - p.corners_bottom, 2) +
                     std::pow(3.0 * (f.centroid_y - p.centroid_y), 2) +
                     std::pow(2.0 * (f.cross_moment - p.cross_moment), 2);
    if (best == ShapeKind::None || d < best_d) best = p.shape, best_d = d;
  }
  return best;
}

Judgement judge_image(const uint8_t* rgb, int width, int height, const Palette& palette) {
  Judgement j;
  const int n = width * height;
  auto px = [&](int i, float out[3]) {
    for (int c = 0; c < 3; ++c) out[c] = rgb[size_t(i) * 3 + c];
  };

  // Background: per-channel median of the 2-pixel border ring.
  const int ring = std::min({2, width / 2, height / 2});
  std::vector<uint8_t> ch[3];
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      if (x >= ring && y >= ring && x < width - ring && y < height - ring) continue;
      for (int c = 0; c < 3; ++c) ch[c].push_back(rgb[(size_t(y) * width + x) * 3 + c]);
    }
  for (int c = 0; c < 3; ++c) j.background_rgb[c] = median(ch[c]);
  j.background = nearest_color(palette, j.background_rgb);

  // Foreground mask and its 8-connected components.
  std::vector<float> dist(n);
  for (int i = 0; i < n; ++i) {
    float p[3];
    px(i, p);
    dist[i] = color_distance(p, j.background_rgb);
  }
  std::vector<int> label(n, -1), stack;
  std::vector<int> sizes;
  for (int i = 0; i < n; ++i) {
    if (dist[i] <= kForegroundDistance || label[i] >= 0) continue;
    const int id = int(sizes.size());
    int count = 0;
    stack.push_back(i);
    label[i] = id;
    while (!stack.empty()) {
      const int k = stack.back();
      stack.pop_back();
      ++count;
      const int kx = k % width, ky = k / width;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int x = kx + dx, y = ky + dy;
          if (x < 0 || y < 0 || x >= width || y >= height) continue;
          const int m = y * width + x;
          if (label[m] < 0 && dist[m] > kForegroundDistance) label[m] = id, stack.push_back(m);
        }
    }
    sizes.push_back(count);
  }
  int largest = -1;
  for (size_t c = 0; c < sizes.size(); ++c) {
    if (sizes[c] >= kMinComponentPixels) ++j.components;
    if (largest < 0 || sizes[c] > sizes[largest]) largest = int(c);
  }
  if (largest < 0 || sizes[largest] < kMinComponentPixels) return j;

  // Shape color: core pixels of the largest component (distance >= 0.7 x its 90th percentile),
  // majority palette name, per-channel median for the coverage estimate.
  std::vector<float> d_comp;
  for (int i = 0; i < n; ++i)
    if (label[i] == largest) d_comp.push_back(dist[i]);
  auto q = d_comp.begin() + size_t(0.9 * (d_comp.size() - 1));
  std::nth_element(d_comp.begin(), q, d_comp.end());
  const float core = 0.7f * *q;
  std::map<int, int> votes;
  std::vector<uint8_t> fg_ch[3];
  for (int i = 0; i < n; ++i) {
    if (label[i] != largest || dist[i] < core) continue;
    float p[3];
    px(i, p);
    ++votes[nearest_color(palette, p)];
    for (int c = 0; c < 3; ++c) fg_ch[c].push_back(rgb[size_t(i) * 3 + c]);
  }
  int best_votes = -1;
  for (const auto& [idx, v] : votes)
    if (v > best_votes) j.foreground = idx, best_votes = v;
  for (int c = 0; c < 3; ++c) j.foreground_rgb[c] = median(fg_ch[c]);

  // Coverage: projection on the background -> shape-color line, over the component and its
  // one-pixel neighbourhood (so anti-aliased edge pixels below the mask threshold count too).
  float axis[3], axis2 = 0;
  for (int c = 0; c < 3; ++c) axis[c] = j.foreground_rgb[c] - j.background_rgb[c], axis2 += axis[c] * axis[c];
  std::vector<float> alpha(n, 0.f);
  if (axis2 > 0) {
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        bool near = false;
        for (int dy = -1; dy <= 1 && !near; ++dy)
          for (int dx = -1; dx <= 1 && !near; ++dx) {
            const int xx = x + dx, yy = y + dy;
            near = xx >= 0 && yy >= 0 && xx < width && yy < height && label[yy * width + xx] == largest;
          }
        if (!near) continue;
        const int i = y * width + x;
        float p[3], dot = 0;
        px(i, p);
        for (int c = 0; c < 3; ++c) dot += (p[c] - j.background_rgb[c]) * axis[c];
        alpha[i] = std::clamp(dot / axis2, 0.f, 1.f);
      }
  }
  j.features = measure_shape(alpha, width, height);
  if (j.features.area <= 0) return j;
  j.found = true;
  double sx = 0, sy = 0;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) sx += alpha[y * width + x] * (x + 0.5), sy += alpha[y * width + x] * (y + 0.5);
  j.cx = sx / j.features.area;
  j.cy = sy / j.features.area;
  const int col = std::clamp(int(j.cx * 3 / width), 0, 2), row = std::clamp(int(j.cy * 3 / height), 0, 2);
  j.position = row * 3 + col;
  j.large = std::max(j.features.x1 - j.features.x0 + 1, j.features.y1 - j.features.y0 + 1) >= kLargeExtent;
  j.shape = classify_shape(j.features);
  return j;
}

}  // namespace sdpal::eval
