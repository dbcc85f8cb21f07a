#include "dlwpt/models/inference.h"

#include <array>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <ATen/Context.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
// libtorch 1.13's module header uses the functional one without including it.
#include <torch/nn/functional/instancenorm.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/padding.h>

#include "dlwpt/layers/fused_instance_norm.h"
#include "dlwpt/layers/inference.h"
#include "dlwpt/layers/int8.h"
#include "dlwpt/layers/luna_block.h"
#include "dlwpt/layers/resnet_block.h"
#include "dlwpt/layers/unet_blocks.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt {

namespace nn = torch::nn;

namespace {

void freeze_for_eval(nn::Module& model) {
  model.eval();
  for (auto& parameter : model.parameters()) parameter.requires_grad_(false);
}

bool is_weighted_layer(const nn::Module& module) {
  return dynamic_cast<const nn::Conv2dImpl*>(&module) || dynamic_cast<const nn::Conv3dImpl*>(&module) ||
         dynamic_cast<const nn::ConvTranspose2dImpl*>(&module) || dynamic_cast<const nn::LinearImpl*>(&module);
}

// Convolutions and linear layers compute in bfloat16; normalizations keep their float32
// statistics (ATen normalizes bfloat16 activations with float32 parameters), which bfloat16's
// 8-bit mantissa would blur. Layers found by type: the prepared variants are convolutions too.
void use_bfloat16(nn::Module& model) {
  if (const auto reason = bfloat16_unsupported_reason()) throw ConfigError("bfloat16 inference: " + *reason);
  for (const auto& module : model.modules(/*include_self=*/false)) {
    if (is_weighted_layer(*module)) module->to(torch::kBFloat16);
  }
}

// A Conv2d (or a variant of it) becomes an Int8Conv2d sharing its parameters, when its options
// allow; any other layer stays.
nn::AnyModule int8_convolution(const nn::AnyModule& layer) {
  const auto convolution = std::dynamic_pointer_cast<nn::Conv2dImpl>(layer.ptr());
  if (!convolution || std::dynamic_pointer_cast<Int8Conv2dImpl>(convolution) ||
      !Int8Conv2dImpl::is_compatible(convolution->options)) {
    return layer;
  }
  return nn::AnyModule(Int8Conv2d(nn::Conv2d(convolution)));
}

// A SubpixelConvTranspose2d becomes an Int8SubpixelConvTranspose2d sharing its parameters; any
// other layer stays.
nn::AnyModule int8_upsampling(const nn::AnyModule& layer) {
  const auto subpixel = std::dynamic_pointer_cast<SubpixelConvTranspose2dImpl>(layer.ptr());
  if (!subpixel || std::dynamic_pointer_cast<Int8SubpixelConvTranspose2dImpl>(subpixel)) return layer;
  return nn::AnyModule(
      Int8SubpixelConvTranspose2d(nn::ConvTranspose2d(std::static_pointer_cast<nn::ConvTranspose2dImpl>(subpixel))));
}

void check_int8_runs_here() {
  if (const auto reason = int8_unsupported_reason()) throw ConfigError("int8 inference: " + *reason);
}

// A ReflectionPad2d becomes a FastReflectionPad2d; any other layer stays.
nn::AnyModule fast_reflection_padding(const nn::AnyModule& layer) {
  const auto padding = std::dynamic_pointer_cast<nn::ReflectionPad2dImpl>(layer.ptr());
  if (!padding || std::dynamic_pointer_cast<FastReflectionPad2dImpl>(padding)) return layer;
  return nn::AnyModule(FastReflectionPad2d(nn::ReflectionPad2d(padding)));
}

// oneDNN's layouts pay only where its kernels run: ATen built with it, float CPU weights.
bool onednn_applies(const nn::Module& model) {
  if (!at::hasMKLDNN()) return false;
  for (const auto& parameter : model.parameters()) {
    if (!parameter.device().is_cpu() || parameter.scalar_type() != torch::kFloat) return false;
  }
  return true;
}

using LayerSwap = std::function<nn::AnyModule(const nn::AnyModule&)>;

// A ConvTranspose2d becomes a SubpixelConvTranspose2d sharing its parameters, when its options
// allow; any other layer stays.
nn::AnyModule subpixel_upsampling(const nn::AnyModule& layer) {
  const auto transposed = std::dynamic_pointer_cast<nn::ConvTranspose2dImpl>(layer.ptr());
  if (!transposed || std::dynamic_pointer_cast<SubpixelConvTranspose2dImpl>(transposed) ||
      !SubpixelConvTranspose2dImpl::is_compatible(transposed->options)) {
    return layer;
  }
  return nn::AnyModule(SubpixelConvTranspose2d(nn::ConvTranspose2d(transposed)));
}

// A Conv2d becomes a ChannelsLastConv2d sharing its parameters; any other layer stays.
nn::AnyModule channels_last_convolution(const nn::AnyModule& layer) {
  const auto convolution = std::dynamic_pointer_cast<nn::Conv2dImpl>(layer.ptr());
  if (!convolution || std::dynamic_pointer_cast<ChannelsLastConv2dImpl>(convolution)) return layer;
  return nn::AnyModule(ChannelsLastConv2d(nn::Conv2d(convolution)));
}

// `layers` with `swap` applied to each: a Sequential cannot replace one of its layers, so the
// same layers go into a new one, under the same index names.
nn::Sequential swapped(const nn::Sequential& layers, const LayerSwap& swap) {
  nn::Sequential result;
  for (const auto& layer : *layers) result->push_back(swap(layer));
  return result;
}

// `swap` as a rewrite of a whole Sequential.
std::function<nn::Sequential(const nn::Sequential&)> each_layer(const LayerSwap& swap) {
  return [swap](const nn::Sequential& layers) { return swapped(layers, swap); };
}

// `rewrite` applied to the generator's Sequential and to each of its residual blocks'.
void rewrite_sequentials(ResNetGenerator& model, const std::function<nn::Sequential(const nn::Sequential&)>& rewrite) {
  model->model = model->replace_module("model", rewrite(model->model));
  for (const auto& child : *model->model) {
    if (auto* block = child.ptr()->as<ResNetBlock>()) {
      block->conv_block = block->replace_module("conv_block", rewrite(block->conv_block));
    }
  }
}

// The padding of a ReflectionPad2d that pads all four sides alike, or 0 for any other layer.
int64_t uniform_reflection_padding(const nn::AnyModule& layer) {
  const auto padding = std::dynamic_pointer_cast<nn::ReflectionPad2dImpl>(layer.ptr());
  return padding ? uniform_padding(padding->options).value_or(0) : 0;
}

// In `layers`, each InstanceNorm2d without affine parameters or running statistics becomes a
// FusedInstanceNorm2d that takes in the ReLU and the ReflectionPad2d following it (each when
// there), with an Identity in the place of each layer taken in: the indices, and so the
// state_dict keys, stay.
nn::Sequential fused_instance_norms(const nn::Sequential& layers) {
  const std::vector<nn::AnyModule> list(layers->begin(), layers->end());
  nn::Sequential result;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto norm = std::dynamic_pointer_cast<nn::InstanceNorm2dImpl>(list[i].ptr());
    if (!norm || norm->options.affine() || norm->options.track_running_stats()) {
      result->push_back(list[i]);
      continue;
    }
    auto fused = FusedInstanceNorm2dOptions(norm->options.num_features()).eps(norm->options.eps());
    size_t taken = 0;
    if (i + 1 < list.size() && list[i + 1].ptr()->as<nn::ReLU>()) {
      fused.relu(true);
      ++taken;
    }
    if (i + 1 + taken < list.size()) {
      if (const int64_t padding = uniform_reflection_padding(list[i + 1 + taken])) {
        fused.reflection_padding(padding);
        ++taken;
      }
    }
    result->push_back(FusedInstanceNorm2d(fused));
    for (size_t k = 0; k < taken; ++k) result->push_back(nn::Identity());
    i += taken;
  }
  return result;
}

