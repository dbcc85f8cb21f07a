#pragma once

// InstanceNorm2d, optionally followed by ReLU and reflection padding, in one pass over each
// channel: what the CycleGAN generator computes between two convolutions. ATen runs the three
// as separate passes (instance norm through batch norm over N * C channels, then ReLU, then
// reflection padding into a new tensor), each reading and writing the whole activation; here
// each channel's plane is read for its statistics while it sits in cache and written once,
// already padded. `optimize_for_inference` (models/inference.h) puts it in place of the book's
// layers; the models' own `forward()` never takes this path by itself.

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace dlwpt {

/// Options for `FusedInstanceNorm2d`: those of an InstanceNorm2d without affine parameters or
/// running statistics (the CycleGAN's), and what follows it.
struct FusedInstanceNorm2dOptions {
  /* implicit */ FusedInstanceNorm2dOptions(int64_t num_features) : num_features_(num_features) {}

  /// Channels of the input (C of N x C x H x W).
  TORCH_ARG(int64_t, num_features);
  /// Added to the variance before its square root, as InstanceNorm2d's `eps`.
  TORCH_ARG(double, eps) = 1e-5;
  /// Whether a ReLU follows the normalization.
  TORCH_ARG(bool, relu) = false;
  /// Reflection padding added to each of the four sides after it (0: none).
  TORCH_ARG(int64_t, reflection_padding) = 0;
};

/// `ReflectionPad2d(p)(ReLU(InstanceNorm2d(C)(x)))` (each part as the options say) computed
/// in one pass per channel for float32 and bfloat16 CPU tensors, with the statistics in
/// float32 as ATen's own. Equal to the three layers up to float rounding; inputs it does not
/// cover (another dtype or device, or one that needs gradients) go through the three ATen
/// operations instead (`unfused`). Holds no parameters or buffers.
class FusedInstanceNorm2dImpl : public torch::nn::Cloneable<FusedInstanceNorm2dImpl> {
 public:
  explicit FusedInstanceNorm2dImpl(const FusedInstanceNorm2dOptions& options_);

  void reset() override;

  /// N x C x H x W to N x C x (H + 2p) x (W + 2p), p = reflection_padding, contiguous.
  torch::Tensor forward(const torch::Tensor& input);

  /// The same result through ATen's instance_norm, relu and reflection_pad2d: the reference
  /// the fused pass is held to.
  torch::Tensor unfused(const torch::Tensor& input) const;

  void pretty_print(std::ostream& stream) const override;

  FusedInstanceNorm2dOptions options;
};

TORCH_MODULE(FusedInstanceNorm2d);

/// Whether the one-pass-per-plane kernels take `input`: a float32 or bfloat16 N x C x H x W CPU
/// tensor (any strides) that needs no gradient.
bool can_pass_over_planes(const torch::Tensor& input);

/// ReflectionPad2d(padding) on all four sides by the fused pass's writer alone, one plane at a
/// time, for inputs `can_pass_over_planes` takes: the same values (a copy) into a new
/// contiguous tensor. ATen 1.13 has no bfloat16 reflection padding and a slower float32 one.
torch::Tensor reflection_pad_planes(const torch::Tensor& input, int64_t padding);

}  // namespace dlwpt
