// `longrec sweep plan`: every point's config resolved and checked as `longrec
// train` would, its parameters counted on the built model, its FLOPs per
// sample measured on the first training batches (the count training and
// `bench train` use), its budget turned into steps; then the plan directory.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "longrec/core/atomic_file.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/model/personalization_layout.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/sweep/sweep.h"
#include "plan_dir.h"

namespace longrec::sweep {

namespace {

// Rethrows the exception in flight with the point named, keeping its kind and key.
[[noreturn]] void rethrow_for_point(const SweepPoint& point) {
  const auto label = point.label.empty() ? format_overrides(point.varying)
                                         : fmt::format("{}: {}", point.label, format_overrides(point.varying));
  const auto where = fmt::format("sweep point {} ({})", point.index, label);
  try {
    throw;
  } catch (const ConfigError& e) {
    std::string problem = e.what();
    const auto prefix = fmt::format("config key '{}': ", e.key());
    if (problem.rfind(prefix, 0) == 0) problem = problem.substr(prefix.size());
    throw ConfigError(e.key(), fmt::format("{}: {}", where, problem));
  } catch (const DataError& e) {
    throw DataError(fmt::format("{}: {}", where, e.what()));
  } catch (const SystemError& e) {
    throw SystemError(fmt::format("{}: {}", where, e.what()));
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
}

std::vector<std::string> point_args(const std::string& base, const SweepPoint& point) {
  std::vector<std::string> args{"--config", base};
  for (const auto& [k, v] : point.overrides) args.push_back(fmt::format("--{}={}", k, v));
  return args;
}

struct ModelCount {
  std::int64_t parameters = 0, non_embedding = 0;
};

// Dense parameters of the built model plus the item table (num_items + 1
// rows: row 0 is padding); "non-embedding" leaves out the item table and the
// learned positions (the convention of the scaling-law literature).
ModelCount count_parameters(const model::SequentialRecommender& model, std::int64_t num_items) {
  ModelCount count;
  for (const auto& p : model.named_parameters()) {
    const auto n = p.value().numel();
    count.parameters += n;
    if (p.key() != "position_embedding") count.non_embedding += n;
  }
  count.parameters += (num_items + 1) * model.config().dim;
  return count;
}

// Training FLOPs per sample, averaged over up to `max_batches` batches of the
// first epoch: per batch, training_flops_per_token(width) x its events, as
// TrainingSession counts a step.
double measure_flops_per_sample(const model::SequentialRecommender& model, data::HistoryLoader& loader,
                                int max_batches) {
  double flops = 0;
  std::int64_t samples = 0;
  for (int b = 0; b < max_batches; ++b) {
    auto batch = loader.next();
    if (!batch) break;
    std::int64_t events = 0;
    for (auto len : batch->lengths) events += len;
    flops += model.training_flops_per_token(batch->width) * static_cast<double>(events);
    samples += batch->rows;
  }
  if (samples == 0) throw DataError("no training samples in the dataset");
  return flops / static_cast<double>(samples);
}

// What the FLOPs per sample depend on: the dataset and the [model] / [data]
// sections, seeds aside (seeds and budgets of one size share the count).
std::string flops_key(const TrainJob& job) {
  std::string key = job.train.dataset + "\n", section;
  std::istringstream in(job.ini);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.front() == '[') section = line;
    if ((section == "[model]" || section == "[data]") && line.rfind("seed", 0) != 0) key += line + "\n";
  }
  return key;
}

struct PlannedPoint {
  PointPlan plan;
  std::string ini;
};

PlannedPoint plan_point(const SweepDescriptor& d, const SweepPoint& point, int flops_batches,
                        std::map<std::string, std::pair<ModelCount, double>>& measured) {
  TrainJob job = parse_train_job(point_args(d.base, point));
  if (job.model.backbone == "hllm") {
    throw ConfigError("model.backbone",
                      "hllm points cannot be planned yet: the item LLM's FLOPs depend on each step's unique items "
                      "and its size on the tokenizer (sweep HSTU or SASRec backbones)");
  }
  model::check_model_fits_history(job.model.max_len, job.model.personalization, job.data.max_len);
  data::HistoryLoader loader(job.train.dataset, job.data, data::SplitPart::Train);
  const std::int64_t per_epoch = loader.batches_per_epoch();
  const std::int64_t num_items = loader.num_items();
  train::check_training_memory(job.train, job.model, job.data, d.ranks, 1, num_items);
  const auto key = flops_key(job);
  if (measured.count(key) == 0) {
    torch::NoGradGuard no_grad;
    const model::SequentialRecommender model(job.model);
    const auto count = count_parameters(model, num_items);
    measured[key] = {count, measure_flops_per_sample(model, loader, flops_batches)};
  }
  const auto& [count, flops_per_sample] = measured.at(key);

  PointPlan plan;
  plan.point = point.index;
  plan.label = point.label;
  plan.overrides = format_overrides(point.varying);
  plan.budget_kind = budget_kind_name(d.budget_kind);
  plan.budget = point.budget;
  plan.parameters = count.parameters;
  plan.non_embedding_parameters = count.non_embedding;
  plan.flops_per_sample = flops_per_sample;
  plan.batch_size = job.data.batch_size;  // the global batch, for any number of ranks
  plan.batches_per_epoch = per_epoch;
  const double flops_per_step = flops_per_sample * static_cast<double>(job.data.batch_size);
  std::int64_t epochs = 0;
  switch (d.budget_kind) {
    case BudgetKind::kEpochs:
      epochs = static_cast<std::int64_t>(point.budget);
      plan.planned_steps = epochs * per_epoch;
      break;
    case BudgetKind::kSteps:
      plan.planned_steps = static_cast<std::int64_t>(point.budget);
      break;
    case BudgetKind::kFlops:
      plan.planned_steps = static_cast<std::int64_t>(std::floor(point.budget / flops_per_step));
      if (plan.planned_steps < 1) {
        throw ConfigError("sweep.budgets",
                          fmt::format("a budget of {:.3g} FLOPs is less than one training step ({:.3g} FLOPs: {:.3g} "
                                      "per sample x data.batch_size {})",
                                      point.budget, flops_per_step, flops_per_sample, job.data.batch_size));
      }
      break;
  }
  if (epochs == 0) epochs = (plan.planned_steps + per_epoch - 1) / per_epoch;
  if (epochs > 1000000) {
    throw ConfigError("sweep.budgets", fmt::format("{} steps need {} epochs of {} batches (at most 1000000)",
                                                   plan.planned_steps, epochs, per_epoch));
  }
  plan.planned_flops = flops_per_step * static_cast<double>(plan.planned_steps);
  // The budget in the point's own config: epochs, and the step count where it is not whole epochs.
  auto args = point_args(d.base, point);
  args.push_back(fmt::format("--train.epochs={}", epochs));
  args.push_back(fmt::format("--train.max_steps={}", d.budget_kind == BudgetKind::kEpochs ? 0 : plan.planned_steps));
  PlannedPoint planned{plan, parse_train_job(args).ini};
  planned.plan.config_checksum = text_checksum(planned.ini);
  return planned;
}

// A directory `sweep plan` may write: new, empty, or this descriptor's own plan.
void check_plan_directory(const fs::path& out, const SweepDescriptor& d) {
  if (!fs::exists(out)) return;
  if (!fs::is_directory(out))
    throw ConfigError("sweep.out", fmt::format("{} exists and is not a directory", out.string()));
  if (fs::is_regular_file(sweep_file(out))) {
    const auto info = read_sweep_info(out);
    if (info.checksum != d.checksum || info.name != d.name) {
      throw ConfigError(
          "sweep.out",
          fmt::format("{} holds the plan of sweep '{}' ({}, checksum {}); {} is sweep '{}' (checksum "
                      "{}): plan it into another directory",
                      out.string(), info.name, info.descriptor, info.checksum, d.path, d.name, d.checksum));
    }
    return;
  }
  if (fs::directory_iterator(out) != fs::directory_iterator()) {
    throw ConfigError("sweep.out",
                      fmt::format("{} is not empty and holds no sweep plan (no sweep.json)", out.string()));
  }
}

std::string plan_csv(const std::vector<PlannedPoint>& points) {
  std::string csv =
      "point,name,overrides,budget_kind,budget,parameters,non_embedding_parameters,flops_per_sample,batch_size,"
      "batches_per_epoch,planned_steps,planned_flops\n";
  for (const auto& pp : points) {
    const auto& p = pp.plan;
    csv += fmt::format("{},{},{},{},{:g},{},{},{:.6g},{},{},{},{:.6g}\n", p.point, csv_field(p.label),
                       csv_field(p.overrides), p.budget_kind, p.budget, p.parameters, p.non_embedding_parameters,
                       p.flops_per_sample, p.batch_size, p.batches_per_epoch, p.planned_steps, p.planned_flops);
  }
  return csv;
}

}  // namespace

