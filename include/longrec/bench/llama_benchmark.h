// `longrec bench llama`: the Llama blocks of HLLM alone, on random
// inputs_embeds (what the user LLM reads): training-step (forward + backward)
// tokens/s, achieved GFLOP/s and MFU against this machine's fp32 matmul peak
// measured in the same run. Unlike the small ID models these are matmul-bound.
// Torch-free interface for the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longrec::bench {

struct LlamaBenchmarkOptions {
  // Llama size descriptors (model/llama/llama_config.h).
  std::vector<std::string> sizes{"llama-d256-l2-h4-kv2-i1024-v1000", "llama-d512-l2-h8-kv4-i2048-v1000"};
  std::int64_t batch = 8, seq_len = 128;
  int reps = 3;     // timed steps (median), after one warm-up
  int threads = 2;  // intra-op threads
  // The item LLM's case: `items` texts of lengths uniform in [min_item_len, max_item_len], run
  // packed (PackedSequences) and padded to [items, max length] side by side.
  std::int64_t items = 256, min_item_len = 4, max_item_len = 64;
};

struct LlamaBenchmarkRow {
  std::string size;
  std::int64_t tokens_per_step = 0;
  double gflop_per_step = 0;  // forward + backward (3 x forward) of the blocks
  double ms_per_step = 0;     // median
  double tokens_per_s = 0, achieved_gflops = 0, peak_gflops = 0, mfu = 0;
};

std::vector<LlamaBenchmarkRow> benchmark_llama(const LlamaBenchmarkOptions& options);

struct PackedBenchmarkRow {
  std::string size;
  std::int64_t items = 0, real_tokens = 0, padded_tokens = 0;  // padded: items x longest
  std::int64_t bucket_tokens = 0;                              // what the packed attention pads to
  double padded_ms = 0, packed_ms = 0;                         // median training step
  double padded_tokens_per_s = 0, packed_tokens_per_s = 0;     // real tokens per second
};

// Both ways, one size after the other, alternating padded and packed steps.
std::vector<PackedBenchmarkRow> benchmark_llama_packed(const LlamaBenchmarkOptions& options);

// Forward FLOPs of the blocks on one sequence of `seq_len` tokens (matmuls of
// the projections and the MLP, causal attention scores and values; norms and
// rotations not counted).
double llama_forward_flops(const std::string& size, std::int64_t seq_len);

}  // namespace longrec::bench
