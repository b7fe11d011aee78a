#include "longrec/model/personalization.h"

#include <numeric>

#include "longrec/core/error.h"

namespace longrec::model {

namespace {

torch::Tensor to_tensor(const std::vector<std::int64_t>& values, torch::Device device) {
  return torch::tensor(values, torch::kInt64).to(device);
}

torch::Tensor to_bool_tensor(const std::vector<std::uint8_t>& values, torch::Device device) {
  return torch::tensor(values, torch::kUInt8).to(torch::kBool).to(device);
}

}  // namespace

SlotSequence build_slots(const std::vector<TokenGroupSpec>& specs, int recent_window, const SequenceBatch& batch,
                         const LayoutStart& start) {
  const auto device = batch.items.device();
  const auto B = batch.rows(), N = batch.width();
  const auto lengths = batch.lengths.to(torch::kCPU).contiguous();
  const auto times = batch.times.to(torch::kCPU).contiguous();
  const auto query_times = batch.query_times.to(torch::kCPU).contiguous();
  const auto* length = lengths.data_ptr<std::int64_t>();
  const auto* time = times.data_ptr<std::int64_t>();
  const auto* query_time = query_times.data_ptr<std::int64_t>();

  std::vector<int> first_token(specs.size() + 1, 0);
  for (std::size_t g = 0; g < specs.size(); ++g) first_token[g + 1] = first_token[g] + specs[g].tokens;
  const std::int64_t T = first_token.back();

  SlotSequence s;
  s.rows = B;
  s.events = N;
  std::vector<PersonalizationLayout> layouts;
  layouts.reserve(static_cast<std::size_t>(B));
  std::size_t blocks = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const auto events = start.event + length[b];
    auto layout = make_layout(specs, recent_window, events);
    const auto used = static_cast<std::int64_t>(layout.groups.size()) - start.group;
    const auto starts_here = [&] {
      if (start.group == 0) return start.event == 0;
      const auto& done = layout.groups[static_cast<std::size_t>(start.group - 1)];
      return !done.partial && done.end == start.event;
    };
    LONGREC_CHECK(used >= 0 && starts_here(),
                  "a sequence starting at group {} (event {}) does not continue the layout of {} events", start.group,
                  start.event, events);
    blocks = std::max(blocks, static_cast<std::size_t>(used));
    s.recent_width = std::max(s.recent_width, events - layout.recent_begin);
    s.groups_used.push_back(static_cast<int>(used));
    s.last_partial.push_back(used > 0 && layout.groups.back().partial);
    layouts.push_back(std::move(layout));
  }
  std::int64_t next = 0;
  for (std::size_t i = 0; i < blocks; ++i) {
    const auto g = static_cast<std::size_t>(start.group) + i;
    s.block_begin.push_back(next);
    // As wide as the batch's longest part of this segment, not the configured
    // segment: a batch of short histories must not pay for a whole segment of
    // empty slots (a single group of 896 events over histories of 200).
    std::int64_t widest = 0;
    for (const auto& layout : layouts) {
      if (g < layout.groups.size()) widest = std::max(widest, layout.groups[g].end - layout.groups[g].begin);
    }
    s.block_events.push_back(widest);
    s.block_tokens.push_back(specs[g].tokens);
    next += s.block_events.back() + s.block_tokens.back();
  }
  s.recent_begin = next;
  const auto L = s.slots = next + s.recent_width;

