#include "longrec/model/text_items.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/data/history_store.h"
#include "longrec/model/backbones/hllm.h"
#include "longrec/model/llama/pretrained.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/text/token_cache.h"
#include "longrec/text/tokenizer.h"

namespace longrec::model {

namespace {

std::vector<std::int32_t> prefix_of(const text::Tokenizer& tokenizer, const HllmConfig& config) {
  std::vector<std::int32_t> prefix;
  if (config.bos && tokenizer.bos_id() >= 0) prefix.push_back(tokenizer.bos_id());
  const auto prompt = tokenizer.encode(config.prompt);
  prefix.insert(prefix.end(), prompt.begin(), prompt.end());
  return prefix;
}

}  // namespace

ItemTextInputs::ItemTextInputs(std::vector<std::int32_t> prefix, std::int64_t max_len)
    : prefix_(std::move(prefix)), max_len_(max_len) {
  LONGREC_CHECK(max_len_ >= 1, "item texts need max_len >= 1, got {}", max_len_);
}

ItemTextInputs::ItemTextInputs(const text::Tokenizer& tokenizer, const HllmConfig& config)
    : ItemTextInputs(prefix_of(tokenizer, config), config.max_text_len) {}

ItemTextInputs::ItemTextInputs(const text::ItemTokens& tokens, const text::Tokenizer& tokenizer,
                               const HllmConfig& config)
    : ItemTextInputs(tokenizer, config) {
  for (std::int64_t id = 1; id <= tokens.num_items(); ++id) append(tokens.item(id));
}

std::span<const std::int32_t> ItemTextInputs::item(std::int64_t id) const {
  LONGREC_CHECK(id >= 1 && id <= num_items(), "item {} is outside 1..{}", id, num_items());
  const auto begin = offsets_[static_cast<std::size_t>(id - 1)], end = offsets_[static_cast<std::size_t>(id)];
  return {ids_.data() + begin, static_cast<std::size_t>(end - begin)};
}

std::vector<std::int32_t> ItemTextInputs::compose(std::span<const std::int32_t> text_ids) const {
  std::vector<std::int32_t> out(prefix_);
  out.insert(out.end(), text_ids.begin(), text_ids.end());
  if (static_cast<std::int64_t>(out.size()) > max_len_) out.resize(static_cast<std::size_t>(max_len_));
  return out;
}

std::int64_t ItemTextInputs::append(std::span<const std::int32_t> text_ids) {
  if (text_ids.empty()) ++without_text_;
  const auto composed = compose(text_ids);
  ids_.insert(ids_.end(), composed.begin(), composed.end());
  offsets_.push_back(static_cast<std::int64_t>(ids_.size()));
  return num_items();
}

std::shared_ptr<ItemTextInputs> prepare_item_texts(ModelConfig& config, const std::filesystem::path& dataset,
                                                   const std::filesystem::path& cache) {
  auto& h = config.hllm;
  if (h.tokenizer.empty()) {
    throw ConfigError("hllm.tokenizer",
                      "model.backbone = hllm reads item texts: give a SentencePiece model (train one "
                      "with `longrec tokenizer train --dataset DIR --vocab_size N --out FILE`, or "
                      "use a Llama tokenizer.model)");
  }
  const auto tokenizer = text::Tokenizer::load(h.tokenizer);
  if (!h.tokenizer_checksum.empty() && h.tokenizer_checksum != tokenizer.checksum()) {
    throw ConfigError("hllm.tokenizer",
                      fmt::format("{} has checksum {}, the model was trained with a tokenizer of checksum {}",
                                  h.tokenizer, tokenizer.checksum(), h.tokenizer_checksum));
  }
  if (h.vocab_size > 0 && tokenizer.vocab_size() > h.vocab_size) {
    throw ConfigError("hllm.vocab_size", fmt::format("{} is below the {} ids of the tokenizer {}", h.vocab_size,
                                                     tokenizer.vocab_size(), h.tokenizer));
  }
  h.tokenizer_checksum = tokenizer.checksum();
  if (h.vocab_size == 0) h.vocab_size = tokenizer.vocab_size();
  const data::HistoryStoreReader store(dataset);
  if (!store.meta().has_item_text) {
    throw DataError(
        fmt::format("{}: the store has no item text (/items/text), which model.backbone = hllm reads; "
                    "prepare it with item texts (`longrec prepare --items movies.dat`, a movies.csv, or "
                    "`longrec synth`, which writes them)",
                    dataset.string()));
  }
  const auto tokens = text::tokenize_item_texts(store, tokenizer, cache);
  auto texts = std::make_shared<ItemTextInputs>(tokens, tokenizer, h);
  log::info("item texts: {} items, {} tokens with BOS and prompt (at most {} each){}; tokenizer {} ({}){}",
            texts->num_items(), texts->total_tokens(), h.max_text_len,
            texts->items_without_text() > 0 ? fmt::format(", {} without text", texts->items_without_text()) : "",
            h.tokenizer, tokenizer.checksum(), tokens.reused ? ", token cache reused" : "");
  return texts;
}

void apply_item_pretrained_sizes(ModelConfig& config) {
  auto& h = config.hllm;
  if (h.item_pretrained.empty()) return;
  const auto file = (std::filesystem::path(h.item_pretrained) / "config.json").string();
  const auto llama = llama::LlamaConfig::from_hf_file(file);
  if (llama.hidden_size != config.dim) {
    throw ConfigError("model.dim", fmt::format("{} has hidden_size {}, the item vectors are model.dim = {} wide", file,
                                               llama.hidden_size, config.dim));
  }
  if (llama.head_dim * llama.num_attention_heads != llama.hidden_size) {
    throw ConfigError("hllm.item_pretrained",
                      fmt::format("{}: head_dim {} x {} heads is not hidden_size {}", file, llama.head_dim,
                                  llama.num_attention_heads, llama.hidden_size));
  }
  const auto take = [&](const char* key, int& value, std::int64_t from) {
    if (value == 0) {
      value = static_cast<int>(from);
    } else if (value != from) {
      throw ConfigError(key, fmt::format("got {}, {} has {}", value, file, from));
    }
  };
  take("hllm.item_blocks", h.item_blocks, llama.num_hidden_layers);
  take("hllm.item_heads", h.item_heads, llama.num_attention_heads);
  take("hllm.item_kv_heads", h.item_kv_heads, llama.num_key_value_heads);
  take("hllm.item_ffn_dim", h.item_ffn_dim, llama.intermediate_size);
  take("hllm.vocab_size", h.vocab_size, llama.vocab_size);
  if (h.rope_theta != llama.rope_theta) {
    throw ConfigError("hllm.rope_theta", fmt::format("got {}, {} has {}", h.rope_theta, file, llama.rope_theta));
  }
  if (h.rms_norm_eps != llama.rms_norm_eps) {
    throw ConfigError("hllm.rms_norm_eps", fmt::format("got {}, {} has {}", h.rms_norm_eps, file, llama.rms_norm_eps));
  }
}

void load_item_pretrained(SequentialRecommender& model) {
  const auto& dir = model.config().hllm.item_pretrained;
  if (dir.empty()) return;
  LONGREC_CHECK(model.item_encoder() != nullptr, "hllm.item_pretrained needs the model's item LLM");
  // load_pretrained checks the files; load_state checks every tensor against the item LLM by name.
  const auto loaded = llama::load_pretrained(dir, torch::kFloat32);
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : loaded->named_parameters()) state["model." + p.key()] = p.value();
  model.item_encoder()->llm->load_state(state);
  log::info("item LLM initialised from {}", dir);
}

