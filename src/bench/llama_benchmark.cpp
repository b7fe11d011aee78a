#include "longrec/bench/llama_benchmark.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "longrec/model/llama/llama.h"
#include "longrec/train/peak_flops.h"

namespace longrec::bench {

namespace ll = model::llama;

double llama_forward_flops(const std::string& size, std::int64_t seq_len) {
  const auto c = ll::LlamaConfig::from_descriptor(size);
  const double d = static_cast<double>(c.hidden_size), hd = static_cast<double>(c.head_dim);
  const double h = static_cast<double>(c.num_attention_heads), kv = static_cast<double>(c.num_key_value_heads);
  const double i = static_cast<double>(c.intermediate_size), l = static_cast<double>(seq_len);
  // Per token and layer: q, k, v, o projections; gate, up, down; scores and values over the
  // (causal: on average (L + 1) / 2) keys before it.
  const double projections = 2 * d * (h * hd + 2 * kv * hd) + 2 * h * hd * d;
  const double mlp = 2 * 3 * d * i;
  const double attention = 2 * 2 * h * hd * (l + 1) / 2;
  return l * static_cast<double>(c.num_hidden_layers) * (projections + mlp + attention);
}

std::vector<LlamaBenchmarkRow> benchmark_llama(const LlamaBenchmarkOptions& options) {
  torch::set_num_threads(options.threads);
  const double peak = train::measure_matmul_peak_flops(torch::kCPU);
  std::vector<LlamaBenchmarkRow> rows;
  for (const auto& size : options.sizes) {
    const auto config = ll::LlamaConfig::from_descriptor(size);
    torch::manual_seed(0);
    ll::LlamaModel model(config);
    torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(1e-4));
    const auto embeds = torch::randn({options.batch, options.seq_len, config.hidden_size});
    const auto positions = torch::arange(options.seq_len, torch::kInt64);
    auto step = [&] {
      optimizer.zero_grad();
      const auto out = model->forward_embeds(embeds, positions);
      out.last_hidden_state().pow(2).mean().backward();
      optimizer.step();
    };
    step();  // warm-up
    std::vector<double> ms;
    for (int r = 0; r < options.reps; ++r) {
      const auto start = std::chrono::steady_clock::now();
      step();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    LlamaBenchmarkRow row;
    row.size = size;
    row.tokens_per_step = options.batch * options.seq_len;
    row.gflop_per_step = 3 * static_cast<double>(options.batch) * llama_forward_flops(size, options.seq_len) / 1e9;
    row.ms_per_step = ms[ms.size() / 2];
    row.tokens_per_s = static_cast<double>(row.tokens_per_step) / (row.ms_per_step / 1000);
    row.achieved_gflops = row.gflop_per_step / (row.ms_per_step / 1000);
    row.peak_gflops = peak / 1e9;
    row.mfu = row.achieved_gflops / row.peak_gflops;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace longrec::bench