void use_subpixel_upsampling(UNet& model) {
  for (const auto& child : *model->up_path) {
    auto& block = *child->as<UNetUpBlock>();
    block.up = subpixel_upsampling(block.up);
    block.replace_module("up", block.up.ptr());
  }
}

// `swap` applied to the layers of every convolution block of the U-Net (its 3x3 convolutions,
// their activations and norms).
void swap_in_convolution_blocks(UNet& model, const LayerSwap& swap) {
  for (const auto& path : {model->down_path, model->up_path}) {
    for (const auto& child : *path) {
      auto* block = child->as<UNetConvBlock>();
      if (!block) block = child->as<UNetUpBlock>()->conv_block.get();
      block->block = block->replace_module("block", swapped(block->block, swap));
    }
  }
}

std::array<std::pair<const char*, LunaBlock*>, 4> named_blocks(LunaModel& model) {
  return {{{"block1", &model->block1}, {"block2", &model->block2}, {"block3", &model->block3}, {"block4", &model->block4}}};
}

// Whether the blocks run in oneDNN's layout (optimize_for_inference). In bfloat16 those take
// float32 input, cast to their weights' dtype as it is reordered, and give float32 back.
bool runs_blocked(const LunaModelImpl& model) {
  return std::dynamic_pointer_cast<BlockedLunaBlockImpl>(model.block1.ptr()) != nullptr;
}

