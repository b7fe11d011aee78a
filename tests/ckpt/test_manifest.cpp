// The checkpoint manifest and the choice of checkpoint, without LibTorch
// (this executable links longrec_ckpt_manifest only): every edit of a sealed
// manifest is refused naming the key or the file, and resume=auto never
// starts fresh over step directories. Checkpoints here are fabricated: a
// manifest plus data files of a few bytes with their checksums.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include "longrec/ckpt/manifest.h"
#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "support/test_support.h"

namespace longrec::ckpt {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A consistent manifest: step 7 = epoch 1 x 5 batches + batch 2.
json manifest_json(int world = 1, std::int64_t step = 7, std::int64_t per_epoch = 5) {
  json m;
  m["format"] = kCheckpointFormat;
  m["version"] = kCheckpointVersion;
  m["step"] = step;
  m["epoch"] = step / per_epoch;
  m["loader"] = {{"epoch", step / per_epoch}, {"batch", step % per_epoch}};
  m["batches_per_epoch"] = per_epoch;
  m["world_size"] = world;
  m["history_window"] = 24;
  m["num_items"] = 100;
  m["model"] = json::parse(model::model_config_to_json(model::ModelConfig{}));
  m["config_ini"] = "[train]\nlr = 0.001\n";
  m["dataset"] = "data/synth";
  m["tensors"] = {{"model/w", {4, 4}}};
  json files = json::object();
  for (const auto& name : checkpoint_file_names(world)) files[name] = "crc32:00000000";
  m["files"] = files;
  return m;
}

std::string sealed(const json& m) { return seal_manifest(m.dump()); }

// The text of a sealed manifest after `edit`, without sealing it again.
std::string edited(const json& m, const std::function<void(json&)>& edit) {
  json copy = json::parse(sealed(m));
  edit(copy);
  return copy.dump(2);
}

// parse_manifest refuses `text` with a DataError whose message contains `expected`.
void expect_refused(const std::string& text, const std::string& expected) {
  try {
    parse_manifest(text, "run/ckpt/step-000000007/manifest.json");
    ADD_FAILURE() << "accepted; expected a refusal containing: " << expected;
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(expected), std::string::npos) << what;
    EXPECT_EQ(what.rfind("run/ckpt/step-000000007/manifest.json: ", 0), 0u) << what;
    for (const char c : what) EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 || c == '\n') << what;
  }
}

}  // namespace

TEST(ParseManifest, ReadsASealedManifest) {
  const auto m = parse_manifest(sealed(manifest_json(2)), "x");
  EXPECT_EQ(m.trainer.step, 7);
  EXPECT_EQ(m.trainer.epoch, 1);
  EXPECT_EQ(m.trainer.loader, (data::LoaderPosition{1, 2}));
  EXPECT_EQ(m.batches_per_epoch, 5);
  EXPECT_EQ(m.world_size, 2);
  EXPECT_EQ(m.history_window, 24);
  EXPECT_EQ(m.num_items, 100);
  EXPECT_EQ(m.model.dim, model::ModelConfig{}.dim);
  EXPECT_EQ(m.dataset, "data/synth");
  EXPECT_EQ(m.files.size(), 3u);
  EXPECT_EQ(m.files.at("emb-rank-00001-of-00002.h5"), "crc32:00000000");
  // No "selection" key (a run without train.select_by, or written before it existed): no selection state.
  EXPECT_EQ(m.trainer.selection, SelectionState{});
  // After the epoch's last batch the trainer's epoch may be one ahead of the loader's.
  auto done = manifest_json(1, 10, 5);
  done["epoch"] = 2;
  done["loader"] = {{"epoch", 1}, {"batch", 5}};
  EXPECT_EQ(parse_manifest(sealed(done), "x").trainer.epoch, 2);
}

