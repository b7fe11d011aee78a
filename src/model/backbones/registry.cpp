// The backbones `model.backbone` can name. Adding one: a header and a source
// file under model/backbones/, and one row here.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "longrec/core/error.h"
#include "longrec/model/backbone.h"
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

// Registration order is the order --help and error messages list them in.
constexpr RegisteredBackbone kBackbones[] = {
    {"hstu", &make_as<Hstu>},
    {"sasrec", &make_as<Sasrec>},
};

}  // namespace

std::vector<std::string> registered_backbones() {
  std::vector<std::string> names;
  for (const auto& b : kBackbones) names.emplace_back(b.name);
  return names;
}

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config) {
  for (const auto& b : kBackbones) {
    if (config.backbone == b.name) return b.make(config);
  }
  throw ConfigError("model.backbone", fmt::format("got '{}', expected one of the registered backbones: {}",
                                                  config.backbone, fmt::join(registered_backbones(), ", ")));
}

}  // namespace longrec::model
