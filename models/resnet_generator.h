#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

namespace dlwpt {

/// Options for the CycleGAN `ResNetGenerator` of the book's chapter 2 (defaults as Python's).
struct ResNetGeneratorOptions {
  TORCH_ARG(int64_t, input_nc) = 3;
  TORCH_ARG(int64_t, output_nc) = 3;
  /// Channels of the first convolution; the residual blocks run at 4 * ngf.
  TORCH_ARG(int64_t, ngf) = 64;
  TORCH_ARG(int64_t, n_blocks) = 9;
};

/// CycleGAN ResNet generator (horse to zebra). One Sequential registered as `model`, indexed
/// exactly as Python's so that keys read `model.1.weight`, `model.10.conv_block.1.weight`,
/// `model.19.weight`, `model.26.bias` for the default options.
///
/// Input: N x input_nc x H x W, the book feeds RGB in [0, 1]. Output: N x output_nc x H' x W'
/// in [-1, 1] (tanh); H' = H and W' = W when both are divisible by 4.
class ResNetGeneratorImpl : public torch::nn::Cloneable<ResNetGeneratorImpl> {
 public:
  using Options = ResNetGeneratorOptions;

  explicit ResNetGeneratorImpl(const ResNetGeneratorOptions& options_ = {});

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  torch::Tensor forward(const torch::Tensor& input);

  /// Values in the state_dict (parameters) of a ResNetGenerator with these options, in closed
  /// form: the size a configuration describes, known before building it.
  static int64_t state_numel(const ResNetGeneratorOptions& options);

  ResNetGeneratorOptions options;
  torch::nn::Sequential model{nullptr};
};

TORCH_MODULE(ResNetGenerator);

}  // namespace dlwpt
