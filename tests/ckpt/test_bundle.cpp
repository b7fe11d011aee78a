// The serving bundle: written from a checkpoint, its content equals the
// checkpoint's tensors; bf16 and items-only variants; bad input refused with
// nothing left behind.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/data/h5.h"
#include "longrec/data/history_store.h"
#include "longrec/data/synth.h"
#include "longrec/ckpt/bundle.h"
#include "longrec/train/train_config.h"
#include "support/test_support.h"
#include "support/trained_fixture.h"

namespace longrec::ckpt {

using testing::trained;

namespace fs = std::filesystem;

namespace {

torch::Tensor read_floats(const h5::File& file, const std::string& name) {
  return torch::tensor(file.read<float>(name));
}

}  // namespace

TEST(Bundle, HoldsTheCheckpointsWeightsItemTableAndIds) {
  auto& t = trained();
  ExportOptions o;
  o.checkpoint = (t.run / "ckpt" / "LATEST").string();
  o.out = (t.dir / "model.h5").string();
  const auto summary = export_bundle(o);
  EXPECT_EQ(summary.items, 120);
  EXPECT_EQ(summary.dim, 16);
  EXPECT_EQ(summary.step, 6);

  // The reference: the checkpoint loaded the way evaluation loads it.
  const auto checkpoint = ckpt::resolve_checkpoint(o.checkpoint, o.checkpoint);
  const auto manifest = ckpt::read_manifest(checkpoint);
  model::SequentialRecommender reference(manifest.model);
  model::LocalItemTable items(manifest.num_items, manifest.model.dim, {}, 0);
  ckpt::load_checkpoint(checkpoint, manifest, reference, nullptr, items);

  const auto file = h5::File::open(o.out, "test");
  EXPECT_EQ(file.read_attr_string("format"), kBundleFormat);
  // Version 1: a bundle without an item LLM stays readable by builds that predate version 2.
  EXPECT_EQ(file.read_attr_int("version"), 1);
  EXPECT_EQ(file.read_attr_string("checksum"), summary.checksum);
  const auto shapes = nlohmann::json::parse(file.read_strings("/config/tensors").at(0));
  bool saw_tokens = false;
  for (const auto& p : reference.named_parameters()) {
    const auto name = "/model/" + p.key();
    ASSERT_TRUE(file.has(name)) << name;
    EXPECT_TRUE(torch::equal(read_floats(file, name), p.value().reshape({-1}))) << name;
    EXPECT_EQ(shapes.at(name).get<std::vector<std::int64_t>>(), p.value().sizes().vec()) << name;
    saw_tokens |= p.key() == "personalization.tokens";
  }
  EXPECT_TRUE(saw_tokens);
  EXPECT_TRUE(torch::equal(read_floats(file, "/items/table").view({120, 16}), items.weight().slice(0, 1)));
  EXPECT_EQ(file.read<std::int64_t>("/items/ids"), data::HistoryStoreReader(t.dataset).item_raw_ids());
  EXPECT_EQ(model::model_config_from_json(file.read_strings("/config/model").at(0)).describe(),
            manifest.model.describe());

  // The same checkpoint exported again: the same checksum; also when the
  // table is written in blocks of 7 rows (18 blocks, the last of 1 row) with
  // its progress shown, in fp32 and in bf16.
  o.overwrite = true;
  EXPECT_EQ(export_bundle(o).checksum, summary.checksum);
  ExportOptions blocks = o;
  blocks.out = (t.dir / "blocks.h5").string();
  blocks.rows_per_block = 7;
  blocks.show_progress = true;
  EXPECT_EQ(export_bundle(blocks).checksum, summary.checksum);
  EXPECT_TRUE(torch::equal(read_floats(h5::File::open(blocks.out, "test"), "/items/table").view({120, 16}),
                           items.weight().slice(0, 1)));
  EXPECT_EQ(read_bundle(blocks.out).checksum, summary.checksum);  // read back and verified
  o.dtype = blocks.dtype = "bf16";
  blocks.out = (t.dir / "blocks-bf16.h5").string();
  o.out = (t.dir / "whole-bf16.h5").string();
  EXPECT_EQ(export_bundle(blocks).checksum, export_bundle(o).checksum);
}

TEST(Bundle, Bf16AndItemsOnly) {
  auto& t = trained();
  ExportOptions full;
  full.checkpoint = t.run.string();
  full.out = (t.dir / "fp32.h5").string();
  export_bundle(full);
  ExportOptions half = full;
  half.out = (t.dir / "bf16.h5").string();
  half.dtype = "bf16";
  export_bundle(half);
  const auto a = h5::File::open(full.out, "test"), b = h5::File::open(half.out, "test");
  EXPECT_EQ(b.read_attr_string("dtype"), "bf16");
  const auto exact = torch::tensor(a.read<float>("/items/table"));
  // bf16 bits are the upper half of float32's.
  std::vector<std::uint16_t> raw = b.read<std::uint16_t>("/items/table");
  ASSERT_EQ(static_cast<std::int64_t>(raw.size()), exact.numel());
  std::vector<float> widened(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const std::uint32_t word = static_cast<std::uint32_t>(raw[i]) << 16;
    std::memcpy(&widened[i], &word, sizeof(float));
  }
  EXPECT_TRUE(torch::allclose(torch::tensor(widened), exact, 1.0 / 128, 1e-6));

  ExportOptions only = full;
  only.out = (t.dir / "items.h5").string();
  only.items_only = true;
  export_bundle(only);
  const auto c = h5::File::open(only.out, "test");
  EXPECT_EQ(c.read_attr_string("content"), "items_only");
  EXPECT_FALSE(c.has("/model"));
  const auto vectors = torch::tensor(c.read<float>("/items/vectors")).view({120, 16});
  EXPECT_TRUE(torch::allclose(vectors.norm(2, 1), torch::ones({120}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(vectors, exact.view({120, 16}) / exact.view({120, 16}).norm(2, 1, true), 1e-5, 1e-6));
}

TEST(Bundle, RefusesAnIncompleteCheckpointAnExistingFileAndAForeignDatasetLeavingNothing) {
  auto& t = trained();
  // A copy of the checkpoint without its item rows.
  const auto source = ckpt::resolve_checkpoint(t.run.string(), "auto");
  const auto broken = t.dir / "broken";
  fs::create_directories(broken);
  fs::copy(source, broken / source.filename(), fs::copy_options::recursive);
  const auto victim = broken / source.filename() / "emb-rank-00000-of-00001.h5";
  fs::remove(victim);
  ExportOptions o;
  o.checkpoint = (broken / source.filename()).string();
  o.out = (t.dir / "never.h5").string();
  try {
    export_bundle(o);
    FAIL() << "an incomplete checkpoint was exported";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("emb-rank-00000-of-00001.h5: missing"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.out));

  o.checkpoint = t.run.string();
  o.out = (t.dir / "exists.h5").string();
  testing::write_file(o.out, "keep me");
  try {
    export_bundle(o);
    FAIL() << "an existing file was replaced";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pass --overwrite"), std::string::npos) << e.what();
  }

  // Another catalogue: refused, no temporary file left.
  o.out = (t.dir / "foreign.h5").string();
  o.dataset = testing::make_synthetic_store(t.dir / "other", 20, 50, 4, 30).string();
  EXPECT_THROW(export_bundle(o), ConfigError);
  for (const auto& entry : fs::directory_iterator(t.dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  }
  EXPECT_FALSE(fs::exists(o.out));
}

}  // namespace longrec::ckpt
