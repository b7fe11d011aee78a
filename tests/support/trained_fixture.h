// A tiny trained checkpoint (HSTU with personalization tokens on a synthetic
// store), made once per test executable, for the serving tests.
#pragma once

#include <filesystem>

#include "longrec/train/trainer.h"
#include "support/synthetic_store.h"
#include "support/test_support.h"

namespace longrec::testing {

// One tiny trained checkpoint (with personalization tokens) for every test.
struct Trained {
  testing::ScratchDir dir;
  std::filesystem::path dataset, run;
  Trained() {
    dataset = testing::make_synthetic_store(dir / "synth", 80, 120, 8, 40);
    run = dir / "run";
    train::TrainConfig t;
    t.dataset = dataset.string();
    t.run_dir = run.string();
    t.max_steps = 6;
    t.eval_every = 0;
    t.threads = 1;
    model::ModelConfig m;
    m.dim = 16;
    m.blocks = 1;
    m.heads = 2;
    m.max_len = 48;
    m.num_negatives = 8;
    m.personalization.segment_len = 16;
    m.personalization.tokens_per_group = 2;
    m.personalization.recent_window = 16;
    data::LoaderConfig d;
    d.batch_size = 16;
    d.max_len = 40;
    train::run_training(t, m, d, "", "");
  }
};

inline Trained& trained() {
  static Trained t;
  return t;
}

}  // namespace longrec::testing
