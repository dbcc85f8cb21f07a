#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

namespace dlwpt::training {

/// The optimizers of the book's recipes, named as the `train` app's `--optimizer`.
enum class OptimizerKind { sgd, adam };

OptimizerKind optimizer_kind_from_string(const std::string& name);
std::string to_string(OptimizerKind kind);

/// One options struct for both optimizers; each reads the fields that apply to it.
struct OptimizerOptions {
  TORCH_ARG(OptimizerKind, kind) = OptimizerKind::sgd;
  TORCH_ARG(double, lr) = 1e-3;
  /// SGD only.
  TORCH_ARG(double, momentum) = 0.99;
  TORCH_ARG(double, weight_decay) = 0.0;
  /// Adam only (PyTorch's defaults).
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
};

/// The book's recipes: LunaModel from scratch (SGD, lr 0.001, momentum 0.99), its malignancy
/// fine-tuning (lr 0.003, weight decay 1e-4) and the U-Net (Adam with PyTorch's defaults).
OptimizerOptions book_classification_optimizer();
OptimizerOptions book_finetuning_optimizer();
OptimizerOptions book_segmentation_optimizer();

/// torch::optim::SGD or Adam over `parameters`, which match PyTorch's step for step (the
/// training parity tests compare them). Parameters that get no gradient (frozen ones) are
/// left untouched, weight decay included, as in PyTorch.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const std::vector<torch::Tensor>& parameters, const OptimizerOptions& options);

}  // namespace dlwpt::training
