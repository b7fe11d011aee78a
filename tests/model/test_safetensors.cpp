// The safetensors format without LibTorch (also run under ASan + UBSan): what
// the writer writes reads back, and every refusal names the tensor or key.
#include "longrec/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "longrec/core/error.h"
#include "support/test_support.h"

namespace longrec::model {
namespace {

using testing::ScratchDir;
using testing::write_file;

// A file from a header's JSON text and a data section.
std::string file_of(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

// Expects a DataError whose message holds every one of `parts`.
template <typename F>
void expect_refusal(F&& call, std::initializer_list<std::string> parts) {
  try {
    call();
    FAIL() << "no DataError";
  } catch (const DataError& error) {
    for (const auto& part : parts) EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
  }
}

void expect_header_refusal(const std::string& bytes, std::initializer_list<std::string> parts) {
  expect_refusal([&] { (void)parse_safetensors_header(bytes, "x.safetensors"); }, parts);
}

struct Sample {
  std::vector<float> weights{1.5f, -2.0f, 0.25f, 8.0f, 0.0f, -0.0f};
  std::vector<std::int64_t> ids{7, -1, 1LL << 40};
  std::uint16_t half = 0x3c00;  // 1.0 in F16 and, here, just two bytes
  std::vector<SafetensorsTensorData> tensors() const {
    return {{"w", SafetensorsDtype::F32, {2, 3}, {reinterpret_cast<const char*>(weights.data()), 24}},
            {"ids", SafetensorsDtype::I64, {3}, {reinterpret_cast<const char*>(ids.data()), 24}},
            {"scalar", SafetensorsDtype::F16, {}, {reinterpret_cast<const char*>(&half), 2}},
            {"empty", SafetensorsDtype::BF16, {0, 4}, {}}};
  }
};

TEST(Safetensors, WrittenFileReadsBackWithMetadataAndAlignedHeader) {
  ScratchDir dir;
  const Sample sample;
  write_safetensors(dir / "m.safetensors", sample.tensors(), {{"format", "pt"}});
  const SafetensorsFile file = read_safetensors(dir / "m.safetensors");
  EXPECT_EQ(file.header.data_start % 8, 0u);
  EXPECT_EQ(file.header.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(file.header.tensors.size(), 4u);
  const auto* w = file.header.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, SafetensorsDtype::F32);
  EXPECT_EQ(w->shape, (TensorShape{2, 3}));
  EXPECT_EQ(std::memcmp(file.bytes(*w).data(), sample.weights.data(), 24), 0);
  const auto* ids = file.header.find("ids");
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(std::memcmp(file.bytes(*ids).data(), sample.ids.data(), 24), 0);
  EXPECT_EQ(file.header.find("scalar")->shape, TensorShape{});
  EXPECT_EQ(file.header.find("scalar")->numel(), 1);
  EXPECT_EQ(file.bytes(*file.header.find("empty")).size(), 0u);
  EXPECT_EQ(file.header.find("nothing"), nullptr);
}

TEST(Safetensors, WriterRefusesBytesThatDoNotFitTheShapeNamingTheTensor) {
  ScratchDir dir;
  const float one = 1.0f;
  EXPECT_THROW(write_safetensors(dir / "m.safetensors",
                                 {{"w", SafetensorsDtype::F32, {2}, {reinterpret_cast<const char*>(&one), 4}}}),
               Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "m.safetensors"));
}

TEST(Safetensors, TruncatedFileNamesTheTensorPastTheEnd) {
  std::ostringstream out;
  const Sample sample;
  write_safetensors(out, sample.tensors());
  const std::string bytes = out.str();
  expect_header_refusal(bytes.substr(0, bytes.size() - 3), {"x.safetensors", "tensor 'ids'", "past the end"});
  expect_header_refusal(bytes.substr(0, 5), {"x.safetensors", "5 bytes"});
}

TEST(Safetensors, HeaderLengthPastTheEndOrOverTheLimitIsRefused) {
  std::string bytes = file_of("{}", "");
  bytes[0] = 50;
  expect_header_refusal(bytes, {"header length 50 runs past the end"});
  bytes[0] = 0;
  bytes[4] = 1;  // 2^32
  expect_header_refusal(bytes, {"exceeds the limit"});
}

TEST(Safetensors, HeaderThatIsNotJsonIsRefused) {
  expect_header_refusal(file_of("{\"a\": ", ""), {"header is not JSON"});
  expect_header_refusal(file_of("[1, 2]  ", ""), {"does not start with '{'"});
  expect_header_refusal(file_of(R"({"a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, "a": 1})", "abcd"),
                        {"key 'a' twice"});
  expect_header_refusal(file_of(R"({"__metadata__": {"k": 1}})", ""), {"__metadata__ key 'k'"});
}

TEST(Safetensors, UnknownDtypeNamesTensorAndDtype) {
  expect_header_refusal(
      file_of(R"({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}})", std::string(16, '\0')),
      {"tensor 'w'", "unsupported dtype 'F128'"});
}

TEST(Safetensors, MissingOrUnknownTensorKeysAreNamed) {
  expect_header_refusal(file_of(R"({"w": {"dtype": "F32", "shape": [1]}})", ""), {"tensor 'w'", "'data_offsets'"});
  expect_header_refusal(
      file_of(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "offsets": 1}})", "abcd"),
      {"tensor 'w'", "unknown key 'offsets'"});
  expect_header_refusal(file_of(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "abcd"),
                        {"tensor 'w'", "negative"});
  expect_header_refusal(file_of(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", "abcd"),
                        {"tensor 'w'", "non-integer"});
}

