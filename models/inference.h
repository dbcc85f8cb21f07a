#pragma once

// Fast CPU inference as an explicit step: `optimize_for_inference` prepares a trained model,
// the C++ counterpart of torch.jit.optimize_for_inference and torch.utils.mkldnn.to_mkldnn,
// and `forward_each_sample` runs a batch the way a CPU runs it fastest. The models' own
// forward() is the book's math and nothing else.

#include <torch/types.h>

#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/resnet_generator.h"
#include "dlwpt/models/unet.h"

namespace dlwpt {

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
ResNetGenerator optimize_for_inference(ResNetGenerator model);
UNet optimize_for_inference(UNet model);
UNetWrapper optimize_for_inference(UNetWrapper model);
LunaModel optimize_for_inference(LunaModel model);

/// `model` applied to each sample of `batch` as a batch of one, the outputs concatenated
/// along the batch. In eval mode (its batch norms then use running statistics, so samples do
/// not affect each other) this equals `model(batch)`, and on CPU it is the fastest per sample:
/// one sample's activations stay in cache (8 U-Net slices of 512x512 took 1.49 s as one
/// batch, 8 x 75 ms one by one; 32 LunaModel chunks 255 ms against 32 x 3.9 ms), and peak
/// memory is one sample's.
torch::Tensor forward_each_sample(ResNetGenerator& model, const torch::Tensor& batch);
torch::Tensor forward_each_sample(UNet& model, const torch::Tensor& batch);
torch::Tensor forward_each_sample(UNetWrapper& model, const torch::Tensor& batch);
LunaModelOutput forward_each_sample(LunaModel& model, const torch::Tensor& batch);

}  // namespace dlwpt
