#include "longrec/sweep/descriptor.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "longrec/core/checksum.h"
#include "longrec/core/error.h"

namespace longrec::sweep {

namespace fs = std::filesystem;

const char* budget_kind_name(BudgetKind kind) {
  switch (kind) {
    case BudgetKind::kSteps:
      return "steps";
    case BudgetKind::kEpochs:
      return "epochs";
    case BudgetKind::kFlops:
      return "flops";
  }
  return "?";
}

namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// Comments start at '#' or ';' at the start of a line or after whitespace.
std::string strip_comment(const std::string& line) {
  for (std::size_t i = 0; i < line.size(); ++i) {
    if ((line[i] == '#' || line[i] == ';') && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == '@';
}

// "section.key": two non-empty parts of name characters.
bool is_config_key(const std::string& key) {
  const auto dot = key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size()) return false;
  return std::all_of(key.begin(), key.end(), is_name_char);
}

class Parser {
 public:
  Parser(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(int line, const std::string& key, const std::string& problem) const {
    throw ConfigError(key, fmt::format("{}:{}: {}", path_, line, problem));
  }

  SweepDescriptor parse(const std::string& text) {
    SweepDescriptor d;
    d.path = path_;
    Crc32 crc;
    crc.update(text.data(), text.size());
    d.checksum = crc.hex();
    std::istringstream in(text);
    std::string raw, section;
    int line_no = 0, grid_line = 0;
    std::map<std::string, int> sweep_keys;                     // key -> line
    std::map<std::string, std::pair<std::string, int>> where;  // override key -> (section, line)
    std::map<std::string, int> seen_sections, labels;
    while (std::getline(in, raw)) {
      ++line_no;
      const std::string line = trim(strip_comment(raw));
      if (line.empty()) continue;
      if (line.front() == '[') {
        if (line.back() != ']') fail(line_no, "sweep", fmt::format("'{}' is not a [section] line", line));
        section = trim(line.substr(1, line.size() - 2));
        if (section != "sweep" && section != "set" && section != "points" && section != "grid") {
          fail(line_no, "sweep",
               fmt::format("unknown section [{}]; expected [sweep], [set], [points] or [grid]", section));
        }
        if (seen_sections.count(section) != 0) {
          fail(line_no, section,
               fmt::format("section [{}] given twice (first on line {})", section, seen_sections[section]));
        }
        seen_sections[section] = line_no;
        if (section == "grid") grid_line = line_no;
        continue;
      }
      if (section.empty()) fail(line_no, "sweep", fmt::format("'{}' is outside any section", line));
      const auto eq = line.find('=');
      if (eq == std::string::npos) fail(line_no, section, fmt::format("'{}' is not a key = value line", line));
      const std::string key = trim(line.substr(0, eq));
      const std::string value = trim(line.substr(eq + 1));
      if (section == "sweep") {
        sweep_key(d, key, value, line_no, sweep_keys);
      } else if (section == "points") {
        if (key.empty() || !std::all_of(key.begin(), key.end(), is_name_char)) {
          fail(line_no, "points", fmt::format("point label '{}': expected letters, digits, '-', '_' or '.'", key));
        }
        if (labels.count(key) != 0) {
          fail(line_no, "points", fmt::format("point label '{}' given twice (first on line {})", key, labels[key]));
        }
        labels[key] = line_no;
        ListedPoint point{key, {}};
        std::istringstream words(value);
        std::string word;
        std::map<std::string, int> in_point;
        while (words >> word) {
          const auto weq = word.find('=');
          if (weq == std::string::npos) {
            fail(line_no, "points", fmt::format("point '{}': '{}' is not key=value", key, word));
          }
          const std::string k = word.substr(0, weq), v = word.substr(weq + 1);
          check_override_key(k, v, line_no, "points");
          if (in_point.count(k) != 0) fail(line_no, k, fmt::format("point '{}' sets {} twice", key, k));
          in_point[k] = 1;
          point.overrides.emplace_back(k, v);
        }
        if (point.overrides.empty()) fail(line_no, "points", fmt::format("point '{}' sets no key", key));
        d.points.push_back(std::move(point));
      } else {
        check_override_key(key, value, line_no, section);
        if (section == "set") {
          note_key(where, key, "set", line_no);
          d.set.emplace_back(key, value);
        } else {
          note_key(where, key, "grid", line_no);
          GridAxis axis{key, {}};
          std::string item;
          std::istringstream items(value);
          while (std::getline(items, item, ',')) {
            item = trim(item);
            if (item.empty()) fail(line_no, key, fmt::format("[grid] {}: an empty value in '{}'", key, value));
            if (std::find(axis.values.begin(), axis.values.end(), item) != axis.values.end()) {
              fail(line_no, key, fmt::format("[grid] {}: value '{}' listed twice", key, item));
            }
            axis.values.push_back(item);
          }
          if (value.empty() || value.back() == ',') {
            fail(line_no, key,
                 fmt::format("[grid] {} has {}: expected v1, v2, ...", key,
                             value.empty() ? "no values" : "an empty value at its end"));
          }
          d.grid.push_back(std::move(axis));
        }
      }
    }
    // A key of a listed point may not also be in [set] or [grid] (which value would win?).
    for (const auto& p : d.points) {
      for (const auto& [k, v] : p.overrides) {
        if (where.count(k) != 0) {
          fail(labels[p.label], k,
               fmt::format("point '{}' sets {}, which [{}] sets too (line {})", p.label, k, where[k].first,
                           where[k].second));
        }
      }
    }
    if (seen_sections.count("grid") != 0 && d.grid.empty()) {
      fail(grid_line, "grid", "[grid] is empty: give key = v1, v2, ... or remove the section");
    }
    if (seen_sections.count("points") != 0 && d.points.empty()) {
      fail(seen_sections["points"], "points", "[points] is empty: give label = key=value ... or remove the section");
    }
    for (const char* required : {"name", "base", "budget", "budgets"}) {
      if (sweep_keys.count(required) == 0) {
        fail(line_no, fmt::format("sweep.{}", required), fmt::format("[sweep] {} is required", required));
      }
    }
    // Whole numbers for steps and epochs (checked once both keys are known).
    if (d.budget_kind != BudgetKind::kFlops) {
      for (double b : d.budgets) {
        if (b != std::floor(b) || b > 1e12) {
          fail(sweep_keys["budgets"], "sweep.budgets",
               fmt::format("{} is not a whole number of {} in [1, 1e12]", b, budget_kind_name(d.budget_kind)));
        }
      }
    }
    return d;
  }

 private:
  void sweep_key(SweepDescriptor& d, const std::string& key, const std::string& value, int line_no,
                 std::map<std::string, int>& seen) {
    const std::string full = "sweep." + key;
    if (seen.count(key) != 0)
      fail(line_no, full, fmt::format("[sweep] {} given twice (first on line {})", key, seen[key]));
    seen[key] = line_no;
    if (key == "name") {
      if (value.empty() || !std::all_of(value.begin(), value.end(), is_name_char)) {
        fail(line_no, full, fmt::format("got '{}', expected letters, digits, '-', '_' or '.'", value));
      }
      d.name = value;
    } else if (key == "base") {
      if (value.empty()) fail(line_no, full, "expected the path of a `longrec train` config");
      const fs::path base(value);
      d.base = base.is_absolute() ? base.string() : (fs::path(path_).parent_path() / base).lexically_normal().string();
    } else if (key == "budget") {
      if (value == "steps") {
        d.budget_kind = BudgetKind::kSteps;
      } else if (value == "epochs") {
        d.budget_kind = BudgetKind::kEpochs;
      } else if (value == "flops") {
        d.budget_kind = BudgetKind::kFlops;
      } else {
        fail(line_no, full, fmt::format("got '{}', expected steps, epochs or flops", value));
      }
    } else if (key == "budgets") {
      std::string item;
      std::istringstream items(value);
      while (std::getline(items, item, ',')) {
        item = trim(item);
        double v = 0;
        std::size_t used = 0;
        try {
          v = std::stod(item, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (item.empty() || used != item.size() || !std::isfinite(v) || v <= 0) {
          fail(line_no, full, fmt::format("'{}' is not a positive finite number", item));
        }
        d.budgets.push_back(v);
      }
      if (d.budgets.empty() || value.back() == ',') {
        fail(line_no, full, fmt::format("'{}': expected one budget or more: b1, b2, ...", value));
      }
    } else if (key == "ranks") {
      int v = 0;
      std::size_t used = 0;
      try {
        v = std::stoi(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (value.empty() || used != value.size() || v < 1 || v > 65536) {
        fail(line_no, full, fmt::format("got '{}', expected a whole number in [1, 65536]", value));
      }
      d.ranks = v;
    } else {
      fail(line_no, full,
           fmt::format("unknown key '{}' in [sweep]; expected name, base, budget, budgets or ranks", key));
    }
  }

  void check_override_key(const std::string& key, const std::string& value, int line_no,
                          const std::string& section) const {
    if (!is_config_key(key)) {
      fail(line_no, key.empty() ? section : key,
           fmt::format("[{}] key '{}': expected a `longrec train` key section.key (e.g. model.dim)", section, key));
    }
    if (key == "train.run_dir" || key == "train.resume") {
      fail(line_no, key, fmt::format("{} is set by `longrec sweep run` (each point runs in its own directory)", key));
    }
    if (key == "train.max_steps" || key == "train.epochs") {
      fail(line_no, key, fmt::format("{} is set from each point's budget: use [sweep] budget and budgets", key));
    }
    if (section != "grid" && value.empty()) fail(line_no, key, fmt::format("[{}] {} has no value", section, key));
  }

  void note_key(std::map<std::string, std::pair<std::string, int>>& where, const std::string& key,
                const std::string& section, int line_no) const {
    if (where.count(key) != 0) {
      fail(line_no, key,
           fmt::format("{} is set twice ([{}] line {} and [{}] line {})", key, where[key].first, where[key].second,
                       section, line_no));
    }
    where[key] = {section, line_no};
  }

  std::string path_;
};

}  // namespace

SweepDescriptor parse_sweep_descriptor(const std::string& text, const std::string& path) {
  return Parser(path).parse(text);
}

SweepDescriptor read_sweep_descriptor(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SystemError(fmt::format("{}: cannot open the sweep descriptor", path));
  std::ostringstream text;
  text << in.rdbuf();
  auto d = parse_sweep_descriptor(text.str(), path);
  if (!fs::is_regular_file(d.base)) {
    throw ConfigError("sweep.base", fmt::format("{}: base config {} does not exist", path, d.base));
  }
  return d;
}

std::vector<SweepPoint> expand_points(const SweepDescriptor& d) {
  std::int64_t count = static_cast<std::int64_t>(std::max<std::size_t>(d.points.size(), 1)) *
                       static_cast<std::int64_t>(d.budgets.size());
  for (const auto& axis : d.grid) {
    count *= static_cast<std::int64_t>(axis.values.size());
    if (count > kMaxPoints) break;
  }
  if (count > kMaxPoints) {
    throw ConfigError("sweep.grid", fmt::format("{}: more than {} points", d.path, kMaxPoints));
  }
  std::vector<SweepPoint> points;
  const std::vector<ListedPoint> listed = d.points.empty() ? std::vector<ListedPoint>{ListedPoint{}} : d.points;
  std::vector<std::size_t> at(d.grid.size(), 0);  // the grid's odometer
  for (const auto& entry : listed) {
    std::fill(at.begin(), at.end(), 0);
    while (true) {
      std::vector<Override> varying = entry.overrides;
      for (std::size_t a = 0; a < d.grid.size(); ++a) varying.emplace_back(d.grid[a].key, d.grid[a].values[at[a]]);
      for (double budget : d.budgets) {
        SweepPoint p;
        p.index = static_cast<int>(points.size());
        p.label = entry.label;
        p.overrides = d.set;
        p.overrides.insert(p.overrides.end(), varying.begin(), varying.end());
        p.varying = varying;
        p.budget = budget;
        points.push_back(std::move(p));
      }
      // Next grid combination, the last key fastest.
      bool advanced = false;
      for (std::size_t a = d.grid.size(); a-- > 0 && !advanced;) {
        if (++at[a] < d.grid[a].values.size()) {
          advanced = true;
        } else {
          at[a] = 0;
        }
      }
      if (!advanced) break;  // every combination done (or no grid)
    }
  }
  return points;
}

std::string format_overrides(const std::vector<Override>& overrides) {
  std::string out;
  for (const auto& [k, v] : overrides) out += (out.empty() ? "" : " ") + k + "=" + v;
  return out;
}

}  // namespace longrec::sweep
