#pragma once

// Fast CPU inference as an explicit step: `optimize_for_inference` prepares a trained model,
// the C++ counterpart of torch.jit.optimize_for_inference and torch.utils.mkldnn.to_mkldnn,
// and `forward_each_sample` runs a batch the way a CPU runs it fastest. The models' own
// forward() is the book's math and nothing else.

#include <optional>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/resnet_generator.h"
#include "dlwpt/models/unet.h"

namespace dlwpt {

/// The number format a prepared model computes in.
enum class Precision {
  /// The reference: outputs equal PyTorch's up to float rounding.
  float32,
  /// Convolution and linear weights and the activations between layers in bfloat16 (8 bits of
  /// mantissa), computed by oneDNN's bfloat16 kernels (AMX or AVX512_BF16 where the CPU has
  /// them, which run several times faster than float32); normalization statistics and
  /// parameters stay float32, and so do LunaModel's tail batch norm and head (its blocks
  /// take the normalized chunk in float32). Inputs and outputs of forward_each_sample stay
  /// float32. The accuracy against float32 is measured per model (README).
  bfloat16,
  /// Convolutions in int8 (post-training static quantization, layers/int8.h): inputs quantized
  /// per tensor with ranges calibrated on representative inputs, weights per output channel,
  /// outputs back in float32; everything else float32. Linear layers and transposed
  /// convolutions stay float32 (a small share of each model's work). The accuracy against
  /// float32 is measured per model (README).
  int8,
};

/// "float32", "bfloat16" or "int8".
std::string to_string(Precision precision);
/// The precision a name gives ("float32", "fp32", "bfloat16", "bf16", "int8"); ConfigError
/// otherwise.
Precision parse_precision(const std::string& name);

/// Why this CPU cannot run bfloat16 inference (oneDNN's bfloat16 kernels need AVX-512 with its
/// BW, VL and DQ extensions), or nullopt when it can.
std::optional<std::string> bfloat16_unsupported_reason();

/// Why `precision` cannot run in this build or on this CPU (bfloat16_unsupported_reason,
/// int8_unsupported_reason in layers/int8.h), or nullopt; float32 always runs.
std::optional<std::string> unsupported_reason(Precision precision);

/// The precision of a model prepared by optimize_for_inference: int8 when it holds int8
/// convolutions, bfloat16 when any of its parameters is, else float32.
Precision precision_of(const torch::nn::Module& model);

/// How optimize_for_inference prepares a model.
struct InferenceOptions {
  /// float32 by default; bfloat16 and int8 throw ConfigError where they cannot run.
  TORCH_ARG(Precision, precision) = Precision::float32;
  /// int8 only, and needed by it: representative input batches (as forward_each_sample takes
  /// them), run through the model in float32 to find each convolution's input range. Values
  /// beyond the ranges they give saturate, so they should cover what the model will see.
  TORCH_ARG(std::vector<torch::Tensor>, calibration_inputs) = {};
};

/// Prepares `model` for inference, in place, and returns it:
/// - eval mode, and every parameter frozen (requires_grad false);
/// - each ConvTranspose2d (the generator's and the U-Net's upsampling) becomes a
///   SubpixelConvTranspose2d: ATen runs transposed convolutions through a slow col2im path;
/// - with oneDNN and float CPU parameters: the U-Net's 3x3 convolutions become
///   ChannelsLastConv2d, so that its activations are channels-last from the first one on and
///   every convolution runs in oneDNN without reordering them (outputs then come
///   channels-last: the same values, other strides); LunaModel's blocks run in oneDNN's
///   blocked layout (BlockedLunaBlockImpl), from the first block's input to the last's output.
/// The replacement layers hold the same parameters under the same names: the state_dict keeps
/// its keys and values, checkpoints load into the prepared model and save from it as before,
/// and outputs equal the plain model's up to float rounding (tests/inference_test.cpp).
/// Layers are found by type, so a model changed by surgery is prepared as it is; change it
/// afterwards and call this again (which changes nothing twice). A clone() has the same
/// weights, but not all of its layers need be the prepared ones: prepare it too.
/// With Precision::bfloat16 the convolution and linear layers' parameters become bfloat16
/// (the state_dict keeps its keys; its values are then rounded), and the generator's
/// reflection padding runs by indexing (ATen has no bfloat16 kernel for it). Such a model
/// takes bfloat16 inputs and gives bfloat16 outputs; forward_each_sample converts for it.
ResNetGenerator optimize_for_inference(ResNetGenerator model, const InferenceOptions& options = {});
UNet optimize_for_inference(UNet model, const InferenceOptions& options = {});
UNetWrapper optimize_for_inference(UNetWrapper model, const InferenceOptions& options = {});
LunaModel optimize_for_inference(LunaModel model, const InferenceOptions& options = {});

/// int8 in two steps, for calibration inputs that only a pipeline makes (the U-Net slices of
/// a scan, the chunks around its candidates): `begin_int8_calibration` prepares the model as
/// optimize_for_inference does, with int8 convolutions that compute in float32 and record
/// their inputs' ranges; run representative inputs through it (its outputs are the float32
/// ones); `finish_int8_calibration` then switches them to int8 (ConfigError when one of them
/// saw no input).
ResNetGenerator begin_int8_calibration(ResNetGenerator model);
UNet begin_int8_calibration(UNet model);
UNetWrapper begin_int8_calibration(UNetWrapper model);
LunaModel begin_int8_calibration(LunaModel model);
void finish_int8_calibration(torch::nn::Module& model);

/// `model` applied to each sample of `batch` as a batch of one, the outputs concatenated
/// along the batch. The batch goes in, and the outputs come out, as float32 whatever the
/// model's precision. In eval mode (its batch norms then use running statistics, so samples do
/// not affect each other) this equals `model(batch)`, and on CPU it is the fastest per sample:
/// one sample's activations stay in cache (8 U-Net slices of 512x512 took 1.49 s as one
/// batch, 8 x 75 ms one by one; 32 LunaModel chunks 255 ms against 32 x 3.9 ms), and peak
/// memory is one sample's.
torch::Tensor forward_each_sample(ResNetGenerator& model, const torch::Tensor& batch);
torch::Tensor forward_each_sample(UNet& model, const torch::Tensor& batch);
torch::Tensor forward_each_sample(UNetWrapper& model, const torch::Tensor& batch);
LunaModelOutput forward_each_sample(LunaModel& model, const torch::Tensor& batch);

}  // namespace dlwpt