TextItemEncoder::TextItemEncoder(const ModelConfig& config)
    : mean_pooling_(config.hllm.pooling == "mean"), llama_(item_llm_config(config)) {
  if (llama_.vocab_size < 1) {
    throw ConfigError("hllm.vocab_size",
                      "the item LLM needs a vocabulary: set hllm.tokenizer (training sets "
                      "hllm.vocab_size from it)");
  }
  llm = register_module("llm", llama::LlamaModel(llama_));
  if (!mean_pooling_) {
    // N(0, 0.02), as the reference's item_emb_tokens.
    item_token = register_parameter("item_token", torch::empty({1, llama_.hidden_size}).normal_(0, 0.02));
  }
}

torch::Tensor TextItemEncoder::encode(const ItemTextInputs& texts, const torch::Tensor& ids) {
  const auto device = llm->embed_tokens->weight.device();
  const auto n = ids.numel();
  if (n == 0) return torch::zeros({0, llama_.hidden_size}, llm->embed_tokens->weight.options());
  const auto cpu_ids = ids.to(torch::kCPU, torch::kInt64).contiguous();
  const auto* id = cpu_ids.data_ptr<std::int64_t>();
  const std::int64_t extra = mean_pooling_ ? 0 : 1;  // the [ITEM] slot after each text
  std::vector<std::int64_t> lengths(static_cast<std::size_t>(n));
  std::vector<std::int64_t> tokens;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto text = texts.item(id[i]);
    lengths[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(text.size()) + extra;
    tokens.insert(tokens.end(), text.begin(), text.end());
    if (extra) tokens.push_back(0);  // replaced by [ITEM] below
  }
  const auto packed = llama::PackedSequences::from_lengths(lengths, device);
  auto token_ids = torch::tensor(tokens, torch::kInt64).to(device);
  auto embeds = llm->embed_tokens(token_ids);  // [T, D]
  if (!mean_pooling_) {
    embeds = embeds.index_copy(0, packed.last_token, item_token.to(embeds.scalar_type()).expand({n, embeds.size(1)}));
  }
  const auto out = llm->forward_packed_embeds(embeds, packed).last_hidden_state();  // [T, D]
  if (!mean_pooling_) return out.index_select(0, packed.last_token);
  // Mean of each item's states: segment sums over the packed tokens.
  std::vector<std::int64_t> segment;
  segment.reserve(tokens.size());
  for (std::int64_t i = 0; i < n; ++i) segment.insert(segment.end(), static_cast<std::size_t>(lengths[i]), i);
  auto sums =
      torch::zeros({n, out.size(1)}, out.options()).index_add(0, torch::tensor(segment, torch::kInt64).to(device), out);
  return sums / torch::tensor(lengths, torch::kInt64).to(device, out.scalar_type()).unsqueeze(1);
}