int plan_sweep(const PlanOptions& options) {
  const auto d = read_sweep_descriptor(options.descriptor);
  const fs::path out(options.out);
  check_plan_directory(out, d);
  const auto points = expand_points(d);
  log::info("sweep '{}': {} points ({} listed x {} grid combinations x {} budgets of {})", d.name, points.size(),
            std::max<std::size_t>(d.points.size(), 1),
            points.size() / std::max<std::size_t>(d.points.size(), 1) / d.budgets.size(), d.budgets.size(),
            budget_kind_name(d.budget_kind));
  // Every point is checked before anything is written.
  std::vector<PlannedPoint> planned;
  std::map<std::string, std::pair<ModelCount, double>> measured;
  for (const auto& point : points) {
    try {
      planned.push_back(plan_point(d, point, options.flops_batches, measured));
    } catch (...) {
      rethrow_for_point(point);
    }
  }
  fmt::print("{:>5}  {:<12} {:<44} {:>9} {:>11} {:>11} {:>11} {:>9} {:>10}\n", "point", "name", "overrides",
             fmt::format("budget"), "params", "non-emb", "FLOPs/smp", "steps", "FLOPs");
  for (const auto& pp : planned) {
    const auto& p = pp.plan;
    fmt::print("{:>5}  {:<12} {:<44} {:>9.3g} {:>11} {:>11} {:>11.3g} {:>9} {:>10.3g}\n", p.point, p.label, p.overrides,
               p.budget, p.parameters, p.non_embedding_parameters, p.flops_per_sample, p.planned_steps,
               p.planned_flops);
  }
  for (const auto& pp : planned) {
    const auto dir = point_dir(out, pp.plan.point);
    fs::create_directories(dir);
    write_file_atomically(dir / "config.ini", [&](std::ostream& o) { o << pp.ini; });
    write_file_atomically(dir / "plan.json", [&](std::ostream& o) { o << to_json(pp.plan).dump(2) << "\n"; });
  }
  write_file_atomically(out / "plan.csv", [&](std::ostream& o) { o << plan_csv(planned); });
  // Last: the directory is a plan once sweep.json is there.
  const nlohmann::json info{{"name", d.name},
                            {"descriptor", d.path},
                            {"checksum", d.checksum},
                            {"points", static_cast<int>(planned.size())},
                            {"ranks", d.ranks}};
  write_file_atomically(sweep_file(out), [&](std::ostream& o) { o << info.dump(2) << "\n"; });
  fmt::print(
      "planned {} points into {}\n  one after another: longrec sweep run --plan {} --all\n  as a Slurm job array: "
      "sbatch --array=0-{} --ntasks={} launch/sweep.sbatch {}\n",
      planned.size(), out.string(), out.string(), planned.size() - 1, d.ranks, out.string());
  return static_cast<int>(planned.size());
}

}  // namespace longrec::sweep
