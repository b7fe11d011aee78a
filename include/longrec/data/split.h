// Split protocols, applied at read time (never stored).
//
//   loo   : train on events [0, n-1); validation and test rank event n-1
//           (the HSTU paper's protocol).
//   last2 : train on [0, n-2); validation ranks event n-2, test ranks n-1.
// An evaluation target at index t sees the history [0, t).
#pragma once

#include <cstdint>
#include <string>

namespace longrec::data {

enum class SplitProtocol { Loo, Last2 };
enum class SplitPart { Train, Valid, Test };

SplitProtocol parse_split_protocol(const std::string& name);  // "loo" | "last2"
SplitPart parse_split_part(const std::string& name);          // "train" | "valid" | "test"
std::string split_part_name(SplitPart part);

struct UserSplit {
  std::int64_t train_end = 0;     // training uses events [0, train_end); < 2 means no training sample
  std::int64_t eval_target = -1;  // index of the held-out event, -1 if the user has none
};

// For a user with n events.
UserSplit split_user(std::int64_t n, SplitProtocol protocol, SplitPart part);

}  // namespace longrec::data
