#include "dlwpt/layers/inference.h"

#include <algorithm>
#include <climits>
#include <variant>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <ATen/Context.h>
#include <torch/torch.h>

#include "dlwpt/layers/fused_instance_norm.h"

namespace dlwpt {

namespace nn = torch::nn;

namespace {

// The taps of one spatial dimension of a transposed convolution, regrouped by output phase.
// Output o = stride * i - padding + k takes input i through kernel tap k; writing
// o = stride * j + phase gives i = j + offset with offset = (phase + padding - k) / stride,
// whenever that division is exact.
struct PhaseTaps {
  struct Tap {
    int64_t phase;
    int64_t kernel_index;
    int64_t offset;
  };
  std::vector<Tap> taps;
  int64_t min_offset = 0;
  int64_t max_offset = 0;

  int64_t window() const { return max_offset - min_offset + 1; }
};

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

PhaseTaps phase_taps(int64_t kernel_size, int64_t stride, int64_t padding) {
  PhaseTaps result;
  bool first = true;
  for (int64_t phase = 0; phase < stride; ++phase) {
    for (int64_t k = 0; k < kernel_size; ++k) {
      const int64_t shift = phase + padding - k;
      if (shift - floor_div(shift, stride) * stride != 0) continue;
      const int64_t offset = floor_div(shift, stride);
      result.taps.push_back({phase, k, offset});
      result.min_offset = first ? offset : std::min(result.min_offset, offset);
      result.max_offset = first ? offset : std::max(result.max_offset, offset);
      first = false;
    }
  }
  return result;
}

}  // namespace

bool SubpixelConvTranspose2dImpl::is_compatible(
    const decltype(nn::ConvTranspose2dImpl::options)& options) {
  const auto* padding = alternative_of<torch::ExpandingArray<2>>(options.padding());
  return padding != nullptr && alternative_of<torch::enumtype::kZeros>(options.padding_mode()) &&
         options.groups() == 1 && (*options.dilation())[0] == 1 &&
         (*options.dilation())[1] == 1 && (*options.stride())[0] == (*options.stride())[1];
}

namespace {

// (in, out, kh, kw) transposed-convolution weight -> (out * s * s, in, window_h, window_w)
// convolution weight whose output channels are ordered (out, phase_y, phase_x), the order
// pixel_shuffle expects.
torch::Tensor subpixel_weight(const torch::Tensor& weight, int64_t stride, const PhaseTaps& rows,
                              const PhaseTaps& cols) {
  const int64_t in_channels = weight.size(0);
  const int64_t out_channels = weight.size(1);
  auto result = torch::zeros({out_channels, stride, stride, in_channels, rows.window(),
                              cols.window()},
                             weight.options());
  for (const auto& row : rows.taps) {
    for (const auto& col : cols.taps) {
      result.select(1, row.phase)
          .select(1, col.phase)
          .select(2, row.offset - rows.min_offset)
          .select(2, col.offset - cols.min_offset)
          .copy_(weight.select(2, row.kernel_index).select(2, col.kernel_index).t());
    }
  }
  return result.reshape({out_channels * stride * stride, in_channels, rows.window(),
                         cols.window()});
}

// Output size of one dimension of a transposed convolution, as ConvTranspose2d computes it.
int64_t transposed_output_size(int64_t input_size, int64_t stride, int64_t padding,
                               int64_t kernel_size, int64_t output_padding) {
  return (input_size - 1) * stride - 2 * padding + kernel_size + output_padding;
}

}  // namespace

torch::Device device_of(const nn::Module& module) {
  for (const auto& parameter : module.parameters()) return parameter.device();
  for (const auto& buffer : module.buffers()) return buffer.device();
  return torch::kCPU;
}

torch::Tensor for_each_sample(const torch::Tensor& input,
                              const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  std::vector<torch::Tensor> outputs;
  outputs.reserve(static_cast<size_t>(input.size(0)));
  for (int64_t i = 0; i < input.size(0); ++i) outputs.push_back(forward(input.narrow(0, i, 1)));
  return torch::cat(outputs, 0);
}

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  // Blocks up to 32 MiB (glibc's largest threshold) come from the heap rather than from
  // mmap(), whose pages munmap() returns at every free; and the heap's free top is never
  // trimmed back to the system.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

torch::Tensor DerivedTensor::get(const torch::Tensor& source, const Derive& derive) {
  if (source.is_inference()) return derive(source);  // no version counter to watch
  std::lock_guard<std::mutex> lock(mutex_);
  const bool unchanged = derived_.defined() && source.is_same(source_) &&
                         source.data_ptr() == source_data_ &&
                         source._version() == source_version_;
  if (!unchanged) {
    derived_ = derive(source);
    source_ = source;
    source_data_ = source.data_ptr();
    source_version_ = source._version();
  }
  return derived_;
}

SubpixelConvTranspose2dImpl::SubpixelConvTranspose2dImpl(const nn::ConvTranspose2d& layer)
    : nn::Module(*layer), LayerVariant(layer) {
  TORCH_CHECK(is_compatible(options), "SubpixelConvTranspose2d: this ConvTranspose2d has groups, "
              "dilation, unequal strides or non-zero padding, which it does not support");
}

torch::Tensor SubpixelConvTranspose2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "SubpixelConvTranspose2d expects an NCHW input, got ",
              input.sizes());
  const int64_t stride = (*options.stride())[0];
  const auto& padding = *alternative_of<torch::ExpandingArray<2>>(options.padding());
  const auto& kernel = *options.kernel_size();
  const auto& output_padding = *options.output_padding();
  const PhaseTaps rows = phase_taps(kernel[0], stride, (*padding)[0]);
  const PhaseTaps cols = phase_taps(kernel[1], stride, (*padding)[1]);

  const int64_t out_height =
      transposed_output_size(input.size(2), stride, (*padding)[0], kernel[0], output_padding[0]);
  const int64_t out_width =
      transposed_output_size(input.size(3), stride, (*padding)[1], kernel[1], output_padding[1]);
  // Each phase covers ceil(out / stride) positions j, reading inputs j + min_offset ... j +
  // max_offset: zero-pad (or crop, when negative) the input to exactly that range.
  const int64_t phase_rows = (out_height + stride - 1) / stride;
  const int64_t phase_cols = (out_width + stride - 1) / stride;
  const std::vector<int64_t> pads{-cols.min_offset, phase_cols + cols.max_offset - input.size(3),
                                  -rows.min_offset, phase_rows + rows.max_offset - input.size(2)};
  const bool unpadded = std::all_of(pads.begin(), pads.end(), [](int64_t pad) { return pad == 0; });
  const auto padded = unpadded ? input : torch::constant_pad_nd(input, pads);

  const auto phases = convolve_phases(padded, subpixel_weight(), subpixel_bias());
  return torch::pixel_shuffle(phases, stride).narrow(2, 0, out_height).narrow(3, 0, out_width);
}