TEST(ParseManifest, RefusesAnEditedStepOrEpochNamingTheKey) {
  const auto m = manifest_json();
  expect_refused(edited(m, [](json& j) { j["step"] = 8; }), "key 'step' is 8, but the loader position");
  // Sealed again after the edit: the loader position still gives it away.
  expect_refused(sealed(json::parse(edited(m, [](json& j) { j["step"] = 8; }))), "key 'step' is 8");
  expect_refused(edited(m, [](json& j) { j["epoch"] = 2; }), "key 'epoch' is 2, but 'loader.epoch' is 1");
  expect_refused(edited(m, [](json& j) { j["epoch"] = 0; }), "key 'epoch' is 0");
  expect_refused(edited(m, [](json& j) { j["loader"]["epoch"] = 0; }), "'loader.epoch' 0");
  expect_refused(edited(m, [](json& j) { j["loader"]["batch"] = 9; }), "key 'loader.batch' is 9, more than");
  expect_refused(edited(m, [](json& j) { j["batches_per_epoch"] = 6; }), "key 'step' is 7");
  // Step, epoch and loader edited together: consistent, but the checksum no longer is.
  expect_refused(edited(m,
                        [](json& j) {
                          j["step"] = 12;
                          j["epoch"] = 2;
                          j["loader"] = {{"epoch", 2}, {"batch", 2}};
                        }),
                 "key 'manifest_checksum' is");
}

TEST(ParseManifest, RequiresEveryFileOfTheCheckpointListed) {
  const auto m = manifest_json(2);
  expect_refused(edited(m, [](json& j) { j["files"] = json::object(); }), "key 'files' does not list dense.h5");
  expect_refused(sealed(json::parse(edited(m, [](json& j) { j["files"] = json::object(); }))),
                 "key 'files' does not list dense.h5");
  expect_refused(edited(m, [](json& j) { j["files"].erase("emb-rank-00001-of-00002.h5"); }),
                 "key 'files' does not list emb-rank-00001-of-00002.h5");
  expect_refused(edited(m, [](json& j) { j["files"]["../../etc/passwd"] = "crc32:00000000"; }),
                 "key 'files' lists \"../../etc/passwd\", which is not a file of a 2-rank checkpoint");
  expect_refused(edited(m, [](json& j) { j["files"]["dense.h5"] = "none"; }), "expected \"crc32:<8 hex digits>\"");
  expect_refused(edited(m, [](json& j) { j["files"] = json::array(); }), "key 'files' must be an object");
  // world_size edited: the files of another world are asked for.
  expect_refused(edited(m, [](json& j) { j["world_size"] = 3; }), "does not list emb-rank-00000-of-00003.h5");
}

TEST(ParseManifest, RefusesAlteredBytesByTheManifestChecksum) {
  const std::string text = sealed(manifest_json());
  expect_refused(edited(manifest_json(), [](json& j) { j["dataset"] = "data/other"; }), "key 'manifest_checksum'");
  expect_refused(edited(manifest_json(), [](json& j) { j["model"]["dim"] = 64; }), "the manifest was edited");
  expect_refused(edited(manifest_json(), [](json& j) { j.erase("manifest_checksum"); }),
                 "key 'manifest_checksum' is missing");
  // One byte of the text, in the model's temperature: 0.05 -> 0.06.
  const auto at = text.find("\"temperature\": 0.05");
  ASSERT_NE(at, std::string::npos);
  std::string altered = text;
  altered[at + std::string("\"temperature\": 0.0").size()] = '6';
  expect_refused(altered, "the manifest was edited or is corrupt");
  // Whitespace is not content: the same manifest, compact, still verifies.
  EXPECT_NO_THROW(parse_manifest(json::parse(text).dump(), "x"));
}

