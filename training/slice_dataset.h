#pragma once

// The U-Net's training data, as the book's chapter 13 builds it: masks grown from the
// annotated nodules, training samples cropped around each nodule's center slice, validation
// on the whole slices that hold mask voxels.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/data/datasets/base.h>
#include <torch/data/example.h>

#include "dlwpt/ct/annotations.h"
#include "dlwpt/training/augmentation.h"
#include "dlwpt/training/chunk_dataset.h"

namespace dlwpt::training {

/// The book's split of annotations: series sorted by UID, every `stride`-th to validation.
struct AnnotationSplit {
  std::map<std::string, std::vector<ct::Annotation>> training;
  std::map<std::string, std::vector<ct::Annotation>> validation;
};
AnnotationSplit split_by_series(const std::map<std::string, std::vector<ct::Annotation>>& nodules,
                                int64_t stride = 10);

struct SliceDatasetOptions {
  /// Slices on each side of the center slice: the book's U-Net sees 2 * 3 + 1.
  TORCH_ARG(int64_t, context_slices) = 3;
  /// Training samples: a window x window square around the nodule (shifted to lie inside the
  /// slice), cropped at random to crop x crop (the book: 96 and 64). Validation: 0, whole
  /// slices.
  TORCH_ARG(int64_t, window) = 96;
  TORCH_ARG(int64_t, crop) = 64;
  TORCH_ARG(bool, shuffle) = true;
  TORCH_ARG(std::optional<AugmentationOptions>, augmentation) = std::nullopt;
  TORCH_ARG(uint64_t, seed) = 0;
  /// The masks' HU threshold (ct::annotation_mask).
  TORCH_ARG(double, threshold_hu) = -700.0;
};

/// Slice stacks as `torch::data` examples: data (2 * context + 1) x H x W float (HU clipped to
/// [-1000, 1000]), target 1 x H x W float mask. With window > 0 one sample per annotated
/// nodule, at its center slice; with window 0 every slice of the series whose mask is not
/// empty. Order, crops and augmentation derive from (seed, epoch), as ChunkDataset's.
class SliceDataset : public torch::data::datasets::Dataset<SliceDataset> {
 public:
  SliceDataset(const std::map<std::string, std::vector<ct::Annotation>>& nodules,
               std::shared_ptr<ct::ScanLibrary> scans, const SliceDatasetOptions& options = {});

  SliceDataset for_epoch(int64_t epoch) const;

  torch::data::Example<> get(size_t index) override;
  torch::optional<size_t> size() const override { return order_.size(); }

 private:
  struct Sample {
    std::string series_uid;
    int64_t slice = 0;
    int64_t row = 0;  // the nodule's center (training windows)
    int64_t column = 0;
  };
  // Masks of the series, built once and shared by the copies the loader makes.
  struct Masks {
    std::mutex mutex;
    std::map<std::string, torch::Tensor> by_series;
  };

  torch::Tensor mask_of(const std::string& series_uid, const ct::CtVolume& volume);
  void build_order(int64_t epoch);

  std::map<std::string, std::vector<ct::Annotation>> nodules_;
  std::shared_ptr<ct::ScanLibrary> scans_;
  SliceDatasetOptions options_;
  std::shared_ptr<Masks> masks_ = std::make_shared<Masks>();
  std::vector<Sample> samples_;
  int64_t epoch_ = 0;
  std::vector<size_t> order_;
};

}  // namespace dlwpt::training
