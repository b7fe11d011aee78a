#include "longrec/model/step_memory.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "longrec/core/error.h"
#include "longrec/model/personalization_layout.h"

namespace longrec::model {

namespace {

// Bytes per element kept for one step, temporaries next to them included.
// Calibrated against peak RSS of 3-step CPU runs (synthetic store, D=50,
// threads=2, less the ~0.54 GB of an idle run): B=32, L=512 attention-bound
// HSTU 1.57 GB measured vs 0.84 estimated here, SASRec 1.09 vs 0.55; B=32,
// L=128, 2048 per-position negatives 0.79 GB vs 0.75. Small shapes carry
// allocator slack that large ones amortise (ML-1M's 128 x 1,024 full
// attention, estimated at 17 GB below, trains on a 24 GB machine), so these
// are the middle of the range, not a bound.
constexpr double kDenseParameterBytes = 20;    // fp32 weight, gradient, AdamW m and v, the all-reduce bucket
constexpr double kScoreBytes = 16;             // per attention score, head and block: scores, biased, weights
constexpr double kHstuPlanBytes = 80;          // per [row, slot, slot]: int64 time buckets, float64 temporaries, mask
constexpr double kSasrecPlanBytes = 40;        // per [row, slot, slot]: mask, softmax temporaries
constexpr double kPerPositionLogitBytes = 90;  // fp32 logits (x6 with grads), mask, int64 ids (x4 with unique)
constexpr double kSharedLogitBytes = 25;       // fp32 logits (x6 with grads), mask
constexpr double kLookedUpRowBytes = 16;       // fp32 row, its gradient, normalised copy and its gradient

}  // namespace

std::string format_bytes(double bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 6) {
    bytes /= 1024;
    ++unit;
  }
  if (bytes >= 1024) return fmt::format("{:.3g} EiB", bytes);
  return unit >= 3 ? fmt::format("{:.1f} {}", bytes, kUnits[unit]) : fmt::format("{:.0f} {}", bytes, kUnits[unit]);
}

namespace {

std::pair<std::string, std::string> key(const std::string& name, double value) {
  return {name, fmt::format("{}", static_cast<std::int64_t>(value))};
}

// A number from a cgroup file ("max" = no limit); 0 if absent or unlimited.
std::uint64_t cgroup_limit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  try {
    const auto value = std::stoull(text);
    return value >= (std::uint64_t{1} << 60) ? 0 : value;  // cgroup v1 writes ~2^63 for "no limit"
  } catch (const std::exception&) {
    return 0;
  }
}

// Attention scores of one row: slots^2 for causal attention; with
// personalization tokens on the block path, each group's events and tokens
// attend to themselves and the earlier tokens (padded to the widest group),
// and the recent window to itself and every token.
double scores_per_row(const ModelConfig& c, std::int64_t window, double slots) {
  const auto& pt = c.personalization;
  if (!pt.enabled() || pt.path != "block") return slots * slots;
  const double recent = std::min<double>(static_cast<double>(window), pt.recent_window);
  const double old = static_cast<double>(window) - recent;
  double begin = 0, tokens = 0, groups = 0, widest_queries = 0, widest_keys = 0;
  for (const auto& spec : pt.group_specs()) {
    if (begin >= old) break;
    const double end = std::min(static_cast<double>(spec.offset), old);
    const double queries = end - begin + spec.tokens;
    widest_queries = std::max(widest_queries, queries);
    widest_keys = std::max(widest_keys, queries + tokens);
    tokens += spec.tokens;
    groups += 1;
    begin = end;
  }
  return std::min(slots * slots, groups * widest_queries * widest_keys + recent * (recent + tokens));
}

}  // namespace

std::string MemoryTerm::keys_text() const {
  std::vector<std::string> parts;
  for (const auto& [name, value] : keys) parts.push_back(name + "=" + value);
  return fmt::format("{}", fmt::join(parts, " x "));
}

