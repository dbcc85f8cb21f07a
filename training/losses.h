#pragma once

#include <torch/arg.h>
#include <torch/types.h>

namespace dlwpt::training {

/// The book's soft Dice loss (chapter 13), one value per sample:
/// 1 - (2 sum(p * l) + epsilon) / (sum(p) + sum(l) + epsilon), sums over all but the batch
/// dimension. `prediction` and `label` are N x C x H x W probabilities and {0, 1} masks.
torch::Tensor dice_loss(const torch::Tensor& prediction, const torch::Tensor& label,
                        double epsilon = 1.0);

/// Options of the book's U-Net loss.
struct SegmentationLossOptions {
  /// Weight of the Dice loss of the prediction masked by the label: it only sees the label's
  /// voxels, so it punishes missed nodule voxels (false negatives), which the book prefers to
  /// false positives.
  TORCH_ARG(double, false_negative_weight) = 8.0;
  TORCH_ARG(double, epsilon) = 1.0;
};

/// mean(dice_loss(p, l)) + false_negative_weight * mean(dice_loss(p * l, l)).
torch::Tensor segmentation_loss(const torch::Tensor& prediction, const torch::Tensor& label,
                                const SegmentationLossOptions& options = {});

/// Mean cross entropy of N x K logits against N class indices (the book's LunaModel loss).
torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace dlwpt::training