double TextItemEncoder::forward_flops(const ItemTextInputs& texts, const torch::Tensor& ids) const {
  const auto cpu_ids = ids.to(torch::kCPU, torch::kInt64).contiguous();
  const auto* id = cpu_ids.data_ptr<std::int64_t>();
  double flops = 0;
  for (std::int64_t i = 0; i < cpu_ids.numel(); ++i) {
    const double len = static_cast<double>(texts.item(id[i]).size()) + (mean_pooling_ ? 0 : 1);
    flops += len * llama_flops_per_token(llama_, (len + 1) / 2);  // causal: (len + 1) / 2 keys on average
  }
  return flops;
}

TextItemVectors::TextItemVectors(std::shared_ptr<TextItemEncoder> encoder, std::shared_ptr<const ItemTextInputs> texts,
                                 int encode_chunk, int rank, int world)
    : encoder_(std::move(encoder)), texts_(std::move(texts)), chunk_(encode_chunk), rank_(rank), world_(world) {
  LONGREC_CHECK(encoder_ != nullptr && texts_ != nullptr, "text item vectors need an item LLM and item texts");
  LONGREC_CHECK(chunk_ >= 1 && world_ >= 1 && rank_ >= 0 && rank_ < world_, "bad chunk {} or rank {} of {}", chunk_,
                rank_, world_);
}

std::int64_t TextItemVectors::dim() const { return encoder_->llm->config().hidden_size; }

const torch::Tensor& TextItemVectors::table() {
  if (table_.defined()) return table_;
  torch::NoGradGuard no_grad;
  const bool was_training = encoder_->is_training();
  encoder_->eval();
  const auto& weight = encoder_->llm->embed_tokens->weight;
  const auto I = num_items();
  std::vector<torch::Tensor> parts{torch::zeros({1, dim()}, weight.options())};
  for (std::int64_t begin = 1; begin <= I; begin += chunk_) {
    const auto end = std::min<std::int64_t>(I + 1, begin + chunk_);
    parts.push_back(encoder_->encode(*texts_, torch::arange(begin, end, torch::kInt64)));
  }
  encoder_->train(was_training);
  table_ = torch::cat(parts);
  normalized_ = l2_normalize(table_);
  return table_;
}

ItemRows TextItemVectors::lookup(const torch::Tensor& unique_ids) {
  ItemRows out;
  out.ids = unique_ids;
  if (torch::GradMode::is_enabled()) {
    out.rows = encoder_->encode(*texts_, unique_ids);  // differentiable: the gradient reaches the item LLM
  } else {
    out.rows = table().index_select(0, unique_ids.to(table_.device()));
  }
  return out;
}

void TextItemVectors::apply_gradients(const ItemRows&, double) { invalidate(); }

torch::Tensor TextItemVectors::normalized_vectors(const torch::Tensor& ids) {
  table();
  return normalized_.index_select(0, ids.to(normalized_.device()));
}

torch::Tensor TextItemVectors::owned_ids() const {
  const auto I = num_items();
  const auto per = (I + world_ - 1) / world_;
  const auto begin = std::min<std::int64_t>(I, per * rank_), end = std::min<std::int64_t>(I, begin + per);
  return torch::arange(
      begin + 1, end + 1,
      torch::TensorOptions().dtype(torch::kInt64).device(encoder_->llm->embed_tokens->weight.device()));
}

torch::Tensor TextItemVectors::owned_normalized_vectors(std::int64_t begin, std::int64_t end) {
  table();
  const auto per = (num_items() + world_ - 1) / world_;
  const auto first = std::min<std::int64_t>(num_items(), per * rank_) + 1;  // owned entry 0 is this id
  return normalized_.slice(0, first + begin, first + end);
}

}  // namespace longrec::model
