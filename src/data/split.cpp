#include "longrec/data/split.h"

#include "longrec/core/error.h"

namespace longrec::data {

SplitProtocol parse_split_protocol(const std::string& name) {
  if (name == "loo") return SplitProtocol::Loo;
  if (name == "last2") return SplitProtocol::Last2;
  throw ConfigError("data.split", fmt::format("got '{}', expected loo or last2", name));
}

SplitPart parse_split_part(const std::string& name) {
  if (name == "train") return SplitPart::Train;
  if (name == "valid") return SplitPart::Valid;
  if (name == "test") return SplitPart::Test;
  throw ConfigError("eval.part", fmt::format("got '{}', expected train, valid or test", name));
}

std::string split_part_name(SplitPart part) {
  switch (part) {
    case SplitPart::Train:
      return "train";
    case SplitPart::Valid:
      return "valid";
    case SplitPart::Test:
      return "test";
  }
  return "?";
}

UserSplit split_user(std::int64_t n, SplitProtocol protocol, SplitPart part) {
  const std::int64_t held_out = protocol == SplitProtocol::Loo ? 1 : 2;
  UserSplit split;
  split.train_end = std::max<std::int64_t>(0, n - held_out);
  std::int64_t target = -1;
  if (part == SplitPart::Test) target = n - 1;
  if (part == SplitPart::Valid) target = protocol == SplitProtocol::Loo ? n - 1 : n - 2;
  // A target needs at least one earlier event to condition on.
  split.eval_target = target >= 1 ? target : -1;
  return split;
}

}  // namespace longrec::data
