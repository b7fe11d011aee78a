// `longrec llama`: loads a Hugging Face Llama directory into longrec's Llama
// blocks (the text machinery of HLLM) and, given token ids, runs them: a check
// that a downloaded model loads, and its hidden states for comparison.
#include <filesystem>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/lists.h"
#include "longrec/core/log.h"
#include "longrec/model/llama/pretrained.h"

namespace longrec::cli {

int run_llama(int argc, const char* const* argv) {
  std::string dir, ids_text;
  int threads = 1;
  OptionRegistry r("llama",
                   "Loads a Hugging Face Llama directory (config.json + model.safetensors or a sharded index, f32 /\n"
                   "bf16 / f16) into longrec's Llama blocks, checking every tensor's name and shape, and prints its\n"
                   "sizes; with --ids, runs them and prints each layer's hidden-state RMS at the last position.\n"
                   "Example: longrec llama --dir ~/models/TinyLlama-1.1B --ids 1,450,4996",
                   "llama");
  r.add("llama", "dir", &dir, "the model directory (what save_pretrained writes)");
  r.add("llama", "ids", &ids_text, "token ids to run, comma-separated (empty: load only)");
  r.add("llama", "threads", &threads, "intra-op threads", check::in_range(1, 1024));
  r.constraint([&dir] {
    if (dir.empty()) throw ConfigError("llama.dir", "a model directory is required");
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      throw ConfigError("llama.dir", fmt::format("'{}' is not a directory", dir));
    }
  });
  if (!r.parse(argc, argv)) return 0;
  const auto ids = ids_text.empty() ? std::vector<std::int64_t>{} : parse_int_list("llama.ids", ids_text);
  const auto summary = model::llama::inspect_pretrained(dir, ids, threads);
  const auto& c = summary.config;
  log::info(
      "{}: Llama, hidden {}, {} layers, {} heads ({} key/value), head_dim {}, intermediate {}, vocab {}, "
      "rope_theta {}, {} parameters",
      dir, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
      c.intermediate_size, c.vocab_size, c.rope_theta, log::human_count(static_cast<double>(summary.parameters)));
  for (std::size_t k = 0; k < summary.last_position_rms.size(); ++k) {
    fmt::print("hidden state {}: rms {:.6f}\n", k, summary.last_position_rms[k]);
  }
  return 0;
}

}  // namespace longrec::cli