  const auto BL = static_cast<std::size_t>(B * L);
  std::vector<std::int64_t> source(BL, B * N + T), position(BL, 0), key_time(BL, 0), slot_query_time(BL, 0),
      block(BL, SlotSequence::kRecentBlock), event_slot(static_cast<std::size_t>(B * N), L);
  std::vector<std::uint8_t> valid(BL, 0), is_token(BL, 0);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& layout = layouts[static_cast<std::size_t>(b)];
    std::int64_t pos = start.position;
    const auto put_event = [&](std::int64_t slot, std::int64_t event, std::int64_t group_block) {
      const auto local = event - start.event;  // column in the batch
      const auto i = static_cast<std::size_t>(b * L + slot);
      source[i] = b * N + local;
      position[i] = pos++;
      valid[i] = 1;
      key_time[i] = time[b * N + local];
      slot_query_time[i] = query_time[b * N + local];
      block[i] = group_block;
      event_slot[static_cast<std::size_t>(b * N + local)] = slot;
    };
    for (std::size_t i = 0; i < blocks; ++i) {
      const auto g = static_cast<std::size_t>(start.group) + i;
      const auto base = s.block_begin[i];
      for (std::int64_t k = 0; k < s.block_events[i] + s.block_tokens[i]; ++k) {
        block[static_cast<std::size_t>(b * L + base + k)] = static_cast<std::int64_t>(g);
      }
      if (g >= layout.groups.size()) continue;
      const auto& group = layout.groups[g];
      for (auto e = group.begin; e < group.end; ++e)
        put_event(base + (e - group.begin), e, static_cast<std::int64_t>(g));
      // A token carries the time of its segment's last event.
      const auto token_time = time[b * N + (group.end - 1 - start.event)];
      for (int k = 0; k < group.tokens; ++k) {
        const auto slot = static_cast<std::size_t>(b * L + base + s.block_events[i] + k);
        source[slot] = B * N + first_token[g] + k;
        position[slot] = pos++;
        valid[slot] = 1;
        is_token[slot] = 1;
        key_time[slot] = slot_query_time[slot] = token_time;
      }
    }
    for (auto e = layout.recent_begin; e < layout.events; ++e) {
      put_event(s.recent_begin + (e - layout.recent_begin), e, SlotSequence::kRecentBlock);
    }
    s.max_position = std::max(s.max_position, pos - 1);
  }
  s.source = to_tensor(source, device);
  s.position = to_tensor(position, device).view({B, L});
  s.key_time = to_tensor(key_time, device).view({B, L});
  s.query_time = to_tensor(slot_query_time, device).view({B, L});
  s.block = to_tensor(block, device).view({B, L});
  s.event_slot = to_tensor(event_slot, device).view({B, N});
  s.valid = to_bool_tensor(valid, device).view({B, L});
  s.is_token = to_bool_tensor(is_token, device).view({B, L});
  return s;
}

