// The files of a plan directory (layout in include/longrec/sweep/sweep.h),
// shared by plan, run and collect.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "longrec/data/loader.h"
#include "longrec/model/model_config.h"
#include "longrec/sweep/descriptor.h"
#include "longrec/train/train_config.h"

namespace longrec::sweep {

namespace fs = std::filesystem;

// A `longrec train` configuration parsed as the command parses it.
struct TrainJob {
  train::TrainConfig train;
  model::ModelConfig model;
  data::LoaderConfig data;
  std::string table, ini;
};
// args: "--config FILE", "--section.key=value", ...; throws ConfigError naming the key.
TrainJob parse_train_job(const std::vector<std::string>& args);

// What `sweep plan` decided for one point (points/NNN/plan.json).
struct PointPlan {
  int point = 0;
  std::string label, overrides, budget_kind;
  double budget = 0;
  std::int64_t parameters = 0, non_embedding_parameters = 0;
  double flops_per_sample = 0;
  std::int64_t batch_size = 0, batches_per_epoch = 0, planned_steps = 0;
  double planned_flops = 0;
  std::string config_checksum;  // CRC-32 of config.ini
};
nlohmann::json to_json(const PointPlan& plan);
PointPlan point_plan_from_json(const nlohmann::json& json, const fs::path& source);

struct SweepInfo {
  std::string name, descriptor, checksum;
  int points = 0, ranks = 1;
};
fs::path sweep_file(const fs::path& plan);
// Throws ConfigError("sweep.plan") naming the directory when it holds no plan.
SweepInfo read_sweep_info(const fs::path& plan);

fs::path point_dir(const fs::path& plan, int point);  // plan/points/NNN
fs::path point_run_dir(const fs::path& plan, int point);
PointPlan read_point_plan(const fs::path& plan, int point);
std::string text_checksum(const std::string& text);
std::string read_text(const fs::path& path);  // SystemError naming the path

// CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& value);

}  // namespace longrec::sweep
