#include "longrec/model/item_vectors.h"

namespace longrec::model {

torch::Tensor l2_normalize(const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(kL2NormEpsilon); }

UniqueIds unique_ids(const torch::Tensor& ids) {
  auto flat = ids.reshape({-1});
  auto [unique, inverse, counts] = at::_unique2(flat, /*sorted=*/true, /*return_inverse=*/true, false);
  UniqueIds out;
  // Sorted: padding id 0, if present, comes first; drop it and send its
  // positions to index U (an appended zero row).
  const bool has_padding = unique.numel() > 0 && unique[0].item<std::int64_t>() == 0;
  if (has_padding) {
    unique = unique.slice(0, 1);
    inverse = inverse - 1;
    inverse = torch::where(inverse < 0, torch::full_like(inverse, unique.size(0)), inverse);
  }
  out.unique = unique;
  out.inverse = inverse.reshape(ids.sizes());
  return out;
}

torch::Tensor embed(const ItemRows& rows, const UniqueIds& index) {
  auto padded = torch::cat({rows.rows, torch::zeros({1, rows.rows.size(1)}, rows.rows.options())}, 0);
  auto flat = padded.index_select(0, index.inverse.reshape({-1}));
  auto shape = index.inverse.sizes().vec();
  shape.push_back(rows.rows.size(1));
  return flat.reshape(shape);
}

}  // namespace longrec::model
