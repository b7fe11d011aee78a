// A small synthetic history store for tests that train (data::generate_synthetic).
#pragma once

#include <filesystem>

#include "longrec/data/synth.h"

namespace longrec::testing {

inline std::filesystem::path make_synthetic_store(const std::filesystem::path& out, int users, int items, int clusters,
                                                  int mean_length, int max_length = 200) {
  data::SynthConfig c;
  c.out = out.string();
  c.users = users;
  c.items = items;
  c.clusters = clusters;
  c.mean_length = mean_length;
  c.max_length = max_length;
  data::generate_synthetic(c);
  return out;
}

}  // namespace longrec::testing
