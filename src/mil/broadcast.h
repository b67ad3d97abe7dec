// numpy-broadcasting loops over N operands, with axes merged where every operand allows it, so the
// inner loop runs over the longest possible stretch. Internal to src/mil.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/threads.h"
#include "mil/tensor_util.h"

namespace sdpal::mil::detail {

// Calls row(out_offset, in_offsets, in_inner_strides, inner) for every stretch of `out` (row-major).
// in_shapes must broadcast to `out` (checked by the caller).
template <size_t N, typename Row>
void for_each_broadcast_row(const Shape& out, const std::array<Shape, N>& in_shapes, Row row) {
  const int64_t total = shape_numel(out);
  if (total == 0) return;
  std::array<std::vector<int64_t>, N> full;
  for (size_t k = 0; k < N; ++k) full[k] = broadcast_strides(in_shapes[k], out);
  std::vector<int64_t> dims;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    bool merge = !dims.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = st[k].back() == full[k][d] * out[d];
    if (merge) {
      dims.back() *= out[d];
      for (size_t k = 0; k < N; ++k) st[k].back() = full[k][d];
    } else {
      dims.push_back(out[d]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(full[k][d]);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    for (size_t k = 0; k < N; ++k) st[k].push_back(0);
  }
  const int r = int(dims.size());
  const int64_t inner = dims.back();
  std::array<int64_t, N> istride;
  for (size_t k = 0; k < N; ++k) istride[k] = st[k].back();
  const int64_t rows = total / inner;
  parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        std::vector<int64_t> idx(size_t(r), 0);
        std::array<int64_t, N> off{};
        int64_t rem = r0;
        for (int d = r - 2; d >= 0; --d) {
          idx[size_t(d)] = rem % dims[size_t(d)];
          rem /= dims[size_t(d)];
          for (size_t k = 0; k < N; ++k) off[k] += idx[size_t(d)] * st[k][size_t(d)];
        }
        for (int64_t rr = r0; rr < r1; ++rr) {
          row(rr * inner, off, istride, inner);
          for (int d = r - 2; d >= 0; --d) {
            for (size_t k = 0; k < N; ++k) off[k] += st[k][size_t(d)];
            if (++idx[size_t(d)] < dims[size_t(d)]) break;
            for (size_t k = 0; k < N; ++k) off[k] -= st[k][size_t(d)] * dims[size_t(d)];
            idx[size_t(d)] = 0;
          }
        }
      },
      grain_for(inner));
}

}  // namespace sdpal::mil::detail
