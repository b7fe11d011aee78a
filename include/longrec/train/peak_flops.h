// The matrix-multiply peak of this machine, measured in the same run, as the
// denominator of MFU (achieved model FLOP/s over it).
#pragma once

#include <torch/torch.h>

namespace longrec::train {

// FLOP/s of a square fp32 matmul (bf16 on GPU) sized to the device, best of a few repeats.
double measure_matmul_peak_flops(torch::Device device);

}  // namespace longrec::train
