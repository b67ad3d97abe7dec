// Exact (globally optimal) 1-D k-means over weighted points, computed the way coremltools 8.1 does
// when it palettizes a weight, so that our look-up tables and indices equal Core ML's.
//
// What coremltools 8.1 does (coremltools/models/neural_network/quantization_utils.py,
// _get_kmeans_lookup_table_and_weight, called per tensor or per channel group by
// optimize/coreml/_quantization_passes.py palettize_weights._get_lut_and_indices, mode "kmeans"):
//   - If the data is scalar (cluster_dim 1), has >= 10,000 elements and is float16 (the SD models are
//     converted to fp16 before palettizing), it takes the sorted unique values and their counts
//     (np.unique(..., return_counts=True)) and calls its vendored kmeans1d
//     (coremltools/_deps/kmeans1d, Daniel Steinberg's package plus Apple's weighted variant) with
//     k = min(#unique, 2^nbits) and the counts as weights. The LUT is the k centroids (ascending),
//     zero-padded to 2^nbits entries and cast to the weight's dtype (float64 -> float16, round to
//     nearest even); an element's index is the cluster of its unique value.
//   - Otherwise (fewer than 10,000 elements, float32 data, or vector palettization) it runs
//     scikit-learn's KMeans(k = min(numel, 2^nbits), init="k-means++", tol=1e-2, n_init=1,
//     random_state=0): Lloyd iterations from a seeded random start, a local optimum. We do NOT
//     reproduce that path: sdpal always uses the exact solution below (same or lower error).
//
// kmeans1d's algorithm (Grønlund et al. 2017, "Fast exact k-means, k-medians and Bregman
// divergence clustering in 1D", section 2.2), reproduced here operation for operation so that
// the floating-point decisions, and hence ties, come out the same:
//   - points x_0 <= ... <= x_{n-1} (double) with weights w_i; prefix sums in double, accumulated in
//     order: W[i+1] = w_i + W[i], S[i+1] = w_i*x_i + S[i], Q[i+1] = (w_i*x_i)*x_i + Q[i].
//   - cost(a, b) of one cluster {a..b} (0 when b < a): with w = W[b+1]-W[a], s = S[b+1]-S[a],
//     mu = s / w: cost = ((Q[b+1]-Q[a]) + w*(mu*mu)) - (2*mu)*s.
//   - D[0][i] = cost(0, i). For each further cluster c = 1..k-1, D[c][i] = min over j of
//     C(i, j) = D[c-1][min(i, j-1)] + cost(j, i) (j = 0 reads D[c-1][i]: the unsigned j-1 wraps),
//     the row minima of the n x n matrix C found with SMAWK (the REDUCE step keeps a column when
//     C(row, col) >= C(row, top of stack); INTERPOLATE takes the leftmost strict minimum between
//     the neighbouring odd rows' argmins); T[c][i] = argmin.
//   - Backtracking from T[k-1][n-1]: cluster c covers [T[c][end], previous start); its centroid is
//     the running weighted mean m += (x_i - m) * w_i / (W[i+1] - W[start]). If a start of 0 is
//     reached before cluster 0, the remaining centroids stay 0 (never for distinct points, n >= k).
// Time O(k * n) cost evaluations (SMAWK), memory O(k * n) for T (4 bytes each) plus O(n).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sdpal {

struct KMeans1DResult {
  // min(k, n) centroids, cluster c's at [c]; ascending for distinct points.
  std::vector<double> centroids;
  // Cluster of each point: non-decreasing, each cluster a contiguous run of the sorted points.
  std::vector<uint32_t> labels;
};

// values: n points in non-decreasing order (finite); weights: n positive finite weights, or
// nullptr for all 1. k >= 1 (clipped to n, as kmeans1d does). Throws Error(kInvalidArgument) for
// n == 0, k == 0, unsorted or non-finite input.
KMeans1DResult kmeans_1d(const double* values, const double* weights, size_t n, size_t k);

// Sum over points of w_i * (x_i - centroid of its cluster)^2, for tests and reports.
double kmeans_1d_cost(const double* values, const double* weights, size_t n, const KMeans1DResult& r);

}  // namespace sdpal
