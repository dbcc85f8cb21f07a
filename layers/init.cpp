#include "dlwpt/layers/init.h"

#include <cmath>

#include <torch/nn/init.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace dlwpt {

namespace {

bool is_book_initialised_layer(torch::nn::Module& module) {
  return module.as<torch::nn::Conv2d>() || module.as<torch::nn::Conv3d>() ||
         module.as<torch::nn::ConvTranspose2d>() || module.as<torch::nn::ConvTranspose3d>() ||
         module.as<torch::nn::Linear>();
}

void init_layer_as_book(torch::nn::Module& layer) {
  torch::NoGradGuard no_grad;
  const auto parameters = layer.named_parameters(/*recurse=*/false);
  torch::Tensor weight = parameters["weight"];
  torch::nn::init::kaiming_normal_(weight, /*a=*/0, torch::kFanOut, torch::kReLU);
  const torch::Tensor* bias = parameters.find("bias");
  if (bias != nullptr && bias->defined()) {
    const auto fan_out = std::get<1>(torch::nn::init::_calculate_fan_in_and_fan_out(weight));
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_out));
    bias->normal_(-bound, bound);
  }
}

}  // namespace

void init_weights_as_book(torch::nn::Module& module) {
  // Python's self.modules() order: the module itself, then its descendants depth first. The
  // module itself is visited separately because models call this from their constructors,
  // before a shared_ptr to them exists.
  if (is_book_initialised_layer(module)) init_layer_as_book(module);
  for (const auto& descendant : module.modules(/*include_self=*/false)) {
    if (is_book_initialised_layer(*descendant)) init_layer_as_book(*descendant);
  }
}

}  // namespace dlwpt