TEST(ParseManifest, RefusesOtherFormatsVersionsAndTypesNamingTheKey) {
  const auto m = manifest_json();
  expect_refused(edited(m, [](json& j) { j["version"] = 1; }), "checkpoint version 1, written before manifests");
  expect_refused(edited(m, [](json& j) { j["version"] = 3; }), "checkpoint version 3, this build reads version 2");
  expect_refused(edited(m, [](json& j) { j["format"] = "other"; }), "not a longrec checkpoint manifest");
  expect_refused(edited(m, [](json& j) { j["step"] = "7"; }), "key 'step' must be an integer, got string");
  expect_refused(edited(m, [](json& j) { j["step"] = 7.0; }), "key 'step' must be an integer, got number");
  expect_refused(edited(m, [](json& j) { j["step"] = -1; }), "key 'step' is -1, expected 0..");
  expect_refused(edited(m, [](json& j) { j["step"] = 18446744073709551615ULL; }), "key 'step' is 18446744073709551615");
  expect_refused(edited(m, [](json& j) { j["world_size"] = 0; }), "key 'world_size' is 0, expected 1..99999");
  expect_refused(edited(m, [](json& j) { j["loader"].erase("batch"); }), "key 'loader.batch' is missing");
  expect_refused(edited(m, [](json& j) { j["loader"] = 3; }), "key 'loader' must be an object");
  expect_refused(edited(m, [](json& j) { j["model"]["dim"] = "wide"; }),
                 "key 'model': model configuration 'model.dim'");
  expect_refused(edited(m, [](json& j) { j.erase("dataset"); }), "key 'dataset' is missing");
  expect_refused("", "malformed manifest");
  expect_refused("[1, 2]", "malformed manifest (not a JSON object)");
  const char invalid_utf8[] = "{\"format\": \"\xff\x00\x01\"}";
  expect_refused(std::string(invalid_utf8, sizeof invalid_utf8 - 1), "malformed manifest");
  expect_refused(std::string(100000, '['), "nested deeper than 16 levels");
  expect_refused("{\"format\": \"longrec-checkpoint\", \"version\": 2}", "key 'step' is missing");
}

namespace {

// A fabricated checkpoint run_dir/ckpt/<name>: data files of a few bytes, a sealed manifest.
fs::path fabricate(const fs::path& root, std::int64_t step, const std::string& name = "") {
  const fs::path dir = root / (name.empty() ? step_directory_name(step) : name);
  fs::create_directories(dir);
  auto m = manifest_json(1, step, 5);
  for (const auto& file : checkpoint_file_names(1)) {
    testing::write_file(dir / file, file + " of step " + std::to_string(step));
    m["files"][file] = file_checksum(dir / file);
  }
  testing::write_file(dir / kManifestFile, sealed(m));
  return dir;
}

void set_latest(const fs::path& root, const std::string& bytes) { testing::write_file(root / "LATEST", bytes); }

}  // namespace

TEST(ReadManifest, RefusesAStepThatIsNotItsDirectoryAndCorruptFiles) {
  testing::ScratchDir dir;
  const auto root = dir / "ckpt";
  const auto step10 = fabricate(root, 10);
  EXPECT_EQ(read_manifest(step10).trainer.step, 10);
  // Step, epoch and loader edited consistently and sealed again: the directory's name disagrees.
  {
    auto m = json::parse(std::ifstream(step10 / kManifestFile));
    m["step"] = 12;
    m["loader"]["batch"] = 2;
    testing::write_file(step10 / kManifestFile, sealed(m));
  }
  try {
    read_manifest(step10);
    ADD_FAILURE() << "accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'step' is 12, but the checkpoint directory is step-000000010"),
              std::string::npos)
        << e.what();
  }
  // A copy under another name (e.g. `cp -r step-... best`) is read.
  fabricate(root, 15);
  fs::copy(root / "step-000000015", dir / "best", fs::copy_options::recursive);
  EXPECT_EQ(read_manifest(dir / "best").trainer.step, 15);
  EXPECT_EQ(read_manifest(dir / "best/").trainer.step, 15);
  testing::write_file(root / "step-000000015" / kDenseFile, "altered");
  try {
    read_manifest(root / "step-000000015");
    ADD_FAILURE() << "accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("dense.h5: checksum"), std::string::npos) << e.what();
  }
  fs::remove(root / "step-000000015" / kManifestFile);
  EXPECT_THROW(read_manifest(root / "step-000000015"), DataError);
}

