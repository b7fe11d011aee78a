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

std::vector<PackedBenchmarkRow> benchmark_llama_packed(const LlamaBenchmarkOptions& options) {
  torch::set_num_threads(options.threads);
  std::vector<PackedBenchmarkRow> rows;
  for (const auto& size : options.sizes) {
    const auto config = ll::LlamaConfig::from_descriptor(size);
    torch::manual_seed(0);
    ll::LlamaModel model(config);
    torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(1e-4));
    const auto lengths_t = torch::randint(options.min_item_len, options.max_item_len + 1, {options.items});
    const std::vector<int64_t> lengths(lengths_t.data_ptr<int64_t>(), lengths_t.data_ptr<int64_t>() + options.items);
    const auto packed = ll::PackedSequences::from_lengths(lengths);
    const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    const auto ids = torch::randint(0, config.vocab_size, {packed.total_tokens});
    // The padded batch: each text left-aligned in [items, longest], padding at the end (the
    // causal mask keeps it from the real tokens); the loss reads each text's last token.
    auto padded_ids = torch::zeros({options.items, longest}, torch::kLong);
    std::vector<int64_t> last_flat;
    int64_t start = 0;
    for (int64_t i = 0; i < options.items; ++i) {
      padded_ids[i].narrow(0, 0, lengths[i]).copy_(ids.narrow(0, start, lengths[i]));
      last_flat.push_back(i * longest + lengths[i] - 1);
      start += lengths[i];
    }
    const auto last_padded = torch::tensor(last_flat, torch::kLong);
    const auto positions = torch::arange(longest);
    auto padded_step = [&] {
      optimizer.zero_grad();
      const auto h = model->forward(padded_ids, positions).last_hidden_state().reshape({-1, config.hidden_size});
      h.index_select(0, last_padded).pow(2).mean().backward();
      optimizer.step();
    };
    auto packed_step = [&] {
      optimizer.zero_grad();
      const auto h = model->forward_packed(ids, packed).last_hidden_state();
      h.index_select(0, packed.last_token).pow(2).mean().backward();
      optimizer.step();
    };
    padded_step();
    packed_step();
    std::vector<double> padded_ms, packed_ms;
    auto time = [](auto&& f) {
      const auto begin = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    };
    for (int r = 0; r < options.reps; ++r) {
      padded_ms.push_back(time(padded_step));
      packed_ms.push_back(time(packed_step));
    }
    std::sort(padded_ms.begin(), padded_ms.end());
    std::sort(packed_ms.begin(), packed_ms.end());
    PackedBenchmarkRow row;
    row.size = size;
    row.items = options.items;
    row.real_tokens = packed.total_tokens;
    row.padded_tokens = options.items * longest;
    row.bucket_tokens = packed.padded_tokens;
    row.padded_ms = padded_ms[padded_ms.size() / 2];
    row.packed_ms = packed_ms[packed_ms.size() / 2];
    row.padded_tokens_per_s = static_cast<double>(row.real_tokens) / (row.padded_ms / 1000);
    row.packed_tokens_per_s = static_cast<double>(row.real_tokens) / (row.packed_ms / 1000);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace longrec::bench
