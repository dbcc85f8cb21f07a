#pragma once

// Faster CPU inference for the book's layers, exact up to float rounding.
//
// The models' `forward()` takes these paths only when autograd is off (`torch::InferenceMode`
// or `torch::NoGradGuard`) and the input is a float CPU tensor; with autograd on they run the
// plain modules, so training sees exactly PyTorch's ops. What each path buys is measured by
// `tools/dev.sh bench` (see README).

#include <functional>
#include <mutex>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/types.h>

namespace dlwpt {

/// The device of a module's parameters (and buffers): where its inputs must go. CPU for a
/// module without any.
torch::Device device_of(const torch::nn::Module& module);

/// Whether `input` may take the fast inference paths: autograd is off and it is a float CPU
/// tensor.
bool use_inference_path(const torch::Tensor& input);

/// Whether oneDNN (mkldnn) kernels are there for `input`: the fast path and ATen built with
/// oneDNN.
bool use_onednn_inference(const torch::Tensor& input);

/// Whether `module` may run the samples of `input` one at a time: the inference path, more
/// than one sample, and the module in eval mode (its batch norms then use running statistics,
/// so samples do not affect each other).
bool run_samples_one_by_one(const torch::nn::Module& module, const torch::Tensor& input);

/// `forward` applied to each sample of `input` (as a batch of one), the results concatenated
/// along the batch. On CPU one sample at a time is the fastest per sample: its activations
/// stay in cache (measured here: 8 U-Net slices of 512x512 take 1.49 s as one batch, 8 x 75 ms
/// one by one; 32 LunaModel chunks 255 ms against 32 x 3.9 ms), and peak memory is one
/// sample's.
torch::Tensor for_each_sample(const torch::Tensor& input,
                              const std::function<torch::Tensor(const torch::Tensor&)>& forward);

/// Lets the C library keep freed memory for the next allocation instead of handing it back to
/// the system. Inference allocates and frees the same large activations on every call, and
/// memory fresh from the system costs a page fault per 4 KiB page: measured here, LunaModel at
/// batch 1 takes 3.8 ms instead of 7.0 ms, the U-Net 69 ms instead of 99 ms per 512x512
/// slice. The process keeps its peak heap until it exits. Call once at start-up (the apps do);
/// a no-op outside glibc.
void keep_freed_memory_for_reuse();

/// A tensor derived from a parameter (a re-laid-out weight), derived again only when the
/// parameter changes: an assignment brings another tensor, an in-place update (an optimizer
/// step, `load_state_dict`) bumps its version counter. Parameters created inside
/// `torch::InferenceMode` have no version counter, so for them nothing is cached. Thread-safe;
/// copies start empty.
class DerivedTensor {
 public:
  using Derive = std::function<torch::Tensor(const torch::Tensor&)>;

  DerivedTensor() = default;
  DerivedTensor(const DerivedTensor&) {}
  DerivedTensor& operator=(const DerivedTensor&) { return *this; }

  /// `derive(source)`, from the cache when `source` has not changed since the last call.
  torch::Tensor get(const torch::Tensor& source, const Derive& derive);

 private:
  std::mutex mutex_;
  torch::Tensor source_;  // held, so that no other tensor can take its place in memory
  const void* source_data_ = nullptr;
  uint32_t source_version_ = 0;
  torch::Tensor derived_;
};

/// ConvTranspose2d as a stride-1 convolution that computes the stride x stride output phases
/// as channels, interleaved by pixel_shuffle (sub-pixel convolution). The same products and
/// sums as the transposed convolution, but through ATen's fast (oneDNN) convolution instead of
/// its slow col2im path. Equal strides, no groups or dilation, zero padding; other layers run
/// as they are.
class SubpixelConvTranspose2d {
 public:
  torch::Tensor forward(torch::nn::ConvTranspose2dImpl& layer, const torch::Tensor& input);

 private:
  DerivedTensor weight_;
  DerivedTensor bias_;
};

/// Conv3d over tensors in oneDNN's blocked layout (`Tensor::to_mkldnn()`), with the weight
/// reordered into that layout once instead of on every call.
class PackedConv3d {
 public:
  torch::Tensor forward(const torch::nn::Conv3dImpl& layer, const torch::Tensor& mkldnn_input);

 private:
  DerivedTensor weight_;
};

}  // namespace dlwpt
