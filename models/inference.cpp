#include "dlwpt/models/inference.h"

#include <memory>
#include <utility>
#include <vector>

#include <ATen/Context.h>
#include <torch/nn/modules/container/sequential.h>

#include "dlwpt/layers/inference.h"
#include "dlwpt/layers/luna_block.h"
#include "dlwpt/layers/unet_blocks.h"

namespace dlwpt {

namespace nn = torch::nn;

namespace {

void freeze_for_eval(nn::Module& model) {
  model.eval();
  for (auto& parameter : model.parameters()) parameter.requires_grad_(false);
}

// oneDNN's layouts pay only where its kernels run: ATen built with it, float CPU weights.
bool onednn_applies(const nn::Module& model) {
  if (!at::hasMKLDNN()) return false;
  for (const auto& parameter : model.parameters()) {
    if (!parameter.device().is_cpu() || parameter.scalar_type() != torch::kFloat) return false;
  }
  return true;
}

// The layer a ConvTranspose2d module becomes: a SubpixelConvTranspose2d sharing its
// parameters when its options allow, else itself.
nn::AnyModule subpixel_or_same(const nn::AnyModule& layer) {
  const auto transposed = std::dynamic_pointer_cast<nn::ConvTranspose2dImpl>(layer.ptr());
  if (!transposed || !SubpixelConvTranspose2dImpl::is_compatible(transposed->options)) {
    return layer;
  }
  return nn::AnyModule(SubpixelConvTranspose2d(nn::ConvTranspose2d(transposed)));
}

void store_convolution_weights_channels_last(nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : model.parameters()) {
    if (parameter.dim() == 4) {
      parameter.set_data(parameter.contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
}

void use_subpixel_upsampling(UNet& model) {
  for (const auto& child : *model->up_path) {
    auto& block = *child->as<UNetUpBlock>();
    block.up = subpixel_or_same(block.up);
    block.replace_module("up", block.up.ptr());
  }
}

template <typename Output>
Output concatenate(std::vector<Output> outputs);

template <>
torch::Tensor concatenate(std::vector<torch::Tensor> outputs) {
  return torch::cat(outputs, 0);
}

template <>
LunaModelOutput concatenate(std::vector<LunaModelOutput> outputs) {
  std::vector<torch::Tensor> logits;
  std::vector<torch::Tensor> probabilities;
  for (const auto& output : outputs) {
    logits.push_back(output.logits);
    probabilities.push_back(output.probabilities);
  }
  return {torch::cat(logits, 0), torch::cat(probabilities, 0)};
}

template <typename Model>
auto each_sample(Model& model, const torch::Tensor& batch) {
  TORCH_CHECK(!model->is_training(),
              "forward_each_sample needs a model in eval mode: in training mode its batch norms "
              "would see single samples instead of the batch");
  TORCH_CHECK(batch.dim() > 0 && batch.size(0) > 0, "forward_each_sample needs a batch, got ",
              batch.sizes());
  using Output = decltype(model->forward(batch));
  std::vector<Output> outputs;
  outputs.reserve(static_cast<size_t>(batch.size(0)));
  for (int64_t i = 0; i < batch.size(0); ++i) outputs.push_back(model(batch.narrow(0, i, 1)));
  return outputs.size() == 1 ? outputs.front() : concatenate(std::move(outputs));
}

}  // namespace

ResNetGenerator optimize_for_inference(ResNetGenerator model) {
  freeze_for_eval(*model);
  // A Sequential cannot swap one of its layers: the same layers go into a new one, under the
  // same index names.
  nn::Sequential layers;
  for (const auto& layer : *model->model) layers->push_back(subpixel_or_same(layer));
  model->model = model->replace_module("model", layers);
  return model;
}

UNet optimize_for_inference(UNet model) {
  freeze_for_eval(*model);
  use_subpixel_upsampling(model);
  if (onednn_applies(*model)) store_convolution_weights_channels_last(*model);
  return model;
}

UNetWrapper optimize_for_inference(UNetWrapper model) {
  freeze_for_eval(*model);
  optimize_for_inference(model->unet);
  return model;
}

LunaModel optimize_for_inference(LunaModel model) {
  freeze_for_eval(*model);
  if (!onednn_applies(*model)) return model;
  const std::pair<const char*, LunaBlock*> blocks[] = {{"block1", &model->block1},
                                                        {"block2", &model->block2},
                                                        {"block3", &model->block3},
                                                        {"block4", &model->block4}};
  for (const auto& [name, block] : blocks) {
    if (std::dynamic_pointer_cast<BlockedLunaBlockImpl>(block->ptr())) continue;  // done before
    const std::shared_ptr<LunaBlockImpl> blocked = std::make_shared<BlockedLunaBlockImpl>(**block);
    *block = model->replace_module(name, LunaBlock(blocked));
  }
  return model;
}

torch::Tensor forward_each_sample(ResNetGenerator& model, const torch::Tensor& batch) {
  return each_sample(model, batch);
}

torch::Tensor forward_each_sample(UNet& model, const torch::Tensor& batch) {
  return each_sample(model, batch);
}

torch::Tensor forward_each_sample(UNetWrapper& model, const torch::Tensor& batch) {
  return each_sample(model, batch);
}

LunaModelOutput forward_each_sample(LunaModel& model, const torch::Tensor& batch) {
  return each_sample(model, batch);
}

}  // namespace dlwpt
