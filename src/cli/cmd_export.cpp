// `longrec export`: a checkpoint (any world size) -> one serving bundle.
#include <fmt/format.h>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/log.h"
#include "longrec/ckpt/bundle.h"

namespace longrec::cli {

int run_export(int argc, const char* const* argv) {
  ckpt::ExportOptions options;
  OptionRegistry r("export",
                   "Writes a checkpoint (of any number of ranks) as one self-contained HDF5 serving bundle: the\n"
                   "model configuration, every dense weight, the whole item table gathered from every shard,\n"
                   "the raw item ids (and titles), and a checksum. Readable with h5py (scripts/inspect_bundle.py).\n"
                   "Example: longrec export --checkpoint runs/ml-1m-hstu/ckpt/LATEST --out model.h5",
                   "export");
  r.add("export", "checkpoint", &options.checkpoint,
        "checkpoint: step directory, LATEST or BEST file (train.select_by), or run directory (its LATEST)");
  r.add("export", "out", &options.out, "bundle file to write");
  r.add("export", "dataset", &options.dataset, "history store for item ids and text (default: the checkpoint's)");
  r.add("export", "dtype", &options.dtype, "weights as fp32 or bf16", check::one_of({"fp32", "bf16"}));
  r.flag("export", "items_only", &options.items_only,
         "only the L2-normalised item vectors and their ids (for an external nearest-neighbour index)");
  r.flag("export", "overwrite", &options.overwrite, "replace an existing bundle");
  r.flag("export", "item_llm", &options.item_llm,
         "hllm: also the item LLM and the tokenizer, so that serving adds new items from their text\n"
         "(--export.item_llm=false: the bundle ranks its known items only)");
  r.constraint([&] {
    if (options.checkpoint.empty()) throw ConfigError("export.checkpoint", "a checkpoint is required");
    if (options.out.empty()) throw ConfigError("export.out", "an output path is required");
  });
  if (!r.parse(argc, argv)) return 0;
  options.show_progress = true;
  const auto s = ckpt::export_bundle(options);
  log::info(
      "{}: {} items x {} ({}), {} dense parameters{}{}, from step {} of a {}-rank checkpoint; {:.1f} MB, "
      "checksum {}",
      s.path.string(), s.items, s.dim, options.dtype, s.parameters, s.has_text ? ", item titles" : "",
      s.has_item_llm ? ", the item LLM and its tokenizer" : "", s.step, s.world_size,
      static_cast<double>(s.bytes) / 1e6, s.checksum);
  return 0;
}

}  // namespace longrec::cli
