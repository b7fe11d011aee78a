#include "plan_dir.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "longrec/core/checksum.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"

namespace longrec::sweep {

TrainJob parse_train_job(const std::vector<std::string>& args) {
  TrainJob job;
  OptionRegistry r("train", "", "train");
  train::register_train_options(r, job.train);
  model::register_model_options(r, job.model);
  data::register_loader_options(r, job.data);
  std::vector<const char*> argv{"train"};
  for (const auto& a : args) argv.push_back(a.c_str());
  r.parse(static_cast<int>(argv.size()), argv.data());
  job.table = r.table();
  job.ini = r.ini();
  return job;
}

nlohmann::json to_json(const PointPlan& p) {
  return {{"point", p.point},
          {"label", p.label},
          {"overrides", p.overrides},
          {"budget_kind", p.budget_kind},
          {"budget", p.budget},
          {"parameters", p.parameters},
          {"non_embedding_parameters", p.non_embedding_parameters},
          {"flops_per_sample", p.flops_per_sample},
          {"batch_size", p.batch_size},
          {"batches_per_epoch", p.batches_per_epoch},
          {"planned_steps", p.planned_steps},
          {"planned_flops", p.planned_flops},
          {"config_checksum", p.config_checksum}};
}

PointPlan point_plan_from_json(const nlohmann::json& j, const fs::path& source) {
  PointPlan p;
  try {
    p.point = j.at("point").get<int>();
    p.label = j.at("label").get<std::string>();
    p.overrides = j.at("overrides").get<std::string>();
    p.budget_kind = j.at("budget_kind").get<std::string>();
    p.budget = j.at("budget").get<double>();
    p.parameters = j.at("parameters").get<std::int64_t>();
    p.non_embedding_parameters = j.at("non_embedding_parameters").get<std::int64_t>();
    p.flops_per_sample = j.at("flops_per_sample").get<double>();
    p.batch_size = j.at("batch_size").get<std::int64_t>();
    p.batches_per_epoch = j.at("batches_per_epoch").get<std::int64_t>();
    p.planned_steps = j.at("planned_steps").get<std::int64_t>();
    p.planned_flops = j.at("planned_flops").get<double>();
    p.config_checksum = j.at("config_checksum").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not a sweep point plan ({})", source.string(), e.what()));
  }
  return p;
}

fs::path sweep_file(const fs::path& plan) { return plan / "sweep.json"; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SystemError(fmt::format("{}: cannot open", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

SweepInfo read_sweep_info(const fs::path& plan) {
  const auto file = sweep_file(plan);
  if (!fs::is_regular_file(file)) {
    throw ConfigError("sweep.plan", fmt::format("{} is not a sweep plan (no {}): run `longrec sweep plan` first",
                                                plan.string(), file.filename().string()));
  }
  SweepInfo info;
  try {
    const auto j = nlohmann::json::parse(read_text(file));
    info.name = j.at("name").get<std::string>();
    info.descriptor = j.at("descriptor").get<std::string>();
    info.checksum = j.at("checksum").get<std::string>();
    info.points = j.at("points").get<int>();
    info.ranks = j.at("ranks").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not a sweep plan file ({})", file.string(), e.what()));
  }
  if (info.points < 1) throw DataError(fmt::format("{}: {} points", file.string(), info.points));
  return info;
}

fs::path point_dir(const fs::path& plan, int point) { return plan / "points" / fmt::format("{:03d}", point); }
fs::path point_run_dir(const fs::path& plan, int point) { return point_dir(plan, point) / "run"; }

PointPlan read_point_plan(const fs::path& plan, int point) {
  const auto file = point_dir(plan, point) / "plan.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(file));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not JSON ({})", file.string(), e.what()));
  }
  auto p = point_plan_from_json(j, file);
  if (p.point != point) throw DataError(fmt::format("{}: holds point {}, expected {}", file.string(), p.point, point));
  return p;
}

std::string text_checksum(const std::string& text) {
  Crc32 crc;
  crc.update(text.data(), text.size());
  return crc.hex();
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace longrec::sweep
