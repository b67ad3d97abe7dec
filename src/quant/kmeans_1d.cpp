#include "quant/kmeans_1d.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

// The decisions below compare floating-point costs, so every cost must be computed with the
// same operations as kmeans1d's (see the header): no fused multiply-add, no reassociation.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace sdpal {

namespace {

// Weighted prefix sums over the sorted points, interleaved so one cost reads two cache lines.
struct Prefix {
  struct Sums {
    double w, s, q;  // total weight, weighted sum, weighted sum of squares of points [0, i)
  };
  std::vector<Sums> p;  // n + 1 entries, [0] = 0

  Prefix(const double* x, const double* weights, size_t n) : p(n + 1, Sums{0.0, 0.0, 0.0}) {
    for (size_t i = 0; i < n; ++i) {
      const double wi = weights ? weights[i] : 1.0;
      p[i + 1].w = wi + p[i].w;
      p[i + 1].s = wi * x[i] + p[i].s;
      p[i + 1].q = wi * x[i] * x[i] + p[i].q;
    }
  }

  // Total weight of points [a, b]; 0 when b < a.
  double weight(size_t a, size_t b) const { return a <= b ? p[b + 1].w - p[a].w : 0.0; }

  // Weighted sum of squared distances of points [a, b] to their mean; 0 when b < a.
  double cost(size_t a, size_t b) const {
    if (b < a) return 0.0;
    const Sums& hi = p[b + 1];
    const Sums& lo = p[a];
    const double tw = hi.w - lo.w;
    const double mu = (hi.s - lo.s) / tw;
    double r = hi.q - lo.q;
    r += tw * (mu * mu);
    r -= (2 * mu) * (hi.s - lo.s);
    return r;
  }
};

// Entry (i, j) of the DP layer's matrix: the best cost of the points [0, i] when the last cluster
// starts at j (j > i: the last cluster is empty).
struct LayerCost {
  const double* prev;  // D of the previous layer
  const Prefix* p;
  double operator()(size_t i, size_t j) const {
    const size_t col = j == 0 ? i : std::min(i, j - 1);
    return prev[col] + p->cost(j, i);
  }
};

// Row minima of a totally monotone matrix given by f (SMAWK), with kmeans1d's tie-breaking.
// result[row] receives the argmin column of each row; pos is scratch of one entry per column.
template <class F>
void smawk(const std::vector<uint32_t>& rows, const std::vector<uint32_t>& cols, const F& f, uint32_t* result,
           uint32_t* pos) {
  if (rows.empty()) return;
  // REDUCE: keep at most rows.size() columns that can hold a row minimum. A kept column at stack
  // position p is compared in row rows[p] only, so that entry is computed once, on push.
  std::vector<uint32_t> kept;
  std::vector<double> kept_value;  // f(rows[p], kept[p])
  kept.reserve(std::min(rows.size(), cols.size()));
  kept_value.reserve(kept.capacity());
  for (uint32_t col : cols) {
    while (!kept.empty()) {
      const size_t p = kept.size() - 1;
      if (f(rows[p], col) >= kept_value[p]) break;
      kept.pop_back();
      kept_value.pop_back();
    }
    if (kept.size() < rows.size()) {
      kept_value.push_back(f(rows[kept.size()], col));
      kept.push_back(col);
    }
  }
  // Odd rows recursively.
  std::vector<uint32_t> odd;
  odd.reserve(rows.size() / 2);
  for (size_t r = 1; r < rows.size(); r += 2) odd.push_back(rows[r]);
  smawk(odd, kept, f, result, pos);
  // INTERPOLATE the even rows between their neighbours' argmins.
  for (size_t c = 0; c < kept.size(); ++c) pos[kept[c]] = uint32_t(c);
  size_t start = 0;
  for (size_t r = 0; r < rows.size(); r += 2) {
    const uint32_t row = rows[r];
    size_t stop = kept.size() - 1;
    if (r + 1 < rows.size()) stop = pos[result[rows[r + 1]]];
    uint32_t arg = kept[start];
    double best = f(row, arg);
    for (size_t c = start + 1; c <= stop; ++c) {
      const double v = f(row, kept[c]);
      if (v < best) {
        arg = kept[c];
        best = v;
      }
    }
    result[row] = arg;
    start = stop;
  }
}

}  // namespace

KMeans1DResult kmeans_1d(const double* x, const double* weights, size_t n, size_t k) {
  check(n > 0, ErrorCode::kInvalidArgument, "kmeans_1d: no points");
  check(k > 0, ErrorCode::kInvalidArgument, "kmeans_1d: k must be >= 1");
  check(n < (size_t(1) << 32), ErrorCode::kInvalidArgument, "kmeans_1d: too many points (" + std::to_string(n) + ")");
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]))
      fail(ErrorCode::kInvalidArgument, "kmeans_1d: point " + std::to_string(i) + " is not finite");
    if (i > 0 && !(x[i - 1] <= x[i]))
      fail(ErrorCode::kInvalidArgument,
           "kmeans_1d: points must be sorted (point " + std::to_string(i) + " is smaller than the one before)");
    if (weights && !(std::isfinite(weights[i]) && weights[i] > 0))
      fail(ErrorCode::kInvalidArgument, "kmeans_1d: weight " + std::to_string(i) + " must be positive and finite");
  }
  k = std::min(k, n);
  const Prefix p(x, weights, n);

  // D: two layers at a time; T: every layer, for backtracking.
  std::vector<double> prev(n), cur(n);
  std::vector<uint32_t> starts(k * n, 0);
  for (size_t i = 0; i < n; ++i) prev[i] = p.cost(0, i);
  if (k > 1) {
    std::vector<uint32_t> all(n), argmin(n), pos(n);
    for (size_t i = 0; i < n; ++i) all[i] = uint32_t(i);
    for (size_t c = 1; c < k; ++c) {
      const LayerCost f{prev.data(), &p};
      smawk(all, all, f, argmin.data(), pos.data());
      uint32_t* t = starts.data() + c * n;
      for (size_t i = 0; i < n; ++i) {
        cur[i] = f(i, argmin[i]);
        t[i] = argmin[i];
      }
      std::swap(prev, cur);
    }
  }

  KMeans1DResult r;
  r.centroids.assign(k, 0.0);
  r.labels.assign(n, 0);
  size_t t = n, c = k - 1, end = n - 1;
  do {
    const size_t stop = t;
    t = starts[c * n + end];
    double m = 0.0;
    for (size_t i = t; i < stop; ++i) {
      r.labels[i] = uint32_t(c);
      m += (x[i] - m) * p.weight(i, i) / p.weight(t, i);
    }
    r.centroids[c] = m;
    c -= 1;
    end = t - 1;
  } while (t > 0);
  return r;
}

double kmeans_1d_cost(const double* x, const double* weights, size_t n, const KMeans1DResult& r) {
  double total = 0;
  for (size_t i = 0; i < n && i < r.labels.size(); ++i) {
    const double d = x[i] - r.centroids.at(r.labels[i]);
    total += (weights ? weights[i] : 1.0) * d * d;
  }
  return total;
}

}  // namespace sdpal
