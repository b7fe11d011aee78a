#include "longrec/model/sampled_scores.h"

#include <ATen/Parallel.h>

namespace longrec::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Per-thread row-gradient buffers up to this many values in all; beyond, the
// row gradients are accumulated by one thread (still no [P, K, D] tensor).
constexpr std::int64_t kThreadBufferLimit = std::int64_t{1} << 24;

template <typename T>
void scores_kernel(const T* q, const T* rows, const std::int64_t* index, T* out, std::int64_t P, std::int64_t K,
                   std::int64_t D) {
  at::parallel_for(0, P, 16, [&](std::int64_t begin, std::int64_t end) {
    for (auto p = begin; p < end; ++p) {
      const T* qp = q + p * D;
      for (std::int64_t k = 0; k < K; ++k) {
        const T* r = rows + index[p * K + k] * D;
        T sum = 0;
        for (std::int64_t d = 0; d < D; ++d) sum += qp[d] * r[d];
        out[p * K + k] = sum;
      }
    }
  });
}

// grad_q[p] = sum_k g[p, k] rows[index[p, k]];  grad_rows[index[p, k]] += g[p, k] q[p].
template <typename T>
void backward_kernel(const T* q, const T* rows, const std::int64_t* index, const T* g, T* grad_q, T* row_buffers,
                     bool per_thread, std::int64_t U, std::int64_t P, std::int64_t K, std::int64_t D) {
  const auto accumulate_rows = [&](T* buffer, std::int64_t begin, std::int64_t end) {
    for (auto p = begin; p < end; ++p) {
      const T* qp = q + p * D;
      for (std::int64_t k = 0; k < K; ++k) {
        T* r = buffer + index[p * K + k] * D;
        const T w = g[p * K + k];
        for (std::int64_t d = 0; d < D; ++d) r[d] += w * qp[d];
      }
    }
  };
  at::parallel_for(0, P, 16, [&](std::int64_t begin, std::int64_t end) {
    for (auto p = begin; p < end; ++p) {
      T* gq = grad_q + p * D;
      for (std::int64_t k = 0; k < K; ++k) {
        const T* r = rows + index[p * K + k] * D;
        const T w = g[p * K + k];
        for (std::int64_t d = 0; d < D; ++d) gq[d] += w * r[d];
      }
    }
    if (per_thread) accumulate_rows(row_buffers + at::get_thread_num() * U * D, begin, end);
  });
  if (!per_thread) accumulate_rows(row_buffers, 0, P);
}

class SampledScores : public torch::autograd::Function<SampledScores> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& queries, const torch::Tensor& rows,
                               const torch::Tensor& index) {
    auto q = queries.contiguous(), r = rows.contiguous(), i = index.contiguous();
    ctx->save_for_backward({q, r, i});
    const auto P = q.size(0), D = q.size(1), K = i.size(1);
    auto out = torch::empty({P, K}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "sampled_scores", [&] {
      scores_kernel<scalar_t>(q.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), i.data_ptr<std::int64_t>(),
                              out.data_ptr<scalar_t>(), P, K, D);
    });
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &r = saved[1], &i = saved[2];
    const auto g = grads[0].contiguous();
    const auto P = q.size(0), D = q.size(1), K = i.size(1), U = r.size(0);
    const std::int64_t threads = at::get_num_threads();
    const bool per_thread = threads > 1 && threads * U * D <= kThreadBufferLimit;
    auto grad_q = torch::zeros_like(q);
    auto buffers = torch::zeros({per_thread ? threads : 1, U, D}, r.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "sampled_scores_backward", [&] {
      backward_kernel<scalar_t>(q.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), i.data_ptr<std::int64_t>(),
                                g.data_ptr<scalar_t>(), grad_q.data_ptr<scalar_t>(), buffers.data_ptr<scalar_t>(),
                                per_thread, U, P, K, D);
    });
    return {grad_q, buffers.sum(0), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sampled_scores(const torch::Tensor& queries, const torch::Tensor& rows, const torch::Tensor& index) {
  TORCH_CHECK(queries.dim() == 2 && rows.dim() == 2 && index.dim() == 2 && queries.size(1) == rows.size(1) &&
                  index.size(0) == queries.size(0),
              "sampled_scores: expected queries [P, D], rows [U, D], index [P, K]");
  if (queries.device().is_cpu() && queries.scalar_type() == rows.scalar_type()) {
    return SampledScores::apply(queries, rows, index);
  }
  const auto P = index.size(0), K = index.size(1);
  auto picked = rows.index_select(0, index.reshape({-1})).view({P, K, -1});
  return torch::bmm(picked, queries.unsqueeze(2)).squeeze(2);
}

}  // namespace longrec::model