double StepMemoryEstimate::total_bytes() const {
  double total = 0;
  for (const auto& t : terms) total += t.bytes;
  return total;
}

std::string StepMemoryEstimate::describe(std::size_t count) const {
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < terms.size() && i < count; ++i) {
    parts.push_back(fmt::format("{} {} ({})", terms[i].what, format_bytes(terms[i].bytes), terms[i].keys_text()));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

StepMemoryEstimate estimate_step_memory(const ModelConfig& config, const StepShape& shape) {
  const ModelConfig c = config.resolved();
  const bool hstu = c.backbone == "hstu";
  const double D = c.dim, W = static_cast<double>(c.heads) * c.head_dim, F = c.ffn_dim, H = c.heads;
  const double blocks = c.blocks, max_len = c.max_len, K = c.num_negatives;
  const double rows = std::ceil(static_cast<double>(shape.batch_size) / std::max(shape.world, 1));
  const double tokens = c.personalization.enabled() ? c.personalization.total_tokens() : 0;
  // Slots per row: the window and its tokens, at most the model's positions.
  const double slots = std::min(max_len, static_cast<double>(shape.window) + tokens);
  const double positions = rows * std::min(slots, static_cast<double>(shape.window));  // supervised, at most

  std::vector<MemoryTerm> terms;
  const auto add = [&](std::string what, std::vector<std::pair<std::string, std::string>> keys, double bytes) {
    if (bytes > 0) terms.push_back({std::move(what), std::move(keys), bytes});
  };
  const auto batch = key("data.batch_size", static_cast<double>(shape.batch_size));
  const auto window = key("data.max_len", static_cast<double>(shape.window));

  // Dense parameters.
  const double block_weights =
      hstu ? D * 4 * W + W * D + D : 3 * (D * W + W) + W * D + D + D * F + F + F * D + D + 4 * D;
  add("block weights with gradients and AdamW state",
      {key("model.dim", D), key("model.heads", H), key("model.blocks", blocks)},
      kDenseParameterBytes * blocks * block_weights);
  const bool hllm = c.backbone == "hllm";
  if (!hllm) {  // hllm's rotary positions have no table
    add("position tables", {key("model.max_len", max_len), key("model.dim", D)},
        kDenseParameterBytes * (max_len * D + (hstu ? blocks * (2 * max_len - 1) : 0)));
  }
  if (hstu) {
    add("time-bucket biases", {key("model.time_buckets", c.time_buckets), key("model.blocks", blocks)},
        kDenseParameterBytes * blocks * (c.time_buckets + 1));
  }
  add("personalization tokens", {key("personalization.max_groups", c.personalization.max_groups), key("model.dim", D)},
      kDenseParameterBytes * tokens * D);

  // Activations kept for the backward pass, per slot and block (fp32).
  const double per_slot = hstu ? 6 * D + 14 * W : 6 * D + 6 * W + 3 * F;
  add("block activations", {batch, window, key("model.dim", D), key("model.blocks", blocks)},
      4 * rows * slots * (blocks * per_slot + 6 * D));
  add("attention scores", {window, batch, key("model.heads", H), key("model.blocks", blocks)},
      rows * scores_per_row(c, shape.window, slots) *
          (blocks * kScoreBytes * H + (hstu ? kHstuPlanBytes : kSasrecPlanBytes)));

  // Sampled softmax: [positions, negatives] logits, in-batch [positions, positions].
  if (K > 0) {
    const bool shared = c.negatives == "shared";
    add("sampled-softmax logits", {key("model.num_negatives", K), batch, window},
        positions * K * (shared ? kSharedLogitBytes : kPerPositionLogitBytes));
  }
  if (c.in_batch_negatives) {
    add("in-batch logits", {{"model.in_batch_negatives", "true"}, batch, window},
        positions * positions * kSharedLogitBytes);
  }

  // Item table (its rows on this rank) and the rows one step looks up.
  if (shape.num_items > 0) {
    const double items = static_cast<double>(shape.num_items);
    const double table_rows = std::ceil((items + 1) / std::max(shape.world, 1));
    add("item table and its optimizer state",
        {key("items in the dataset", items),
         key("model.dim", D),
         {"train.sparse_optimizer", shape.adam_items ? "adam" : "rowwise_adagrad"}},
        table_rows * (4 * D * (shape.adam_items ? 3 : 1) + 4));
    const double drawn = c.negatives == "shared" ? K : positions * K;
    const double looked_up = std::min(items + 1, rows * slots + positions + drawn);
    add("looked-up item rows", {key("model.num_negatives", K), batch, window, key("model.dim", D)},
        kLookedUpRowBytes * looked_up * D);
    if (hllm && c.hllm.vocab_size > 0) {  // (without a vocabulary there is no item LLM: bench tokens)
      // The item LLM: its weights (with gradients and AdamW state) and, for every item the step
      // encodes, its text's activations and attention scores, kept for the backward pass.
      const auto& h = c.hllm;
      const double item_blocks = h.item_blocks > 0 ? h.item_blocks : blocks;
      const double item_heads = h.item_heads > 0 ? h.item_heads : H;
      const double item_ffn = h.item_ffn_dim > 0 ? h.item_ffn_dim : F;
      const double text = h.max_text_len + 1.0;
      add("item LLM weights with gradients and AdamW state",
          {key("hllm.vocab_size", h.vocab_size), key("model.dim", D), key("hllm.item_blocks", item_blocks)},
          kDenseParameterBytes *
              (static_cast<double>(h.vocab_size) * D + item_blocks * (4 * D * D + 3 * D * item_ffn)));
      add("item LLM activations",
          {key("hllm.max_text_len", h.max_text_len), batch, window, key("model.dim", D),
           key("hllm.item_blocks", item_blocks)},
          4 * looked_up * text * (item_blocks * (6 * D + 6 * D + 3 * item_ffn) + 6 * D));
      add("item LLM attention scores",
          {key("hllm.max_text_len", h.max_text_len), batch, window, key("hllm.item_heads", item_heads)},
          looked_up * text * text * item_blocks * kScoreBytes * item_heads);
    }
  }
  std::sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  return StepMemoryEstimate{std::move(terms)};
}

std::uint64_t machine_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  std::uint64_t bytes =
      pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const auto limit = cgroup_limit(path);
    if (limit > 0 && (bytes == 0 || limit < bytes)) bytes = limit;
  }
  return bytes;
}

void check_step_memory(const StepMemoryEstimate& estimate, std::uint64_t available_bytes, const std::string& machine) {
  const double total = estimate.total_bytes();
  if (available_bytes == 0 || total <= static_cast<double>(available_bytes) || estimate.terms.empty()) return;
  // The config keys of the largest term ("items in the dataset" is not
  // one): numbers to lower, switches and choices to change.
  std::vector<std::string> names, lower, change;
  for (const auto& [name, value] : estimate.terms.front().keys) {
    if (name.find('.') == std::string::npos) continue;
    names.push_back(name);
    (value.find_first_not_of("0123456789") == std::string::npos ? lower : change).push_back(name);
  }
  if (names.empty()) names.push_back("data.batch_size");
  std::string hint;
  if (!lower.empty()) hint = fmt::format("lower {}", fmt::join(lower, " or "));
  if (!change.empty()) hint += fmt::format("{}change {}", hint.empty() ? "" : ", or ", fmt::join(change, " or "));
  throw ConfigError(
      names.front(),
      fmt::format("a training step needs an estimated {} but {} has {}: {}; {}", format_bytes(total), machine,
                  format_bytes(static_cast<double>(available_bytes)), estimate.describe(), hint));
}

}  // namespace longrec::model
