// A tiny trained HLLM checkpoint for the serving tests of new items: a
// movies.dat-like store whose item texts carry a genre (users stay within
// one), a SentencePiece tokenizer trained on those texts, a few training
// steps; made once per test process.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "longrec/ckpt/bundle.h"
#include "longrec/data/history_store.h"
#include "longrec/data/prepare.h"
#include "longrec/text/tokenizer.h"
#include "longrec/train/trainer.h"
#include "support/test_support.h"

namespace longrec::testing {

struct TrainedHllm {
  static constexpr int kItems = 60;
  ScratchDir dir;
  std::filesystem::path dataset, tokenizer, run;

  // Item i's text fields, as in movies.dat (title::genres).
  static std::string genre(int item) {
    static const char* genres[] = {"Comedy", "Drama", "Action", "Horror", "Romance", "Musical"};
    return genres[item % 6];
  }

  TrainedHllm() {
    {
      std::ofstream movies(dir / "movies.dat"), ratings(dir / "ratings.dat");
      for (int item = 1; item <= kItems; ++item) {
        movies << fmt::format("{}::Movie {} of {} ({})::{}\n", item, item, genre(item), 1950 + item % 40, genre(item));
      }
      for (int user = 1; user <= 40; ++user) {
        for (int k = 0; k < 15; ++k) {
          const int item = user % 6 + 6 * ((user * 5 + k * 7) % 10);
          ratings << fmt::format("{}::{}::4::{}\n", user, item == 0 ? kItems : item, 1000 + k);
        }
      }
    }
    data::PrepareOptions p;
    p.input = dir / "ratings.dat";
    p.item_text = dir / "movies.dat";
    p.output = dir / "store";
    p.text_fields = {"title", "genres"};
    p.text_style = "key_value";
    p.num_parts = 2;
    data::prepare_dataset(p);
    dataset = p.output;
    tokenizer = dir / "items.model";
    text::train_tokenizer(data::HistoryStoreReader(dataset).item_text(), 320, tokenizer);

    run = dir / "run";
    train::TrainConfig t;
    t.dataset = dataset.string();
    t.run_dir = run.string();
    t.max_steps = 8;
    t.eval_every = 0;
    t.threads = 1;
    t.lr = 3e-3;
    model::ModelConfig m;
    m.backbone = "hllm";
    m.dim = 16;
    m.blocks = 1;
    m.heads = 2;
    m.max_len = 16;
    m.dropout = 0;
    m.negatives = "shared";
    m.num_negatives = 16;
    m.hllm.kv_heads = 1;
    m.hllm.item_blocks = 1;
    m.hllm.tokenizer = tokenizer.string();
    // A short prompt and BOS: add_item must compose [BOS] + prompt + text as training did.
    m.hllm.prompt = "Item: ";
    m.hllm.max_text_len = 24;
    data::LoaderConfig d;
    d.batch_size = 8;
    d.max_len = 16;
    train::run_training(t, m, d, "", "");
  }

  // Its bundle, exported once: with the item LLM and tokenizer (the default) or without (--export.item_llm=false).
  std::filesystem::path bundle(bool item_llm) const {
    const auto path = dir / (item_llm ? "hllm.h5" : "hllm-no-item-llm.h5");
    if (!std::filesystem::exists(path)) {
      ckpt::ExportOptions o;
      o.checkpoint = run.string();
      o.out = path.string();
      o.item_llm = item_llm;
      ckpt::export_bundle(o);
    }
    return path;
  }
};

inline TrainedHllm& trained_hllm() {
  static TrainedHllm t;
  return t;
}

}  // namespace longrec::testing