AttentionPlan personalization_plan(const SlotSequence& s, bool block_path, int max_len,
                                   const std::optional<int>& time_buckets, const TokenMemory& memory) {
  const auto B = s.rows, L = s.slots, M = memory.size();
  const auto device = s.valid.device();
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const auto full = [&](std::int64_t n, std::int64_t value) { return torch::full({B, n}, value, i64); };
  const auto flag = [&](std::int64_t n, bool value) { return full(n, value ? 1 : 0).to(torch::kBool); };
  // Query space: the L slots and a dummy; key space: memory, the L slots, a dummy.
  const auto q_pos = torch::cat({s.position, full(1, 0)}, 1);
  const auto q_time = torch::cat({s.query_time, full(1, 0)}, 1);
  const auto q_block = torch::cat({s.block, full(1, -2)}, 1);
  const auto q_valid = torch::cat({s.valid, flag(1, false)}, 1);
  std::vector<torch::Tensor> k_pos{s.position, full(1, 0)}, k_time{s.key_time, full(1, 0)},
      k_block{s.block, full(1, -3)}, k_token{s.is_token, flag(1, false)}, k_valid{s.valid, flag(1, false)};
  if (M > 0) {
    // Cached tokens precede every group of the sequence.
    k_pos.insert(k_pos.begin(), memory.position.to(device));
    k_time.insert(k_time.begin(), memory.time.to(device));
    k_block.insert(k_block.begin(), full(M, -1));
    k_token.insert(k_token.begin(), flag(M, true));
    k_valid.insert(k_valid.begin(), flag(M, true));
  }
  const auto kp = torch::cat(k_pos, 1), kt = torch::cat(k_time, 1), kb = torch::cat(k_block, 1),
             ktok = torch::cat(k_token, 1), kv = torch::cat(k_valid, 1);

  AttentionPlan plan;
  plan.rows = B;
  plan.slots = L;
  plan.memory = M;
  plan.valid = s.valid;
  plan.slot_position = s.position;
  if (M > 0) plan.memory_position = memory.position.to(device);
  const auto add_group = [&](const std::vector<std::int64_t>& queries, std::int64_t G, std::int64_t Lq,
                             const std::vector<std::int64_t>& keys, std::int64_t Lk, bool all_queries, bool all_keys) {
    const auto qi = to_tensor(queries, device), ki = to_tensor(keys, device);
    const auto q = [&](const torch::Tensor& t) { return t.index_select(1, qi).view({B, G, Lq, 1}); };
    const auto k = [&](const torch::Tensor& t) { return t.index_select(1, ki).view({B, G, 1, Lk}); };
    AttentionGroup group;
    group.blocks = G;
    group.queries = Lq;
    group.keys = Lk;
    const auto qb = q(q_block), kbk = k(kb);
    // Causal by position; an event or token sees its own block, and the
    // tokens (never the raw events) of earlier blocks.
    group.allowed = q(q_valid) & k(kv) & (k(kp) <= q(q_pos)) & ((kbk == qb) | (k(ktok) & (kbk < qb)));
    if (time_buckets) {
      group.position_index = (max_len - 1 + k(kp) - q(q_pos)).clamp(0, 2 * max_len - 2);
      group.time_bucket = hstu_time_bucket(q(q_time) - k(kt), *time_buckets);
    }
    const auto rows = torch::arange(B, i64).unsqueeze(1);
    if (!all_queries) group.query_index = (rows * (L + 1) + qi.unsqueeze(0)).reshape({-1});
    if (!all_keys) group.key_index = (rows * (M + L + 1) + ki.unsqueeze(0)).reshape({-1});
    plan.groups.push_back(std::move(group));
  };

  if (!block_path) {
    std::vector<std::int64_t> queries(static_cast<std::size_t>(L)), keys(static_cast<std::size_t>(M + L));
    std::iota(queries.begin(), queries.end(), 0);
    std::iota(keys.begin(), keys.end(), 0);
    add_group(queries, 1, L, keys, M + L, true, M == 0);
    return plan;
  }

  const auto dummy_query = L, dummy_key = M + L;
  const auto blocks = static_cast<std::int64_t>(s.block_begin.size());
  std::vector<std::int64_t> token_keys;  // key-space slots of each block's tokens, in order
  std::vector<std::int64_t> tokens_before(static_cast<std::size_t>(blocks) + 1, 0);
  for (std::int64_t i = 0; i < blocks; ++i) {
    const auto first = s.block_begin[i] + s.block_events[i];
    for (std::int64_t k = 0; k < s.block_tokens[i]; ++k) token_keys.push_back(M + first + k);
    tokens_before[i + 1] = static_cast<std::int64_t>(token_keys.size());
  }
  const auto memory_keys = [&](std::vector<std::int64_t>& keys) {
    for (std::int64_t m = 0; m < M; ++m) keys.push_back(m);
  };
  if (blocks > 0) {
    std::int64_t width = 0;
    for (std::int64_t i = 0; i < blocks; ++i) width = std::max(width, s.block_events[i] + s.block_tokens[i]);
    const auto earlier = tokens_before[blocks - 1];  // the most tokens any block sees before itself
    std::vector<std::int64_t> queries, keys;
    for (std::int64_t i = 0; i < blocks; ++i) {
      const auto own = s.block_events[i] + s.block_tokens[i];
      for (std::int64_t j = 0; j < width; ++j) queries.push_back(j < own ? s.block_begin[i] + j : dummy_query);
      memory_keys(keys);
      for (std::int64_t j = 0; j < earlier; ++j) keys.push_back(j < tokens_before[i] ? token_keys[j] : dummy_key);
      for (std::int64_t j = 0; j < width; ++j) keys.push_back(j < own ? M + s.block_begin[i] + j : dummy_key);
    }
    add_group(queries, blocks, width, keys, M + earlier + width, false, false);
  }
  if (s.recent_width > 0) {
    std::vector<std::int64_t> queries, keys;
    memory_keys(keys);
    keys.insert(keys.end(), token_keys.begin(), token_keys.end());
    for (std::int64_t j = 0; j < s.recent_width; ++j) {
      queries.push_back(s.recent_begin + j);
      keys.push_back(M + s.recent_begin + j);
    }
    add_group(queries, 1, s.recent_width, keys, static_cast<std::int64_t>(keys.size()), false, false);
  }
  return plan;
}

PersonalizationTokens::PersonalizationTokens(const PersonalizationConfig& config, int dim)
    : specs_(config.group_specs()) {
  table = register_parameter("tokens", torch::empty({config.total_tokens(), dim}).normal_(0, 0.02));
}

}  // namespace longrec::model