TEST(Safetensors, ShapeAndOffsetSizeMismatchNamesTheTensor) {
  expect_header_refusal(
      file_of(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", std::string(20, '\0')),
      {"tensor 'w'", "hold 20 bytes", "F32 [2, 3] needs 24"});
}

TEST(Safetensors, ShapeWhoseSizeOverflowsIsRefused) {
  expect_header_refusal(
      file_of(R"({"w": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", ""),
      {"tensor 'w'", "more elements than fit"});
  expect_header_refusal(
      file_of(R"({"w": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})", ""),
      {"tensor 'w'", "more elements than fit"});
}

TEST(Safetensors, OffsetsPastTheEndNameTheTensor) {
  expect_header_refusal(
      file_of(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", std::string(8, '\0')),
      {"tensor 'w'", "[4, 12] run past the end of the data section (8 bytes"});
}

TEST(Safetensors, OverlappingTensorsNameBoth) {
  expect_header_refusal(file_of(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                std::string(12, '\0')),
                        {"tensor 'b'", "overlap tensor 'a'"});
}

TEST(Safetensors, GapsAndTrailingBytesAreRefused) {
  expect_header_refusal(
      file_of(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", std::string(8, '\0')),
      {"tensor 'a'", "bytes [0, 4)", "no tensor"});
  expect_header_refusal(
      file_of(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", std::string(6, '\0')),
      {"2 trailing bytes"});
}

TEST(Safetensors, CheckTensorsNamesMissingUnexpectedAndWrongShape) {
  const std::map<std::string, TensorShape> found{{"a", {2, 3}}, {"b", {4}}, {"extra", {1}}};
  const std::map<std::string, TensorShape> expected{{"a", {3, 2}}, {"b", {4}}, {"gone", {5}}};
  expect_refusal([&] { check_tensors(found, expected, "dir"); },
                 {"dir: ", "missing tensor 'gone' (expected shape [5])", "unexpected tensor 'extra'",
                  "tensor 'a' has shape [2, 3], expected [3, 2]"});
  EXPECT_NO_THROW(check_tensors(found, found, "dir"));
}

TEST(Safetensors, MappedFileErrorsNameTheFile) {
  ScratchDir dir;
  try {
    MappedFile file(dir / "absent.safetensors");
    FAIL();
  } catch (const SystemError& error) {
    EXPECT_NE(std::string(error.what()).find("absent.safetensors"), std::string::npos);
  }
  write_file(dir / "empty.safetensors", "");
  expect_refusal([&] { (void)read_safetensors(dir / "empty.safetensors"); }, {"empty.safetensors", "0 bytes"});
}

// A two-shard checkpoint: a.safetensors holds "x", b.safetensors holds "y".
struct Sharded {
  ScratchDir dir;
  float x = 1.0f, y = 2.0f;
  Sharded() {
    write_safetensors(dir / "a.safetensors",
                      {{"x", SafetensorsDtype::F32, {1}, {reinterpret_cast<const char*>(&x), 4}}});
    write_safetensors(dir / "b.safetensors",
                      {{"y", SafetensorsDtype::F32, {}, {reinterpret_cast<const char*>(&y), 4}}});
  }
  void index(const std::string& weight_map) {
    write_file(dir / kSafetensorsIndexFile, R"({"metadata": {"total_size": 8}, "weight_map": )" + weight_map + "}");
  }
};

TEST(Safetensors, ShardedCheckpointMapsEveryTensorToItsFile) {
  Sharded sharded;
  sharded.index(R"({"x": "a.safetensors", "y": "b.safetensors"})");
  const auto checkpoint = SafetensorsCheckpoint::open(sharded.dir.path());
  EXPECT_EQ(checkpoint.shapes(), (std::map<std::string, TensorShape>{{"x", {1}}, {"y", {}}}));
  float y = 0;
  std::memcpy(&y, checkpoint.bytes("y").data(), 4);
  EXPECT_EQ(y, 2.0f);
  EXPECT_EQ(checkpoint.file_of("x").filename(), "a.safetensors");
  expect_refusal([&] { (void)checkpoint.tensor("z"); }, {"no tensor 'z'"});
}

TEST(Safetensors, ShardedIndexPointingToAMissingFileNamesTensorAndFile) {
  Sharded sharded;
  sharded.index(R"({"x": "a.safetensors", "y": "c.safetensors"})");
  expect_refusal([&] { (void)SafetensorsCheckpoint::open(sharded.dir.path()); },
                 {kSafetensorsIndexFile, "tensor 'y'", "'c.safetensors', which does not exist"});
}

TEST(Safetensors, ShardLackingAMappedTensorOrHoldingAnUnmappedOneIsRefused) {
  Sharded sharded;
  sharded.index(R"({"x": "a.safetensors", "y": "a.safetensors"})");
  expect_refusal([&] { (void)SafetensorsCheckpoint::open(sharded.dir.path()); },
                 {"a.safetensors: tensor 'y' is mapped to this file", "not in it"});
  sharded.index(R"({"x": "a.safetensors", "y": "b.safetensors", "z": "b.safetensors"})");
  expect_refusal([&] { (void)SafetensorsCheckpoint::open(sharded.dir.path()); }, {"tensor 'z'", "not in it"});
  sharded.index(R"({"x": "a.safetensors", "y": "../b.safetensors"})");
  expect_refusal([&] { (void)SafetensorsCheckpoint::open(sharded.dir.path()); },
                 {"tensor 'y'", "not a plain file name"});
  sharded.index(R"({"x": "a.safetensors"})");
  write_file(sharded.dir / kSafetensorsIndexFile, R"({"weight_map": {"x": "a.safetensors"}, "extra": 1})");
  expect_refusal([&] { (void)SafetensorsCheckpoint::open(sharded.dir.path()); }, {"unknown key 'extra'"});
}

TEST(Safetensors, SingleFileCheckpointAndEmptyDirectory) {
  ScratchDir dir;
  expect_refusal([&] { (void)SafetensorsCheckpoint::open(dir.path()); }, {"neither", kSafetensorsSingleFile});
  const Sample sample;
  write_safetensors(dir / kSafetensorsSingleFile, sample.tensors());
  const auto checkpoint = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(checkpoint.shapes().size(), 4u);
  EXPECT_EQ(checkpoint.tensor("w").shape, (TensorShape{2, 3}));
}

TEST(Safetensors, CheckpointWriterShardsByBytesAndReadsBack) {
  ScratchDir dir;
  const Sample sample;  // w 24 bytes, ids 24, scalar 2, empty 0
  const auto files = write_safetensors_checkpoint(dir.path(), sample.tensors(), {{"format", "pt"}}, 30);
  EXPECT_EQ(files, (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                             kSafetensorsIndexFile}));
  const auto checkpoint = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(checkpoint.shapes(), read_safetensors([&] {
                                   std::ostringstream out;
                                   write_safetensors(out, sample.tensors());
                                   write_file(dir / "all.safetensors", out.str());
                                   return dir / "all.safetensors";
                                 }())
                                     .header.shapes());
  EXPECT_EQ(checkpoint.file_of("ids").filename(), "model-00002-of-00002.safetensors");
  EXPECT_EQ(std::memcmp(checkpoint.bytes("ids").data(), sample.ids.data(), 24), 0);
  // Rewritten as one file: the stale index goes, so the single file is what is read.
  EXPECT_EQ(write_safetensors_checkpoint(dir.path(), sample.tensors()),
            std::vector<std::string>{kSafetensorsSingleFile});
  EXPECT_FALSE(std::filesystem::exists(dir / kSafetensorsIndexFile));
  EXPECT_EQ(SafetensorsCheckpoint::open(dir.path()).file_of("ids").filename(), kSafetensorsSingleFile);
}

}  // namespace
}  // namespace longrec::model