torch::Tensor SubpixelConvTranspose2dImpl::convolve_phases(const torch::Tensor& padded_input,
                                                           const torch::Tensor& weight, const torch::Tensor& bias) {
  return torch::conv2d(padded_input, weight, bias);
}

torch::Tensor SubpixelConvTranspose2dImpl::subpixel_weight() {
  const int64_t stride = (*options.stride())[0];
  const auto& padding = *alternative_of<torch::ExpandingArray<2>>(options.padding());
  const auto& kernel = *options.kernel_size();
  return subpixel_weight_.get(weight, [&](const torch::Tensor& w) {
    return dlwpt::subpixel_weight(w, stride, phase_taps(kernel[0], stride, (*padding)[0]),
                                  phase_taps(kernel[1], stride, (*padding)[1]));
  });
}

torch::Tensor SubpixelConvTranspose2dImpl::subpixel_bias() {
  if (!bias.defined()) return {};
  const int64_t stride = (*options.stride())[0];
  return subpixel_bias_.get(bias, [&](const torch::Tensor& b) { return b.repeat_interleave(stride * stride); });
}

ChannelsLastConv2dImpl::ChannelsLastConv2dImpl(const nn::Conv2d& layer)
    : nn::Module(*layer), LayerVariant(layer) {}

torch::Tensor ChannelsLastConv2dImpl::forward(const torch::Tensor& input) {
  return Conv2dImpl::forward(input.contiguous(torch::MemoryFormat::ChannelsLast));
}

FastReflectionPad2dImpl::FastReflectionPad2dImpl(const nn::ReflectionPad2d& layer)
    : nn::Module(*layer), LayerVariant(layer) {}

namespace {

// The source index of each position of a dimension of `size` reflected by `before` and `after`
// (reflection excludes the edge: ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...).
torch::Tensor reflected_indices(int64_t size, int64_t before, int64_t after, const torch::Device& device) {
  TORCH_CHECK(before < size && after < size, "reflection padding of ", before, " and ", after,
              " needs more than that many values along the dimension, got ", size);
  std::vector<int64_t> indices;
  indices.reserve(static_cast<size_t>(before + size + after));
  for (int64_t i = -before; i < size + after; ++i) indices.push_back(i < 0 ? -i : i >= size ? 2 * (size - 1) - i : i);
  return torch::tensor(indices, torch::TensorOptions(torch::kLong).device(device));
}

}  // namespace

torch::Tensor FastReflectionPad2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 3 || input.dim() == 4, "FastReflectionPad2d expects a (N x) C x H x W input, got ",
              input.sizes());
  if (const auto uniform = uniform_padding(options); uniform && can_pass_over_planes(input)) {
    return reflection_pad_planes(input, *uniform);
  }
  const auto& padding = *options.padding();  // left, right, top, bottom
  const int64_t rows = input.dim() - 2;
  const auto columns = reflected_indices(input.size(rows + 1), padding[0], padding[1], input.device());
  const auto row_indices = reflected_indices(input.size(rows), padding[2], padding[3], input.device());
  return input.index_select(rows + 1, columns).index_select(rows, row_indices);
}

std::optional<int64_t> uniform_padding(const nn::ReflectionPad2dOptions& options) {
  const auto& sides = *options.padding();
  const bool uniform = std::all_of(sides.begin(), sides.end(), [&](int64_t side) { return side == sides[0]; });
  return uniform ? std::optional<int64_t>(sides[0]) : std::nullopt;
}

torch::Tensor PackedConv3d::forward(const nn::Conv3dImpl& layer,
                                    const torch::Tensor& mkldnn_input) {
  const auto& options = layer.options;
  const auto* padding = alternative_of<torch::ExpandingArray<3>>(options.padding());
  TORCH_CHECK(mkldnn_input.is_mkldnn(), "PackedConv3d expects an input in oneDNN layout");
  TORCH_CHECK(padding != nullptr && alternative_of<torch::enumtype::kZeros>(options.padding_mode()),
              "PackedConv3d supports explicit zero padding only");
  const auto weight = weight_.get(layer.weight, [&](const torch::Tensor& w) {
    return torch::mkldnn_reorder_conv3d_weight(w.to_mkldnn(), **padding, *options.stride(),
                                               *options.dilation(), options.groups());
  });
  return torch::mkldnn_convolution(mkldnn_input, weight, layer.bias, **padding,
                                   *options.stride(), *options.dilation(), options.groups());
}

}  // namespace dlwpt
