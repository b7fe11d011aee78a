// The names `model.backbone` accepts, torch-free: the model configuration
// (and everything that parses it, such as checkpoint manifests) links without
// LibTorch. src/model/backbones/registry.cpp maps each name to its
// constructor and checks at compile time that its table lists the same names
// in the same order.
#pragma once

#include <array>
#include <string_view>

namespace longrec::model {

// Registration order is the order --help and error messages list them in.
inline constexpr std::array<std::string_view, 3> kBackboneNames = {"hstu", "sasrec", "hllm"};

}  // namespace longrec::model
