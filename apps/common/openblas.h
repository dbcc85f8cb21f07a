#pragma once

namespace dlwpt::apps {

/// OpenBLAS picks its kernels by the CPU model at load time, and on virtual machines whose CPU
/// reports a generic model name (as this project's machines do) it falls back to its oldest
/// x86-64 kernels ("Prescott"), making the matrix products behind transposed convolutions and
/// linear layers up to 5 times slower. When OPENBLAS_CORETYPE is unset and the CPU has AVX-512
/// (or AVX2), this sets it to SkylakeX (or Haswell) and restarts the program with the same
/// arguments, the only way to reach OpenBLAS before it initialises. Call it first in main().
/// Does nothing when the variable is set (to anything), on other CPUs, or if the restart fails.
void select_openblas_kernels(char** argv);

}  // namespace dlwpt::apps
