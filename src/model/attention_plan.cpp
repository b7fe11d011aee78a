#include "longrec/model/attention_plan.h"

#include "longrec/core/error.h"

namespace longrec::model {

namespace {

// [B, H, N, d] -> [B * (N + 1), H, d] with a zero dummy slot ending each row.
torch::Tensor flat_slots(const torch::Tensor& t) {
  const auto B = t.size(0), H = t.size(1), d = t.size(3);
  auto padded = torch::cat({t, torch::zeros({B, H, 1, d}, t.options())}, 2);
  return padded.permute({0, 2, 1, 3}).reshape({-1, H, d});
}

// Rows of a flat [B * N', H, d] tensor picked by a [B G Lx] index -> [B, H, G, Lx, d].
torch::Tensor pick(const torch::Tensor& flat, const torch::Tensor& index, std::int64_t B, std::int64_t G,
                   std::int64_t n) {
  const auto H = flat.size(1), d = flat.size(2);
  return flat.index_select(0, index).view({B, G, n, H, d}).permute({0, 3, 1, 2, 4});
}

}  // namespace

torch::Tensor attend(const AttentionPlan& plan, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttentionScorer& scorer, const torch::Tensor& memory_k, const torch::Tensor& memory_v) {
  const auto B = q.size(0), H = q.size(1), L = q.size(2), dv = v.size(3);
  LONGREC_CHECK(L == plan.slots && B == plan.rows, "attention plan is for [{}, {}] slots, got [{}, {}]", plan.rows,
                plan.slots, B, L);
  torch::Tensor q_flat, k_flat, v_flat, direct, gathered;
  for (const auto& group : plan.groups) {
    const auto G = group.blocks;
    torch::Tensor qg, kg, vg;
    if (group.query_index.defined()) {
      if (!q_flat.defined()) q_flat = flat_slots(q);
      qg = pick(q_flat, group.query_index, B, G, group.queries);
    } else {
      qg = q.unsqueeze(2);
    }
    if (group.key_index.defined()) {
      if (!k_flat.defined()) {
        k_flat = flat_slots(plan.memory > 0 ? torch::cat({memory_k, k}, 2) : k);
        v_flat = flat_slots(plan.memory > 0 ? torch::cat({memory_v, v}, 2) : v);
      }
      kg = pick(k_flat, group.key_index, B, G, group.keys);
      vg = pick(v_flat, group.key_index, B, G, group.keys);
    } else {
      LONGREC_CHECK(plan.memory == 0, "an attention group over all slots cannot read cached memory");
      kg = k.unsqueeze(2);
      vg = v.unsqueeze(2);
    }
    auto weights = scorer(torch::matmul(qg, kg.transpose(-1, -2)), group);  // [B, H, G, Lq, Lk]
    auto out = torch::matmul(weights, vg);                                  // [B, H, G, Lq, dv]
    if (!group.query_index.defined()) {
      direct = direct.defined() ? direct + out.squeeze(2) : out.squeeze(2);
      continue;
    }
    auto rows = out.permute({0, 2, 3, 1, 4}).reshape({-1, H, dv});
    if (!gathered.defined()) gathered = torch::zeros({B * (L + 1), H, dv}, out.options());
    // Each real slot is queried by one group; pad entries all land on the
    // dummy slot, which is dropped below.
    gathered = gathered.index_add(0, group.query_index, rows);
  }
  if (gathered.defined()) {
    auto scattered = gathered.view({B, L + 1, H, dv}).slice(1, 0, L).permute({0, 2, 1, 3});
    return direct.defined() ? direct + scattered : scattered;
  }
  LONGREC_CHECK(direct.defined(), "attention plan has no groups");
  return direct;
}

torch::Tensor hstu_time_bucket(const torch::Tensor& dt, int num_buckets) {
  // ln(2) rounded as in the reference bucketisation: one bucket per doubling.
  constexpr double kLogBucketWidth = 0.301;
  return (dt.abs().clamp_min(1).to(torch::kFloat64).log() / kLogBucketWidth)
      .floor()
      .clamp(0, num_buckets)
      .to(torch::kInt64);
}

AttentionPlan causal_plan(const torch::Tensor& valid, int max_len, const std::optional<int>& time_buckets,
                          const torch::Tensor& times, const torch::Tensor& query_times) {
  const auto B = valid.size(0), L = valid.size(1);
  AttentionPlan plan;
  plan.rows = B;
  plan.slots = L;
  plan.valid = valid;
  plan.slot_position =
      torch::arange(L, torch::TensorOptions().dtype(torch::kInt64).device(valid.device())).unsqueeze(0).expand({B, L});
  AttentionGroup group;
  group.queries = group.keys = L;
  auto causal = torch::ones({L, L}, torch::TensorOptions().dtype(torch::kBool).device(valid.device())).tril();
  group.allowed = (causal.unsqueeze(0) & valid.unsqueeze(1)).unsqueeze(1);  // [B, 1, L, L]
  if (time_buckets) {
    auto positions = torch::arange(L, torch::TensorOptions().dtype(torch::kInt64).device(valid.device()));
    // [i, j] = N_max - 1 + j - i: the reference's relative position table.
    group.position_index = (max_len - 1 + positions.unsqueeze(0) - positions.unsqueeze(1)).view({1, 1, L, L});
    group.time_bucket = hstu_time_bucket(query_times.unsqueeze(2) - times.unsqueeze(1), *time_buckets).unsqueeze(1);
  }
  plan.groups.push_back(std::move(group));
  return plan;
}

}  // namespace longrec::model
