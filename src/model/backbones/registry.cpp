// The backbones `model.backbone` can name. Adding one: a header and a source
// file under model/backbones/, one row here and its name in backbone_names.h
// (torch-free, for the model configuration); a static_assert keeps both lists
// the same.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "longrec/core/error.h"
#include "longrec/model/backbone.h"
#include "longrec/model/backbone_names.h"
#include "longrec/model/backbones/hllm.h"
#include "longrec/model/backbones/hstu.h"
#include "longrec/model/backbones/sasrec.h"

namespace longrec::model {

namespace {

struct RegisteredBackbone {
  const char* name;
  std::shared_ptr<Backbone> (*make)(const ModelConfig& config);
};

template <typename T>
std::shared_ptr<Backbone> make_as(const ModelConfig& config) {
  return std::make_shared<T>(config);
}

// In the order of kBackboneNames.
constexpr RegisteredBackbone kBackbones[] = {
    {"hstu", &make_as<Hstu>},
    {"sasrec", &make_as<Sasrec>},
    {"hllm", &make_as<Hllm>},
};

constexpr bool same_names_as_backbone_names_h() {
  if (std::size(kBackbones) != kBackboneNames.size()) return false;
  for (std::size_t i = 0; i < kBackboneNames.size(); ++i) {
    if (std::string_view(kBackbones[i].name) != kBackboneNames[i]) return false;
  }
  return true;
}
static_assert(same_names_as_backbone_names_h(),
              "kBackbones and kBackboneNames (include/longrec/model/backbone_names.h) must list the same names");

}  // namespace

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config) {
  for (const auto& b : kBackbones) {
    if (config.backbone == b.name) return b.make(config);
  }
  throw ConfigError("model.backbone", fmt::format("got '{}', expected one of the registered backbones: {}",
                                                  config.backbone, fmt::join(registered_backbones(), ", ")));
}

}  // namespace longrec::model
