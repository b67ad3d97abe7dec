// The demo model's shape judge (src/eval/shape_judge.h) on the committed golden set
// tests/goldens/judge/ (64 clean images rendered by demo/make_dataset.py --judge-golden, every shape,
// position, size and color): >= 98 % background / shape-color / position and >= 90 % shape accuracy,
// plus behaviour on hand-made coverage maps and noisy copies of the goldens.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "eval/shape_judge.h"
#include "golden.h"

namespace sdpal::eval {
namespace {

using sdpal::testing::Golden;
using sdpal::testing::repo_path;

constexpr int kSide = 64;

struct GoldenSet {
  std::vector<uint8_t> pixels;
  nlohmann::json labels;
  int count = 0;
  const uint8_t* image(int i) const { return pixels.data() + size_t(i) * kSide * kSide * 3; }
};

const GoldenSet& golden() {
  static GoldenSet g = [] {
    GoldenSet s;
    Golden file("tests/goldens/judge/judge.safetensors");
    const TensorView& v = file.view("images");
    EXPECT_EQ(v.shape.size(), 4u);
    EXPECT_EQ(v.shape[1], kSide);
    EXPECT_EQ(v.shape[2], kSide);
    EXPECT_EQ(v.shape[3], 3);
    s.count = int(v.shape[0]);
    s.pixels = file.u8("images");
    std::ifstream in(repo_path("tests/goldens/judge/labels.json"));
    s.labels = nlohmann::json::parse(in);
    return s;
  }();
  return g;
}

int color_index(const std::string& name) {
  const Palette& p = demo_palette();
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i].name == name) return int(i);
  return -1;
}

struct Scores {
  int n = 0, bg = 0, fg = 0, pos = 0, shape = 0, size = 0;
};

// Judges every golden image after `distort` (identity by default) and counts correct attributes.
template <class Distort>
Scores score_goldens(Distort distort, bool verbose) {
  const GoldenSet& g = golden();
  Scores s;
  for (int i = 0; i < g.count; ++i) {
    std::vector<uint8_t> img(g.image(i), g.image(i) + kSide * kSide * 3);
    distort(img, i);
    const nlohmann::json& l = g.labels["images"][i];
    const Judgement j = judge_image(img.data(), kSide, kSide);
    const bool bg = j.background == color_index(l["background"]);
    const bool fg = j.foreground == color_index(l["color"]);
    const bool pos = j.position == parse_position(l["position"]);
    const bool shape = j.shape == parse_shape(l["shape"]);
    const bool size = j.large == (l["size"] == "large");
    s.n++, s.bg += bg, s.fg += fg, s.pos += pos, s.shape += shape, s.size += size;
    if (verbose && !(bg && fg && pos && shape && size)) {
      const auto& f = j.features;
      ADD_FAILURE() << "image " << i << " want " << l.dump() << " got bg "
                    << (j.background >= 0 ? demo_palette()[j.background].name : "-") << " fg "
                    << (j.foreground >= 0 ? demo_palette()[j.foreground].name : "-") << " pos "
                    << (j.position >= 0 ? position_names()[j.position] : "-") << " shape " << shape_name(j.shape)
                    << (j.large ? " large" : " small") << " (fill " << f.fill << ", corners " << f.corners_top
                    << "/" << f.corners_bottom << ", centroid_y " << f.centroid_y << ", cross_moment "
                    << f.cross_moment << ")";
    }
  }
  return s;
}

TEST(ShapeJudge, PaletteMatchesTheDatasetGenerator) {
  const nlohmann::json& pal = golden().labels.at("palette");
  ASSERT_EQ(pal.size(), demo_palette().size());
  for (const NamedColor& c : demo_palette()) {
    ASSERT_TRUE(pal.contains(c.name)) << c.name;
    for (int k = 0; k < 3; ++k) EXPECT_EQ(pal[c.name][k].get<int>(), c.rgb[k]) << c.name;
  }
  const nlohmann::json& positions = golden().labels.at("positions");
  ASSERT_EQ(positions.size(), position_names().size());
  for (size_t i = 0; i < positions.size(); ++i) EXPECT_EQ(positions[i].get<std::string>(), position_names()[i]);
  for (const auto& s : golden().labels.at("shapes")) EXPECT_NE(parse_shape(s.get<std::string>()), ShapeKind::None);
}

TEST(ShapeJudge, GoldenAccuracy) {
  // Every clean golden image is judged right today; the bars leave room for small changes.
  const Scores s = score_goldens([](std::vector<uint8_t>&, int) {}, /*verbose=*/true);
  ASSERT_EQ(s.n, 64);
  EXPECT_GE(s.bg, 0.98 * s.n);
  EXPECT_GE(s.fg, 0.98 * s.n);
  EXPECT_GE(s.pos, 0.98 * s.n);
  EXPECT_GE(s.shape, 0.90 * s.n);
  EXPECT_GE(s.size, 0.95 * s.n);
}

TEST(ShapeJudge, ToleratesNoise) {
  // +-20 uniform noise per value (a fixed LCG), roughly what an imperfect generator leaves on flat areas.
  const Scores s = score_goldens(
      [](std::vector<uint8_t>& img, int i) {
        uint32_t state = 12345u + uint32_t(i);
        for (uint8_t& v : img) {
          state = state * 1664525u + 1013904223u;
          const int noise = int((state >> 16) % 41) - 20;
          v = uint8_t(std::clamp(int(v) + noise, 0, 255));
        }
      },
      /*verbose=*/false);
  EXPECT_GE(s.bg, 0.98 * s.n);
  EXPECT_GE(s.fg, 0.95 * s.n);
  EXPECT_GE(s.pos, 0.95 * s.n);
  EXPECT_GE(s.shape, 0.85 * s.n);
}