// Which models take float32 input in bfloat16: LunaModel's tail batch norm then normalizes the
// HU values themselves, not their bfloat16 roundings (4 HU apart near 1000, where the norm
// subtracts a mean of the same size), and its head stays float32. On the real CT's 1532
// candidates this took the largest probability change against float32 from 0.037 to 0.020.
bool takes_float32_input(const LunaModelImpl& model) { return runs_blocked(model); }
template <typename Impl>
bool takes_float32_input(const Impl&) {
  return false;
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

torch::Tensor as_float(const torch::Tensor& output) { return output.to(torch::kFloat); }

LunaModelOutput as_float(const LunaModelOutput& output) {
  return {output.logits.to(torch::kFloat), output.probabilities.to(torch::kFloat)};
}

template <typename Model>
auto each_sample(Model& model, const torch::Tensor& float_batch) {
  TORCH_CHECK(!model->is_training(),
              "forward_each_sample needs a model in eval mode: in training mode its batch norms "
              "would see single samples instead of the batch");
  TORCH_CHECK(float_batch.dim() > 0 && float_batch.size(0) > 0, "forward_each_sample needs a batch, got ",
              float_batch.sizes());
  const bool reduced = precision_of(*model) == Precision::bfloat16;
  const torch::Tensor batch =
      reduced && !takes_float32_input(*model) ? float_batch.to(torch::kBFloat16) : float_batch;
  using Output = decltype(model->forward(batch));
  std::vector<Output> outputs;
  outputs.reserve(static_cast<size_t>(batch.size(0)));
  for (int64_t i = 0; i < batch.size(0); ++i) outputs.push_back(model(batch.narrow(0, i, 1)));
  const Output output = outputs.size() == 1 ? outputs.front() : concatenate(std::move(outputs));
  return reduced ? as_float(output) : output;
}

// The model prepared for int8 and calibrated on `options.calibration_inputs()`.
template <typename Model>
Model calibrated_int8(Model model, const InferenceOptions& options) {
  check_int8_runs_here();
  if (options.calibration_inputs().empty()) {
    throw ConfigError("int8 inference needs calibration inputs: representative batches that set each "
                      "convolution's input range (InferenceOptions::calibration_inputs)");
  }
  model = begin_int8_calibration(model);
  const torch::NoGradGuard no_gradients;
  for (const auto& batch : options.calibration_inputs()) forward_each_sample(model, batch);
  finish_int8_calibration(*model);
  return model;
}

}  // namespace

std::string to_string(Precision precision) {
  switch (precision) {
    case Precision::bfloat16:
      return "bfloat16";
    case Precision::int8:
      return "int8";
    default:
      return "float32";
  }
}

Precision parse_precision(const std::string& name) {
  if (name == "float32" || name == "fp32") return Precision::float32;
  if (name == "bfloat16" || name == "bf16") return Precision::bfloat16;
  if (name == "int8") return Precision::int8;
  throw ConfigError("precision '" + name + "' is none of float32, bfloat16, int8");
}

std::optional<std::string> bfloat16_unsupported_reason() {
#if defined(__x86_64__) || defined(__i386__)
  if (!at::hasMKLDNN()) return "this libtorch was built without oneDNN";
  if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq")) {
    return std::nullopt;
  }
  return "oneDNN's bfloat16 kernels need AVX-512 (BW, VL and DQ), which this CPU lacks: use float32";
#else
  return "bfloat16 inference is built for x86-64 CPUs only";
#endif
}

std::optional<std::string> unsupported_reason(Precision precision) {
  switch (precision) {
    case Precision::bfloat16:
      return bfloat16_unsupported_reason();
    case Precision::int8:
      return int8_unsupported_reason();
    default:
      return std::nullopt;
  }
}

