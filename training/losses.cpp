#include "dlwpt/training/losses.h"

#include <numeric>

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

namespace dlwpt::training {

torch::Tensor dice_loss(const torch::Tensor& prediction, const torch::Tensor& label,
                        double epsilon) {
  TORCH_CHECK(prediction.dim() >= 2 && prediction.sizes() == label.sizes(),
              "dice_loss: prediction and label must be N x ... tensors of one shape, got ",
              prediction.sizes(), " and ", label.sizes());
  std::vector<int64_t> per_sample(static_cast<size_t>(prediction.dim() - 1));
  std::iota(per_sample.begin(), per_sample.end(), 1);
  const auto label_sum = label.sum(per_sample);
  const auto prediction_sum = prediction.sum(per_sample);
  const auto correct = (prediction * label).sum(per_sample);
  return 1 - (2 * correct + epsilon) / (prediction_sum + label_sum + epsilon);
}

torch::Tensor segmentation_loss(const torch::Tensor& prediction, const torch::Tensor& label,
                                const SegmentationLossOptions& options) {
  return dice_loss(prediction, label, options.epsilon()).mean() +
         dice_loss(prediction * label, label, options.epsilon()).mean() *
             options.false_negative_weight();
}

torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
              "classification_loss: expects N x K logits and N labels, got ", logits.sizes(),
              " and ", labels.sizes());
  return torch::nn::functional::cross_entropy(logits, labels);
}

}  // namespace dlwpt::training
