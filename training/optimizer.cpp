#include "dlwpt/training/optimizer.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

namespace dlwpt::training {

OptimizerKind optimizer_kind_from_string(const std::string& name) {
  if (name == "sgd") return OptimizerKind::sgd;
  if (name == "adam") return OptimizerKind::adam;
  TORCH_CHECK(false, "unknown optimizer '", name, "' (expected 'sgd' or 'adam')");
}

std::string to_string(OptimizerKind kind) { return kind == OptimizerKind::sgd ? "sgd" : "adam"; }

OptimizerOptions book_classification_optimizer() {
  return OptimizerOptions().kind(OptimizerKind::sgd).lr(1e-3).momentum(0.99);
}

OptimizerOptions book_finetuning_optimizer() {
  return book_classification_optimizer().lr(3e-3).weight_decay(1e-4);
}

OptimizerOptions book_segmentation_optimizer() {
  return OptimizerOptions().kind(OptimizerKind::adam).lr(1e-3);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const std::vector<torch::Tensor>& parameters, const OptimizerOptions& options) {
  TORCH_CHECK(options.lr() > 0, "learning rate must be positive, got ", options.lr());
  TORCH_CHECK(options.weight_decay() >= 0, "weight decay must be >= 0, got ",
              options.weight_decay());
  if (options.kind() == OptimizerKind::sgd) {
    TORCH_CHECK(options.momentum() >= 0, "momentum must be >= 0, got ", options.momentum());
    return std::make_unique<torch::optim::SGD>(
        parameters, torch::optim::SGDOptions(options.lr())
                        .momentum(options.momentum())
                        .weight_decay(options.weight_decay()));
  }
  return std::make_unique<torch::optim::Adam>(
      parameters, torch::optim::AdamOptions(options.lr())
                      .betas({options.beta1(), options.beta2()})
                      .eps(options.eps())
                      .weight_decay(options.weight_decay()));
}

}  // namespace dlwpt::training