Precision precision_of(const nn::Module& model) {
  for (const auto& module : model.modules()) {
    if (dynamic_cast<const Int8Convolution*>(module.get()) || dynamic_cast<const Int8LunaBlockImpl*>(module.get())) {
      return Precision::int8;
    }
  }
  for (const auto& parameter : model.parameters()) {
    if (parameter.scalar_type() == torch::kBFloat16) return Precision::bfloat16;
  }
  return Precision::float32;
}

ResNetGenerator optimize_for_inference(ResNetGenerator model, const InferenceOptions& options) {
  if (options.precision() == Precision::int8) return calibrated_int8(model, options);
  freeze_for_eval(*model);
  model->model = model->replace_module("model", swapped(model->model, subpixel_upsampling));
  rewrite_sequentials(model, fused_instance_norms);
  rewrite_sequentials(model, each_layer(fast_reflection_padding));  // the paddings no norm took in
  if (options.precision() == Precision::bfloat16) use_bfloat16(*model);
  return model;
}

UNet optimize_for_inference(UNet model, const InferenceOptions& options) {
  if (options.precision() == Precision::int8) return calibrated_int8(model, options);
  freeze_for_eval(*model);
  use_subpixel_upsampling(model);
  if (onednn_applies(*model)) swap_in_convolution_blocks(model, channels_last_convolution);
  if (options.precision() == Precision::bfloat16) use_bfloat16(*model);
  return model;
}

UNetWrapper optimize_for_inference(UNetWrapper model, const InferenceOptions& options) {
  if (options.precision() == Precision::int8) return calibrated_int8(model, options);
  freeze_for_eval(*model);
  optimize_for_inference(model->unet, options);
  return model;
}

LunaModel optimize_for_inference(LunaModel model, const InferenceOptions& options) {
  if (options.precision() == Precision::int8) return calibrated_int8(model, options);
  freeze_for_eval(*model);
  if (!onednn_applies(*model)) {  // on another device, or prepared before
    if (options.precision() == Precision::bfloat16 && !runs_blocked(*model)) use_bfloat16(*model);
    return model;
  }
  // Activations stay blocked from the first block's input to the last block's output.
  for (const auto& [name, block] : named_blocks(model)) {
    if (std::dynamic_pointer_cast<BlockedLunaBlockImpl>(block->ptr())) continue;  // done before
    const bool last = block == &model->block4;
    const std::shared_ptr<LunaBlockImpl> blocked =
        std::make_shared<BlockedLunaBlockImpl>(**block, /*dense_output=*/last);
    *block = model->replace_module(name, LunaBlock(blocked));
  }
  if (options.precision() == Precision::bfloat16) {
    for (const auto& [name, block] : named_blocks(model)) use_bfloat16(**block);  // the convolutions only
  }
  return model;
}

ResNetGenerator begin_int8_calibration(ResNetGenerator model) {
  check_int8_runs_here();
  model = optimize_for_inference(model);
  rewrite_sequentials(model, each_layer(int8_convolution));
  model->model = model->replace_module("model", swapped(model->model, int8_upsampling));
  return model;
}

UNet begin_int8_calibration(UNet model) {
  check_int8_runs_here();
  model = optimize_for_inference(model);
  swap_in_convolution_blocks(model, int8_convolution);
  return model;
}

UNetWrapper begin_int8_calibration(UNetWrapper model) {
  freeze_for_eval(*model);
  begin_int8_calibration(model->unet);
  return model;
}

LunaModel begin_int8_calibration(LunaModel model) {
  check_int8_runs_here();
  freeze_for_eval(*model);
  for (const auto& [name, block] : named_blocks(model)) {
    if (std::dynamic_pointer_cast<Int8LunaBlockImpl>(block->ptr())) continue;  // done before
    const std::shared_ptr<LunaBlockImpl> int8 = std::make_shared<Int8LunaBlockImpl>(**block);
    *block = model->replace_module(name, LunaBlock(int8));
  }
  return model;
}

void finish_int8_calibration(nn::Module& model) {
  int64_t finished = 0;
  for (const auto& module : model.modules()) {
    if (auto* convolution = dynamic_cast<Int8Convolution*>(module.get())) {
      convolution->finish_calibration();
      ++finished;
    } else if (auto* block = dynamic_cast<Int8LunaBlockImpl*>(module.get())) {
      block->finish_calibration();
      ++finished;
    }
  }
  if (finished == 0) {
    throw ConfigError("finish_int8_calibration: the model has no int8 convolutions (begin_int8_calibration "
                      "prepares them)");
  }
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
