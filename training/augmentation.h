#pragma once

// The book's data augmentation (chapters 12 and 13): random flips, offsets, scales and
// rotations applied through affine_grid and grid_sample (border padding), then Gaussian noise.
// Randomness comes from a caller's seeded engine, so a run can be repeated exactly.

#include <random>

#include <torch/arg.h>
#include <torch/types.h>

namespace dlwpt::training {

/// What to vary; zero or false turns a part off. Offsets are fractions of the half-extent
/// (affine_grid's [-1, 1] coordinates), scales fractions of 1, noise in HU.
struct AugmentationOptions {
  TORCH_ARG(bool, flip) = false;
  TORCH_ARG(double, offset) = 0.0;
  TORCH_ARG(double, scale) = 0.0;
  /// 3-D: about the index (depth) axis, mixing rows and columns; 2-D: in the slice plane.
  TORCH_ARG(bool, rotate) = false;
  TORCH_ARG(double, noise) = 0.0;
};

/// The book's classification training: flip, offset 0.1, scale 0.2, rotation, noise 25 HU.
AugmentationOptions book_chunk_augmentation();
/// The book's segmentation training: flip, offset 0.03, scale 0.2, rotation, noise 25 HU.
AugmentationOptions book_slice_augmentation();

/// A random (dims + 1) x (dims + 1) transform in affine_grid's coordinates (x = column, then
/// row, then depth), drawn as the book draws it: per axis a flip with probability 1/2, a
/// scale in 1 +- scale and an offset in +- offset, then a rotation by a uniform angle.
/// (The book's 2-D code stores the offset in the bottom row, where affine_grid never reads
/// it; here it shifts in 2-D as in 3-D.)
torch::Tensor random_transform(int64_t dims, const AugmentationOptions& options,
                               std::mt19937_64& random);

/// Resamples an N x C x [D x] H x W batch through a (dims + 1) square or dims x (dims + 1)
/// transform, the same for every sample: affine_grid then bilinear grid_sample with border
/// padding, align_corners=false (as the book).
torch::Tensor resample(const torch::Tensor& batch, const torch::Tensor& transform);

/// A chunk or slice stack augmented: `resample` through `random_transform`, then noise of
/// standard deviation `options.noise()`. `label` (optional, same spatial size) goes through
/// the same transform and comes back as a mask (> 0.5).
struct Augmented {
  torch::Tensor input;
  torch::Tensor label;
};
Augmented augment(const torch::Tensor& batch, const torch::Tensor& label,
                  const AugmentationOptions& options, std::mt19937_64& random);

}  // namespace dlwpt::training
