// `longrec tokenizer`: train a SentencePiece model on a store's item texts,
// encode text with a model.
#include <fmt/format.h>

#include <cstring>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/data/history_store.h"
#include "longrec/text/token_cache.h"
#include "longrec/text/tokenizer.h"

namespace longrec::cli {

namespace {

int tokenizer_train(int argc, const char* const* argv) {
  std::string dataset;
  std::string out;
  int vocab_size = 8000;
  text::TrainOptions options;
  OptionRegistry r("tokenizer train",
                   "Trains a SentencePiece model on the item texts of a history store (written by\n"
                   "`longrec prepare --items FILE`) and writes it atomically.\n"
                   "Example: longrec tokenizer train --dataset data/ml-1m --vocab_size 8000 --out ml-1m.model",
                   "tokenizer");
  r.add("tokenizer", "dataset", &dataset, "history store directory with item text (required)");
  r.add("tokenizer", "out", &out, "model file to write, e.g. items.model (required)");
  r.add("tokenizer", "vocab_size", &vocab_size, "pieces in the vocabulary", check::in_range(1, 1 << 24));
  r.add("tokenizer", "model_type", &options.model_type, "unigram | bpe", check::one_of({"unigram", "bpe"}));
  r.add("tokenizer", "character_coverage", &options.character_coverage,
        "share of characters covered by pieces, in (0, 1]; the rest are bytes (byte_fallback) or unknown",
        std::function<void(const std::string&, const double&)>([](const std::string& key, const double& v) {
          if (!(v > 0 && v <= 1)) throw ConfigError(key, fmt::format("got {}, expected a value in (0, 1]", v));
        }));
  r.add("tokenizer", "byte_fallback", &options.byte_fallback, "unknown characters as UTF-8 byte pieces");
  r.add("tokenizer", "threads", &options.threads, "training threads", check::in_range(1, 1024));
  r.constraint([&] {
    if (dataset.empty()) throw ConfigError("tokenizer.dataset", "a history store directory is required");
    if (out.empty()) throw ConfigError("tokenizer.out", "the model file to write is required");
  });
  if (!r.parse(argc, argv)) return 0;
  const data::HistoryStoreReader store(dataset);
  const auto texts = store.item_text();
  if (texts.empty()) {
    throw ConfigError("tokenizer.dataset",
                      fmt::format("{}: the store has no item text (/items/text in meta.h5); add it with "
                                  "`longrec prepare --input LOG --items ITEMS_FILE --out {}`",
                                  dataset, dataset));
  }
  std::int64_t with_text = 0;
  for (const auto& t : texts) with_text += t.empty() ? 0 : 1;
  const auto num_items = static_cast<std::int64_t>(texts.size());
  const auto tokenizer = text::train_tokenizer(texts, vocab_size, out, options);
  fmt::print("wrote {}: vocab size {} ({}), checksum {}\n", out, tokenizer.vocab_size(), options.model_type,
             tokenizer.checksum());
  fmt::print("items with text: {} of {} ({:.1f}%); items without text: {}\n", with_text, num_items,
             100.0 * static_cast<double>(with_text) / static_cast<double>(std::max<std::int64_t>(num_items, 1)),
             num_items - with_text);
  return 0;
}

int tokenizer_encode(int argc, const char* const* argv) {
  std::string model;
  std::string input;
  bool decode = false;
  OptionRegistry r("tokenizer encode",
                   "Prints the token ids of a text (one line, space-separated) under a SentencePiece model.\n"
                   "Example: longrec tokenizer encode --model items.model --text \"café crème\"",
                   "tokenizer");
  r.add("tokenizer", "model", &model, "SentencePiece model file (required)");
  r.add("tokenizer", "text", &input, "text to encode (UTF-8)");
  r.flag("tokenizer", "decode", &decode, "also print the ids decoded back to text on a second line");
  r.constraint([&] {
    if (model.empty()) throw ConfigError("tokenizer.model", "a SentencePiece model file is required");
  });
  if (!r.parse(argc, argv)) return 0;
  const auto tokenizer = text::Tokenizer::load(model);
  const auto ids = tokenizer.encode(input);
  fmt::print("{}\n", fmt::join(ids, " "));
  if (decode) fmt::print("{}\n", tokenizer.decode(ids));
  return 0;
}

int tokenizer_cache(int argc, const char* const* argv) {
  std::string dataset;
  std::string model;
  std::string out;
  OptionRegistry r("tokenizer cache",
                   "Tokenizes every item text of a history store once and caches the ids (HDF5); an up-to-date\n"
                   "cache (same tokenizer and item texts, by checksum) is reused, any other is rebuilt.\n"
                   "Example: longrec tokenizer cache --dataset data/ml-1m --model ml-1m.model --out ml-1m.tokens.h5",
                   "tokenizer");
  r.add("tokenizer", "dataset", &dataset, "history store directory with item text (required)");
  r.add("tokenizer", "model", &model, "SentencePiece model file (required)");
  r.add("tokenizer", "out", &out, "token cache file (required)");
  r.constraint([&] {
    if (dataset.empty()) throw ConfigError("tokenizer.dataset", "a history store directory is required");
    if (model.empty()) throw ConfigError("tokenizer.model", "a SentencePiece model file is required");
    if (out.empty()) throw ConfigError("tokenizer.out", "the token cache file is required");
  });
  if (!r.parse(argc, argv)) return 0;
  const auto tokenizer = text::Tokenizer::load(model);
  const data::HistoryStoreReader store(dataset);
  const auto tokens = text::tokenize_item_texts(store, tokenizer, out);
  const auto items = std::max<std::int64_t>(tokens.num_items(), 1);
  fmt::print("{} {}: {} items, {} tokens ({:.1f} per item), tokenizer {}\n", tokens.reused ? "reused" : "wrote", out,
             tokens.num_items(), tokens.ids.size(), static_cast<double>(tokens.ids.size()) / static_cast<double>(items),
             tokens.tokenizer_checksum);
  if (!tokens.rebuilt_because.empty()) fmt::print("rebuilt because {}\n", tokens.rebuilt_because);
  return 0;
}

}  // namespace

int run_tokenizer(int argc, const char* const* argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    fmt::print(
        "Usage: longrec tokenizer <action> [options]\n\nActions:\n"
        "  train   train a SentencePiece model on a history store's item texts\n"
        "  encode  print the token ids of a text under a model\n"
        "  cache   tokenize a store's item texts once into a cache file\n");
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "train") == 0) return tokenizer_train(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "encode") == 0) return tokenizer_encode(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "cache") == 0) return tokenizer_cache(argc - 1, argv + 1);
  throw ConfigError("tokenizer", fmt::format("unknown action '{}', expected: train, encode, cache", argv[1]));
}

}  // namespace longrec::cli
