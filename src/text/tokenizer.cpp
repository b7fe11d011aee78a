#include "longrec/text/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "longrec/core/atomic_file.h"
#include "longrec/core/checksum.h"
#include "longrec/core/error.h"

namespace longrec::text {

namespace fs = std::filesystem;

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw SystemError(
        fmt::format("{}: tokenizer model not found (expected a SentencePiece .model file)", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SystemError(fmt::format("{}: cannot open for reading: {}", path.string(), std::strerror(errno)));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw SystemError(fmt::format("{}: read error", path.string()));
  return from_bytes(std::move(bytes).str(), path.string());
}

namespace {

// Protocol-buffer wire format, just enough to walk a ModelProto.
bool read_varint(std::string_view& s, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (s.empty()) return false;
    const auto b = static_cast<std::uint8_t>(s.front());
    s.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// One field: its number, and for length-delimited fields the payload.
bool read_field(std::string_view& s, std::uint64_t& field, std::string_view& payload, bool& delimited) {
  std::uint64_t key = 0;
  if (!read_varint(s, key)) return false;
  field = key >> 3;
  delimited = false;
  std::uint64_t v = 0;
  switch (key & 7) {
    case 0:
      return read_varint(s, v);
    case 1:
      if (s.size() < 8) return false;
      s.remove_prefix(8);
      return true;
    case 5:
      if (s.size() < 4) return false;
      s.remove_prefix(4);
      return true;
    case 2:
      if (!read_varint(s, v) || v > s.size()) return false;
      payload = s.substr(0, v);
      s.remove_prefix(v);
      delimited = true;
      return true;
    default:
      return false;
  }
}

// libsentencepiece 0.1.97 aborts (an exception through its trie builder, which
// reads pieces as NUL-terminated keys) on a model with an empty piece or one
// holding a NUL byte: such models are refused before it sees them.
// Returns the problem, or an empty string.
std::string check_model_proto(std::string_view bytes) {
  std::int64_t index = 0;
  while (!bytes.empty()) {
    std::uint64_t field = 0;
    std::string_view payload;
    bool delimited = false;
    if (!read_field(bytes, field, payload, delimited)) return "malformed protocol buffer";
    if (field != 1) continue;  // ModelProto.pieces = 1
    if (!delimited) return "malformed piece";
    bool has_piece = false;
    while (!payload.empty()) {
      std::uint64_t f = 0;
      std::string_view value;
      bool d = false;
      if (!read_field(payload, f, value, d)) return fmt::format("malformed piece {}", index);
      if (f == 1) {  // SentencePiece.piece
        if (!d) return fmt::format("malformed piece {}", index);
        if (value.find('\0') != std::string_view::npos) return fmt::format("piece {} holds a NUL byte", index);
        has_piece = !value.empty();
      }
    }
    if (!has_piece) return fmt::format("piece {} is empty", index);
    ++index;
  }
  return {};
}

}  // namespace

Tokenizer Tokenizer::from_bytes(std::string bytes, const std::string& origin) {
  Tokenizer t;
  t.impl_ = std::make_unique<Impl>();
  t.origin_ = origin;
  Crc32 crc;
  crc.update(bytes.data(), bytes.size());
  t.checksum_ = crc.hex();
  if (bytes.empty()) throw DataError(fmt::format("{}: empty file, not a SentencePiece model", origin));
  if (const auto problem = check_model_proto(bytes); !problem.empty()) {
    throw DataError(fmt::format("{}: not a SentencePiece model ({})", origin, problem));
  }
  const auto status = t.impl_->processor.LoadFromSerializedProto(bytes);
  if (!status.ok()) {
    throw DataError(fmt::format("{}: not a SentencePiece model ({})", origin, status.ToString()));
  }
  if (t.impl_->processor.GetPieceSize() <= 0) {
    throw DataError(fmt::format("{}: SentencePiece model without pieces", origin));
  }
  return t;
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = impl_->processor.Encode(text, &ids);
  if (!status.ok()) throw DataError(fmt::format("{}: cannot encode text: {}", origin_, status.ToString()));
  return {ids.begin(), ids.end()};
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  const auto n = vocab_size();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n) {
      throw DataError(fmt::format("{}: token id {} at position {} is outside [0, {})", origin_, ids[i], i, n));
    }
  }
  std::string out;
  const auto status = impl_->processor.Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  if (!status.ok()) throw DataError(fmt::format("{}: cannot decode ids: {}", origin_, status.ToString()));
  return out;
}

std::int32_t Tokenizer::vocab_size() const { return impl_->processor.GetPieceSize(); }
std::int32_t Tokenizer::bos_id() const { return impl_->processor.bos_id(); }
std::int32_t Tokenizer::eos_id() const { return impl_->processor.eos_id(); }
std::int32_t Tokenizer::pad_id() const { return impl_->processor.pad_id(); }
std::int32_t Tokenizer::unk_id() const { return impl_->processor.unk_id(); }

namespace {

class TextIterator : public sentencepiece::SentenceIterator {
 public:
  explicit TextIterator(const std::vector<std::string>& texts) : texts_(texts) { skip_empty(); }
  bool done() const override { return i_ >= texts_.size(); }
  void Next() override {
    ++i_;
    skip_empty();
  }
  const std::string& value() const override { return texts_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void skip_empty() {
    while (i_ < texts_.size() && texts_[i_].empty()) ++i_;
  }
  const std::vector<std::string>& texts_;
  std::size_t i_ = 0;
};

}  // namespace

Tokenizer train_tokenizer(const std::vector<std::string>& texts, int vocab_size, const fs::path& out_path,
                          const TrainOptions& options) {
  const std::string& k = options.key_prefix;
  if (vocab_size < 1 || vocab_size > (1 << 24)) {
    throw ConfigError(k + ".vocab_size", fmt::format("got {}, expected a value in [1, {}]", vocab_size, 1 << 24));
  }
  if (options.model_type != "unigram" && options.model_type != "bpe") {
    throw ConfigError(k + ".model_type", fmt::format("got '{}', expected unigram or bpe", options.model_type));
  }
  if (!std::isfinite(options.character_coverage) || options.character_coverage <= 0 || options.character_coverage > 1) {
    throw ConfigError(k + ".character_coverage",
                      fmt::format("got {}, expected a value in (0, 1]", options.character_coverage));
  }
  if (options.threads < 1 || options.threads > 1024) {
    throw ConfigError(k + ".threads", fmt::format("got {}, expected a value in [1, 1024]", options.threads));
  }
  std::size_t nonempty = 0;
  for (const auto& t : texts) nonempty += t.empty() ? 0 : 1;
  if (nonempty == 0) throw DataError(fmt::format("{}: no non-empty text to train a tokenizer on", out_path.string()));

  const fs::path dir = out_path.has_parent_path() ? out_path.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw ConfigError(k + ".out",
                      fmt::format("directory '{}' of '{}' does not exist", dir.string(), out_path.string()));
  }
  const std::unordered_map<std::string, std::string> args = {
      {"vocab_size", std::to_string(vocab_size)},
      {"model_type", options.model_type},
      {"character_coverage", fmt::format("{}", options.character_coverage)},
      {"byte_fallback", options.byte_fallback ? "true" : "false"},
      {"num_threads", std::to_string(options.threads)},
      {"minloglevel", "1"},
  };
  TextIterator iterator(texts);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator, &model);
  if (!status.ok()) {
    const std::string message = status.ToString();
    if (message.find("ocab") != std::string::npos) {
      throw ConfigError(k + ".vocab_size",
                        fmt::format("got {}: the {} texts cannot support it ({})", vocab_size, nonempty, message));
    }
    throw DataError(fmt::format("{}: SentencePiece training failed: {}", out_path.string(), message));
  }
  Tokenizer tokenizer = Tokenizer::from_bytes(model, out_path.string());
  if (tokenizer.vocab_size() != vocab_size) {
    throw ConfigError(k + ".vocab_size", fmt::format("got {}: the {} texts support only {} pieces", vocab_size,
                                                     nonempty, tokenizer.vocab_size()));
  }
  write_file_atomically(out_path, [&](std::ostream& out) { out.write(model.data(), std::streamsize(model.size())); });
  return tokenizer;
}

}  // namespace longrec::text
