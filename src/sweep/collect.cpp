// `longrec sweep collect`: every point's plan, state and measured figures in
// one table (results.csv), for scripts/sweep_fit.py.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "longrec/core/atomic_file.h"
#include "longrec/core/error.h"
#include "longrec/sweep/sweep.h"
#include "plan_dir.h"

namespace longrec::sweep {

namespace {

// Whether a process holds the point's lock (it is training or evaluating it now).
bool point_locked(const fs::path& dir) {
  const auto path = dir / ".lock";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool locked = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
  ::close(fd);
  return locked;
}

struct Interval {
  std::int64_t end = 0, steps = 0, samples = 0, tokens = 0;
  double flops = 0, seconds = 0, loss = 0;
};

// The training intervals of rank 0's metrics stream. A resumed run repeats the
// steps after its last checkpoint: an interval that starts before the end of
// the kept ones replaces those it overlaps. A torn last line (a kill
// mid-write) is left out; a malformed line elsewhere is refused by file:line.
std::vector<Interval> training_intervals(const fs::path& metrics) {
  std::vector<Interval> kept;
  std::ifstream in(metrics);
  if (!in) return kept;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception&) {
      if (i + 1 == lines.size()) break;
      throw DataError(fmt::format("{}:{}: not a JSON record", metrics.string(), i + 1));
    }
    if (!record.is_object() || record.value("kind", "") != "train" || !record.contains("steps")) continue;
    try {
      Interval iv;
      iv.end = static_cast<std::int64_t>(record.at("step").get<double>());
      iv.steps = static_cast<std::int64_t>(record.at("steps").get<double>());
      iv.samples = static_cast<std::int64_t>(record.at("samples").get<double>());
      iv.tokens = static_cast<std::int64_t>(record.at("tokens").get<double>());
      iv.flops = record.at("flops").get<double>();
      iv.seconds = record.at("seconds").get<double>();
      iv.loss = record.at("loss").get<double>();
      while (!kept.empty() && kept.back().end > iv.end - iv.steps) kept.pop_back();
      kept.push_back(iv);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(
          fmt::format("{}:{}: a training record without its numbers ({})", metrics.string(), i + 1, e.what()));
    }
  }
  return kept;
}

std::string number(double v) { return v < 0 ? "" : fmt::format("{:.6g}", v); }
std::string count(std::int64_t v) { return v < 0 ? "" : fmt::format("{}", v); }

PointResult collect_point(const fs::path& plan, int point) {
  const auto pp = read_point_plan(plan, point);
  PointResult r;
  r.point = point;
  r.label = pp.label;
  r.overrides = pp.overrides;
  r.budget_kind = pp.budget_kind;
  r.budget = pp.budget;
  r.parameters = pp.parameters;
  r.non_embedding_parameters = pp.non_embedding_parameters;
  r.flops_per_sample = pp.flops_per_sample;
  r.planned_steps = pp.planned_steps;
  r.planned_flops = pp.planned_flops;

  const auto dir = point_dir(plan, point);
  const auto metrics = point_run_dir(plan, point) / "metrics-rank-00000.jsonl";
  const auto intervals = training_intervals(metrics);
  if (!intervals.empty()) {
    r.steps = r.samples = r.tokens = 0;
    r.train_flops = r.wall_seconds = 0;
    for (const auto& iv : intervals) {
      r.steps += iv.steps;
      r.samples += iv.samples;
      r.tokens += iv.tokens;
      r.train_flops += iv.flops;
      r.wall_seconds += iv.seconds;
    }
    r.final_train_loss = intervals.back().loss;
  }
  if (fs::exists(dir / "result.json")) {
    r.status = "done";
    try {
      const auto j = nlohmann::json::parse(read_text(dir / "result.json"));
      r.valid_hr10 = j.at("valid").at("hr@10").get<double>();
      r.valid_ndcg10 = j.at("valid").at("ndcg@10").get<double>();
      r.test_hr10 = j.at("test").at("hr@10").get<double>();
      r.test_ndcg10 = j.at("test").at("ndcg@10").get<double>();
      if (r.wall_seconds >= 0) r.wall_seconds += j.at("eval_seconds").get<double>();
    } catch (const nlohmann::json::exception& e) {
      throw DataError(fmt::format("{}: not a sweep point result ({})", (dir / "result.json").string(), e.what()));
    }
  } else if (fs::exists(dir / "error.txt")) {
    r.status = "failed";
    r.error = read_text(dir / "error.txt");
    while (!r.error.empty() && (r.error.back() == '\n' || r.error.back() == '\r')) r.error.pop_back();
  } else if (point_locked(dir)) {
    r.status = "running";
  } else if (fs::exists(point_run_dir(plan, point))) {
    r.status = "interrupted";  // started, nobody runs it now: `sweep run` resumes it
  } else {
    r.status = "pending";
  }
  return r;
}

}  // namespace

std::vector<PointResult> collect_sweep(const std::string& plan_text) {
  const fs::path plan(plan_text);
  const auto info = read_sweep_info(plan);
  std::vector<PointResult> rows;
  for (int p = 0; p < info.points; ++p) rows.push_back(collect_point(plan, p));
  std::string csv =
      "point,name,overrides,budget_kind,budget,parameters,non_embedding_parameters,flops_per_sample,planned_steps,"
      "planned_flops,steps,samples,tokens,train_flops,wall_seconds,final_train_loss,valid_hr@10,valid_ndcg@10,"
      "test_hr@10,test_ndcg@10,status,error\n";
  for (const auto& r : rows) {
    csv += fmt::format("{},{},{},{},{:g},{},{},{:.6g},{},{:.6g},{},{},{},{},{},{},{},{},{},{},{},{}\n", r.point,
                       csv_field(r.label), csv_field(r.overrides), r.budget_kind, r.budget, r.parameters,
                       r.non_embedding_parameters, r.flops_per_sample, r.planned_steps, r.planned_flops, count(r.steps),
                       count(r.samples), count(r.tokens), number(r.train_flops), number(r.wall_seconds),
                       number(r.final_train_loss), number(r.valid_hr10), number(r.valid_ndcg10), number(r.test_hr10),
                       number(r.test_ndcg10), r.status, csv_field(r.error));
  }
  write_file_atomically(plan / "results.csv", [&](std::ostream& o) { o << csv; });
  return rows;
}

}  // namespace longrec::sweep
