#include "longrec/model/step_inputs.h"

#include <ATen/CPUGeneratorImpl.h>

#include "longrec/core/rng.h"

namespace longrec::model {

namespace {

UniqueIds index_slice(const UniqueIds& index, std::int64_t begin, std::int64_t end) {
  return UniqueIds{index.unique, index.inverse.slice(0, begin, end)};
}

}  // namespace

std::uint64_t negatives_seed(const ModelConfig& config, std::int64_t step) {
  return derive_seed(config.seed, 0x9E6ull, static_cast<std::uint64_t>(step));
}

UniqueIds StepInputs::inputs_index() const { return index_slice(index, 0, batch.items.numel()); }

UniqueIds StepInputs::positives_index() const {
  const auto begin = batch.items.numel();
  return index_slice(index, begin, begin + positions());
}

UniqueIds StepInputs::negatives_index() const {
  return index_slice(index, batch.items.numel() + positions(), index.inverse.size(0));
}

StepInputs StepInputs::to(torch::Device device) const {
  if (batch.items.device() == device) return *this;
  StepInputs out = *this;
  auto& b = out.batch;
  for (auto* t : {&b.items, &b.times, &b.query_times, &b.lengths, &b.valid, &b.targets}) *t = t->to(device);
  out.supervised = supervised.to(device);
  out.positives = positives.to(device);
  out.negatives = negatives.to(device);
  out.index.unique = index.unique.to(device);
  out.index.inverse = index.inverse.to(device);
  return out;
}

StepInputs prepare_step_inputs(SequenceBatch batch, const ModelConfig& config, std::int64_t num_items,
                               std::uint64_t seed) {
  StepInputs out;
  const auto device = batch.items.device();
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const auto supervised = batch.targets > 0;  // [B, L]
  out.supervised = supervised.reshape({-1}).nonzero().squeeze(1);
  out.positives = batch.targets.masked_select(supervised);
  const auto K = static_cast<std::int64_t>(config.num_negatives);
  if (K > 0 && config.negatives == "shared") {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    out.negatives = at::randint(1, num_items + 1, {K}, generator, torch::kInt64).to(device);
  } else if (K > 0) {
    // Row by row from (seed, sample key): the same draws whichever rank holds the row.
    const auto per_row = supervised.sum(1).to(torch::kCPU);
    // Batches built by hand (tests) may come without keys: the row index then.
    const auto row_key = [&](std::int64_t r) {
      return r < static_cast<std::int64_t>(batch.sample_keys.size()) ? batch.sample_keys[r]
                                                                     : static_cast<std::uint64_t>(r);
    };
    std::vector<torch::Tensor> parts;
    for (std::int64_t r = 0; r < batch.rows(); ++r) {
      const auto n = per_row[r].item<std::int64_t>();
      if (n == 0) continue;
      auto generator = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, row_key(r)));
      parts.push_back(at::randint(1, num_items + 1, {n, K}, generator, torch::kInt64));
    }
    out.negatives = (parts.empty() ? torch::zeros({0, K}, torch::kInt64) : torch::cat(parts)).to(device);
  } else {
    out.negatives = torch::zeros({0}, i64);
  }
  // One lookup for every id the step reads: inputs, targets, negatives.
  out.index = unique_ids(torch::cat({batch.items.reshape({-1}), out.positives, out.negatives.reshape({-1})}));
  out.batch = std::move(batch);
  return out;
}

}  // namespace longrec::model