TEST(ShapeJudge, IsDeterministic) {
  const GoldenSet& g = golden();
  for (int i = 0; i < 4; ++i) {
    const Judgement a = judge_image(g.image(i), kSide, kSide), b = judge_image(g.image(i), kSide, kSide);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.features.fill, b.features.fill);
    EXPECT_EQ(a.cx, b.cx);
  }
}

TEST(ShapeJudge, BlankImageHasNoShape) {
  std::vector<uint8_t> img(kSide * kSide * 3);
  for (size_t i = 0; i < img.size(); i += 3) img[i] = 40, img[i + 1] = 80, img[i + 2] = 220;
  const Judgement j = judge_image(img.data(), kSide, kSide);
  EXPECT_FALSE(j.found);
  EXPECT_EQ(j.background, color_index("blue"));
  EXPECT_EQ(j.foreground, -1);
  EXPECT_EQ(j.position, -1);
  EXPECT_EQ(j.shape, ShapeKind::None);
}

// Coverage maps drawn here by point sampling (4 x 4 per pixel), shapes centred at (cx, cy).
std::vector<float> coverage(const std::function<bool(double, double)>& inside) {
  std::vector<float> a(kSide * kSide);
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      int hits = 0;
      for (int sy = 0; sy < 4; ++sy)
        for (int sx = 0; sx < 4; ++sx) hits += inside(x + (sx + 0.5) / 4, y + (sy + 0.5) / 4);
      a[y * kSide + x] = hits / 16.f;
    }
  return a;
}

TEST(ShapeJudge, ClassifiesIdealCoverageMaps) {
  const double cx = 30.3, cy = 33.7, h = 11;
  auto square = coverage([&](double x, double y) { return std::abs(x - cx) < h && std::abs(y - cy) < h; });
  auto circle = coverage([&](double x, double y) { return std::hypot(x - cx, y - cy) < h; });
  auto cross = coverage([&](double x, double y) {
    const double dx = std::abs(x - cx), dy = std::abs(y - cy);
    return dx < h && dy < h && (dx < h / 3 || dy < h / 3);
  });
  auto triangle = coverage([&](double x, double y) {  // apex (cx, cy - h), base y = cy + h
    const double t = (y - (cy - h)) / (2 * h);
    return t >= 0 && t <= 1 && std::abs(x - cx) <= t * h;
  });
  const ShapeFeatures fs = measure_shape(square, kSide, kSide), fc = measure_shape(circle, kSide, kSide);
  const ShapeFeatures fx = measure_shape(cross, kSide, kSide), ft = measure_shape(triangle, kSide, kSide);
  EXPECT_NEAR(fs.fill, 1.0, 0.03);
  EXPECT_NEAR(fc.fill, M_PI / 4, 0.03);
  EXPECT_NEAR(fx.fill, 5.0 / 9.0, 0.03);
  EXPECT_NEAR(ft.fill, 0.5, 0.045);  // the apex pixels are barely covered: the sub-pixel bbox runs short
  EXPECT_NEAR(ft.centroid_y, 2.0 / 3.0, 0.02);
  EXPECT_NEAR(fc.compactness, 1.0, 0.1);
  EXPECT_NEAR(fs.aspect, 1.0, 0.02);
  EXPECT_EQ(classify_shape(fs), ShapeKind::Square);
  EXPECT_EQ(classify_shape(fc), ShapeKind::Circle);
  EXPECT_EQ(classify_shape(fx), ShapeKind::Cross);
  EXPECT_EQ(classify_shape(ft), ShapeKind::Triangle);
  EXPECT_EQ(classify_shape(ShapeFeatures{}), ShapeKind::None);
}

TEST(ShapeJudge, CountsComponentsAndJudgesTheLargest) {
  // White background, a large red square on the right and a small blue one at the top left.
  std::vector<uint8_t> img(kSide * kSide * 3, 245);
  auto fill = [&](int x0, int y0, int s, std::array<uint8_t, 3> c) {
    for (int y = y0; y < y0 + s; ++y)
      for (int x = x0; x < x0 + s; ++x)
        for (int k = 0; k < 3; ++k) img[(y * kSide + x) * 3 + k] = c[k];
  };
  fill(36, 20, 24, {220, 40, 40});
  fill(10, 8, 8, {40, 80, 220});
  const Judgement j = judge_image(img.data(), kSide, kSide);
  EXPECT_TRUE(j.found);
  EXPECT_EQ(j.components, 2);
  EXPECT_EQ(j.background, color_index("white"));
  EXPECT_EQ(j.foreground, color_index("red"));
  EXPECT_EQ(j.shape, ShapeKind::Square);
  EXPECT_EQ(position_names()[j.position], "right");
  EXPECT_TRUE(j.large);
  EXPECT_NEAR(j.cx, 48.0, 0.01);
  EXPECT_NEAR(j.cy, 32.0, 0.01);
}

TEST(ShapeJudge, NamesAndParsing) {
  EXPECT_EQ(parse_shape("triangle"), ShapeKind::Triangle);
  EXPECT_EQ(parse_shape("star"), ShapeKind::None);
  EXPECT_STREQ(shape_name(ShapeKind::Cross), "cross");
  EXPECT_EQ(parse_position("bottom right"), 8);
  EXPECT_EQ(parse_position("middle"), -1);
  const float grey[3] = {120, 125, 135};
  EXPECT_EQ(demo_palette()[nearest_color(demo_palette(), grey)].name, "gray");
}

}  // namespace
}  // namespace sdpal::eval
