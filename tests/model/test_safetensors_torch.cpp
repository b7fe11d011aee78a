// safetensors against Python's reference (the project's .venv): files written
// by safetensors.torch.save_file read here value for value (f16/bf16/f32
// converted exactly), and files written here read back identically by
// safetensors.torch.load_file.
#include <gtest/gtest.h>

#include <cstdlib>

#include "longrec/core/error.h"
#include "longrec/model/safetensors_torch.h"
#include "support/test_support.h"

namespace longrec::model {
namespace {

int run_python(const std::string& mode, const std::filesystem::path& dir) {
  const std::string command =
      std::string(LONGREC_PYTHON) + " " + LONGREC_PARITY_SCRIPT + " " + mode + " " + dir.string();
  return std::system(command.c_str());
}

TEST(SafetensorsTorch, ReadsPythonFilesExactlyAndWritesFilesPythonReadsBack) {
  testing::ScratchDir dir;
  ASSERT_EQ(run_python("write", dir.path()), 0);
  const SafetensorsFile python = read_safetensors(dir / "python.safetensors");
  const SafetensorsFile expected = read_safetensors(dir / "expected.safetensors");
  EXPECT_EQ(python.header.metadata.at("source"), "parity test");
  ASSERT_EQ(python.header.tensors.size(), 10u);
  std::vector<std::pair<std::string, torch::Tensor>> copies;
  for (const auto& tensor : python.header.tensors) {
    const SafetensorsTensor* reference = expected.header.find(tensor.name);
    ASSERT_NE(reference, nullptr) << tensor.name;
    const torch::Dtype stored = torch_dtype_of(tensor, "python");
    const torch::Tensor want =
        to_torch(*reference, expected.bytes(*reference), torch_dtype_of(*reference, "expected"), "expected");
    if (c10::isFloatingType(stored)) {
      const torch::Tensor as64 = to_torch(tensor, python.bytes(tensor), torch::kFloat64, "python");
      EXPECT_TRUE(torch::equal(as64, want)) << tensor.name;
      EXPECT_EQ(as64.sizes(), want.sizes()) << tensor.name;
      const torch::Tensor as32 = to_torch(tensor, python.bytes(tensor), torch::kFloat32, "python");
      if (tensor.dtype != SafetensorsDtype::F64)
        EXPECT_TRUE(torch::equal(as32, want.to(torch::kFloat32))) << tensor.name;
      // Integers are not floats: refused, naming the tensor.
      EXPECT_THROW((void)to_torch(tensor, python.bytes(tensor), torch::kInt64, "python"), DataError);
    } else {
      EXPECT_TRUE(torch::equal(to_torch(tensor, python.bytes(tensor), torch::kInt64, "python"), want)) << tensor.name;
    }
    copies.emplace_back(tensor.name, to_torch(tensor, python.bytes(tensor), stored, "python"));
  }
  save_safetensors(dir / "cpp.safetensors", copies, python.header.metadata);
  const torch::Tensor f32 =
      to_torch(*python.header.find("f32"), python.bytes(*python.header.find("f32")), torch::kBFloat16, "python");
  save_safetensors(dir / "cpp_bf16.safetensors", {{"w", f32}});
  std::filesystem::create_directories(dir / "sharded");
  EXPECT_GT(save_safetensors_checkpoint(dir / "sharded", copies, {{"format", "pt"}}, 64).size(), 3u);  // shards + index
  EXPECT_EQ(run_python("check", dir.path()), 0);
}

TEST(SafetensorsTorch, UnsupportedDtypeForTorchNamesTheTensor) {
  SafetensorsTensor tensor;
  tensor.name = "model.norm.weight";
  tensor.dtype = SafetensorsDtype::F8_E4M3;
  tensor.shape = {1};
  try {
    (void)to_torch(tensor, std::string_view("\0", 1), torch::kFloat32, "m.safetensors");
    FAIL();
  } catch (const DataError& error) {
    EXPECT_NE(std::string(error.what()).find("m.safetensors: tensor 'model.norm.weight': dtype F8_E4M3"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace longrec::model
