#include "dlwpt/training/augmentation.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/vision.h>
#include <torch/torch.h>

namespace dlwpt::training {

namespace F = torch::nn::functional;

namespace {

double uniform(std::mt19937_64& random) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(random);
}

// Rotation in the x-y plane of affine_grid's coordinates (columns and rows), the book's
// rotation about the index axis for chunks and in-plane for slices.
torch::Tensor rotation(int64_t dims, double angle) {
  auto rotation = torch::eye(dims + 1, torch::kDouble);
  const double c = std::cos(angle);
  const double s = std::sin(angle);
  rotation[0][0] = c;
  rotation[0][1] = -s;
  rotation[1][0] = s;
  rotation[1][1] = c;
  return rotation;
}

}  // namespace

AugmentationOptions book_chunk_augmentation() {
  return AugmentationOptions().flip(true).offset(0.1).scale(0.2).rotate(true).noise(25.0);
}

AugmentationOptions book_slice_augmentation() {
  return AugmentationOptions().flip(true).offset(0.03).scale(0.2).rotate(true).noise(25.0);
}

torch::Tensor random_transform(int64_t dims, const AugmentationOptions& options,
                               std::mt19937_64& random) {
  TORCH_CHECK(dims == 2 || dims == 3, "augmentation is 2-D or 3-D, got ", dims, " dimensions");
  TORCH_CHECK(options.offset() >= 0 && options.scale() >= 0 && options.scale() < 1 &&
                  options.noise() >= 0,
              "augmentation needs offset >= 0, 0 <= scale < 1 and noise >= 0");
  auto transform = torch::eye(dims + 1, torch::kDouble);
  auto values = transform.accessor<double, 2>();
  // Per axis in the book's order of draws: flip, offset, scale.
  for (int64_t axis = 0; axis < dims; ++axis) {
    if (options.flip() && uniform(random) > 0.5) values[axis][axis] *= -1;
    if (options.offset() > 0) values[axis][dims] = options.offset() * (uniform(random) * 2 - 1);
    if (options.scale() > 0) values[axis][axis] *= 1.0 + options.scale() * (uniform(random) * 2 - 1);
  }
  if (options.rotate()) transform = transform.matmul(rotation(dims, uniform(random) * 2 * M_PI));
  return transform.to(torch::kFloat);
}

torch::Tensor resample(const torch::Tensor& batch, const torch::Tensor& transform) {
  const int64_t dims = batch.dim() - 2;
  TORCH_CHECK(dims == 2 || dims == 3, "resample expects N x C x [D x] H x W, got ",
              batch.sizes());
  TORCH_CHECK(transform.dim() == 2 && transform.size(1) == dims + 1 &&
                  (transform.size(0) == dims || transform.size(0) == dims + 1),
              "resample needs a ", dims, " x ", dims + 1, " or ", dims + 1, " x ", dims + 1,
              " transform for ", batch.sizes(), ", got ", transform.sizes());
  const auto theta = transform.narrow(0, 0, dims).to(batch.scalar_type()).unsqueeze(0).expand(
      {batch.size(0), dims, dims + 1});
  const auto grid = F::affine_grid(theta, batch.sizes(), /*align_corners=*/false);
  return F::grid_sample(batch, grid, F::GridSampleFuncOptions()
                                         .mode(torch::kBilinear)
                                         .padding_mode(torch::kBorder)
                                         .align_corners(false));
}

Augmented augment(const torch::Tensor& batch, const torch::Tensor& label,
                  const AugmentationOptions& options, std::mt19937_64& random) {
  const auto transform = random_transform(batch.dim() - 2, options, random);
  Augmented result{resample(batch, transform), {}};
  if (label.defined()) result.label = resample(label.to(torch::kFloat), transform) > 0.5;
  if (options.noise() > 0) {
    auto generator = at::detail::createCPUGenerator(random());
    result.input.add_(torch::randn(result.input.sizes(), generator, result.input.options()) *
                      options.noise());
  }
  return result;
}

}  // namespace dlwpt::training
