// What one training step holds in memory, estimated from the configuration
// before anything is allocated, and the refusal when it cannot fit the
// machine. Torch-free: the estimate is arithmetic on the config keys.
//
// Every key may be within its bounds and the product still be absurd
// (model.num_negatives x data.batch_size x data.max_len sampled logits, or
// data.batch_size x model.heads x data.max_len^2 attention scores); without
// this check such a step grows until the kernel kills the process. The terms
// are upper estimates of fp32 tensors kept for the backward pass (with a
// factor for the temporaries next to them), not a measurement: they are
// meant to refuse configurations off by a large factor, not to budget a
// tight one.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "longrec/model/model_config.h"

namespace longrec::model {

struct StepShape {
  std::int64_t batch_size = 0;  // data.batch_size: global rows per step
  int world = 1;                // ranks sharing the rows and the item table
  std::int64_t window = 0;      // data.max_len: events per row
  std::int64_t num_items = 0;   // catalogue size; 0 = not known yet (item terms left out)
  bool adam_items = false;      // train.sparse_optimizer = adam: two moments per item-table element
};

struct MemoryTerm {
  std::string what;                                       // "sampled-softmax logits"
  std::vector<std::pair<std::string, std::string>> keys;  // what drives it: (key, value), the first to lower first
  double bytes = 0;
  std::string keys_text() const;  // "model.num_negatives=128 x data.batch_size=128 x ..."
};

struct StepMemoryEstimate {
  std::vector<MemoryTerm> terms;  // largest first
  double total_bytes() const;
  // "22.4 GB: sampled-softmax logits 20.0 GB (model.num_negatives=... x ...), ..." (the largest `terms` terms).
  std::string describe(std::size_t terms = 3) const;
};

// Bytes one rank holds during a training step of `config` on rows of `shape`.
StepMemoryEstimate estimate_step_memory(const ModelConfig& config, const StepShape& shape);

// "1.5 GiB", "3.2 TiB".
std::string format_bytes(double bytes);

// Memory this process can use: physical memory, or the cgroup's limit when it
// is lower (a container's processes are killed at that limit); 0 if unknown.
std::uint64_t machine_memory_bytes();

// Throws ConfigError naming the keys of the largest terms when the estimate
// exceeds `available_bytes` (no check when it is 0). `machine` says what the
// bytes are, e.g. "this machine" or "each of the 2 ranks on this node".
void check_step_memory(const StepMemoryEstimate& estimate, std::uint64_t available_bytes,
                       const std::string& machine = "this machine");

}  // namespace longrec::model
