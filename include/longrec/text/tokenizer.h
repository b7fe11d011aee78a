// SentencePiece tokenizers for item texts (issue 15), torch-free.
//
// A model is a SentencePiece ModelProto file: one trained here by
// train_tokenizer (`longrec tokenizer train`) or an existing one, such as a
// Llama `tokenizer.model`, loaded as is. checksum() is the CRC-32 of the
// model's bytes, recorded by whatever depends on the tokenization (the token
// cache) so that a changed model is noticed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace longrec::text {

class Tokenizer {
 public:
  // Reads and parses a model file; throws SystemError naming the file when it
  // cannot be read, DataError naming it when it is not a SentencePiece model.
  static Tokenizer load(const std::filesystem::path& path);
  // A model from its serialized bytes; `origin` names it in errors.
  static Tokenizer from_bytes(std::string bytes, const std::string& origin);

  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  std::vector<std::int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<std::int32_t>& ids) const;  // ids must be in [0, vocab_size)
  std::int32_t vocab_size() const;
  std::int32_t bos_id() const;  // -1 when the model has none
  std::int32_t eos_id() const;
  std::int32_t pad_id() const;
  std::int32_t unk_id() const;
  // "crc32:xxxxxxxx" of the model bytes.
  const std::string& checksum() const { return checksum_; }
  const std::string& origin() const { return origin_; }

 private:
  Tokenizer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string checksum_;
  std::string origin_;
};

struct TrainOptions {
  std::string model_type = "unigram";  // unigram | bpe
  double character_coverage = 0.9995;  // (0, 1]
  bool byte_fallback = true;           // unknown characters as UTF-8 byte pieces
  int threads = 1;
  // Key prefix in errors, e.g. "tokenizer" -> "tokenizer.vocab_size".
  std::string key_prefix = "tokenizer";
};

// Trains a model on `texts` (empty ones are skipped) and writes it to
// `out_path` atomically (trained in memory, written to a temporary beside
// it, then renamed: write_file_atomically). A vocab_size the texts cannot support, or an invalid option,
// throws ConfigError naming the key (`<key_prefix>.vocab_size`, ...).
// Returns the trained model.
Tokenizer train_tokenizer(const std::vector<std::string>& texts, int vocab_size, const std::filesystem::path& out_path,
                          const TrainOptions& options = {});

}  // namespace longrec::text