TEST(ResolveCheckpoint, AutoWithLatestMissingEmptyOrBinaryUsesTheNewestCompleteStep) {
  testing::ScratchDir dir;
  const auto root = dir / "ckpt";
  fabricate(root, 5);
  fabricate(root, 10);
  set_latest(root, "step-000000010\n");
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), root / "step-000000010");
  set_latest(root, "step-000000005\n");  // LATEST is trusted when it names a directory
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), root / "step-000000005");
  for (const std::string& latest : {std::string("<missing>"), std::string(""), std::string("\n"),
                                    std::string("\x00\x01\x02\xffstep\x7f\n\x00\x00\x00", 13),
                                    std::string("../../etc\n"), std::string("step-000000099\n")}) {
    SCOPED_TRACE(::testing::PrintToString(latest));
    if (latest == "<missing>") {
      fs::remove(root / "LATEST");
    } else {
      set_latest(root, latest);
    }
    EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), root / "step-000000010");
    // An explicit run directory, LATEST or ckpt directory (eval, export) resolves the same way.
    EXPECT_EQ(resolve_checkpoint(dir.path(), dir.path().string()), root / "step-000000010");
    EXPECT_EQ(resolve_checkpoint(dir.path(), root.string()), root / "step-000000010");
  }
  // The newest one is corrupt: the one before it.
  testing::write_file(root / "step-000000010" / kDenseFile, "altered");
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), root / "step-000000005");
  // A leftover temporary directory is never a candidate; a checkpoint set
  // aside while its step was saved again (.step-N.old) is.
  fabricate(root, 20, ".step-000000020.tmp");
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), root / "step-000000005");
  fabricate(root, 15, ".step-000000015.old");
  set_latest(root, "step-000000015\n");  // killed between setting step 15 aside and renaming its new copy
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), root / ".step-000000015.old");
}

TEST(ResolveCheckpoint, ABestFileNamesTheBestCheckpointOrIsRefusedWithTheReason) {
  testing::ScratchDir dir;
  const auto root = dir / "ckpt";
  fabricate(root, 5);
  fabricate(root, 10);
  set_latest(root, "step-000000010\n");
  testing::write_file(root / kBestFile, "step-000000005\n");
  EXPECT_EQ(resolve_checkpoint(dir.path(), (root / kBestFile).string()), root / "step-000000005");
  // The run directory still means LATEST.
  EXPECT_EQ(resolve_checkpoint(dir.path(), dir.path().string()), root / "step-000000010");
  const auto refusal = [&](const std::string& best) {
    testing::write_file(root / kBestFile, best);
    try {
      resolve_checkpoint(dir.path(), (root / kBestFile).string());
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refusal("").find("BEST is empty"), std::string::npos) << refusal("");
  EXPECT_NE(refusal("../../etc\n").find("not a step directory name"), std::string::npos);
  // No fallback to another checkpoint: it would not be the best.
  EXPECT_NE(refusal("step-000000007\n").find("names step-000000007, which does not exist"), std::string::npos);
  fs::remove(root / kBestFile);
  try {
    resolve_checkpoint(dir.path(), (root / kBestFile).string());
    ADD_FAILURE() << "a missing BEST accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("BEST is missing: no best checkpoint"), std::string::npos) << e.what();
  }
}

TEST(ResolveCheckpoint, NeverStartsFreshOverStepDirectories) {
  testing::ScratchDir dir;
  const auto root = dir / "ckpt";
  // Nothing at all: a fresh start (auto), no checkpoint (a path).
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), fs::path());
  fs::create_directories(root);
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), fs::path());
  const std::string binary("\x00\x01\x02\xffstep\x7f\n\x00\x00\x00", 13);
  set_latest(root, binary);
  EXPECT_EQ(resolve_checkpoint(dir.path(), "auto"), fs::path());
  try {
    resolve_checkpoint(dir.path(), (root / "LATEST").string());
    ADD_FAILURE() << "resolved";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("LATEST holds 13 bytes that are not a step directory name: "
                        "\"\\x00\\x01\\x02\\xffstep\\x7f\\n\\x00\\x00\\x00\""),
              std::string::npos)
        << what;
    EXPECT_EQ(what.find('\0'), std::string::npos);
    EXPECT_EQ(what.find('\xff'), std::string::npos);
  }
  // Step directories, none complete: refused, whatever LATEST says.
  fabricate(root, 5);
  fabricate(root, 10);
  testing::write_file(root / "step-000000005" / kDenseFile, "altered");
  fs::remove(root / "step-000000010" / kManifestFile);
  for (const std::string& latest : {std::string(""), binary, std::string("step-000000099\n")}) {
    set_latest(root, latest);
    try {
      resolve_checkpoint(dir.path(), "auto");
      ADD_FAILURE() << "resolved";
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("none of the 2 step directories"), std::string::npos) << what;
      EXPECT_NE(what.find("not starting fresh over them"), std::string::npos) << what;
      EXPECT_NE(what.find("step-000000010/manifest.json: missing"), std::string::npos) << what;
    }
  }
}

}  // namespace longrec::ckpt
