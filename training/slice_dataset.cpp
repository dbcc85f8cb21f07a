#include "dlwpt/training/slice_dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include <torch/torch.h>

#include "dlwpt/ct/slices.h"
#include "dlwpt/training/seeds.h"

namespace dlwpt::training {

AnnotationSplit split_by_series(const std::map<std::string, std::vector<ct::Annotation>>& nodules,
                                int64_t stride) {
  std::set<std::string> series;
  for (const auto& [uid, _] : nodules) series.insert(uid);
  const auto validating = validation_series(series, stride);
  AnnotationSplit split;
  for (const auto& [uid, list] : nodules) {
    (validating.count(uid) ? split.validation : split.training).emplace(uid, list);
  }
  TORCH_CHECK(!split.training.empty() && !split.validation.empty(), "splitting ", series.size(),
              " annotated series with every ", stride,
              "th to validation leaves one side empty; more series are needed");
  return split;
}

SliceDataset::SliceDataset(const std::map<std::string, std::vector<ct::Annotation>>& nodules,
                           std::shared_ptr<ct::ScanLibrary> scans, const SliceDatasetOptions& options)
    : nodules_(nodules), scans_(std::move(scans)), options_(options) {
  TORCH_CHECK(options_.context_slices() >= 0, "context_slices must be >= 0");
  TORCH_CHECK(options_.window() == 0 || (options_.crop() > 0 && options_.crop() <= options_.window()),
              "the crop (", options_.crop(), ") must fit in the window (", options_.window(), ")");
  for (const auto& [uid, list] : nodules_) {
    TORCH_CHECK(scans_->has(uid), "annotations of series ", uid, " have no scan among the ",
                scans_->size(), " scans given");
    const auto volume = scans_->get(uid);
    if (options_.window() > 0) {
      TORCH_CHECK(volume->rows() >= options_.window() && volume->columns() >= options_.window(),
                  "scan ", uid, " (", volume->columns(), "x", volume->rows(),
                  ") is smaller than the ", options_.window(), "-voxel training window");
      for (const auto& nodule : list) {
        const auto at = ct::nearest_voxel(nodule.center_xyz, *volume);
        TORCH_CHECK(at, "an annotated nodule of series ", uid, " lies outside its scan");
        samples_.push_back({uid, (*at)[0], (*at)[1], (*at)[2]});
      }
    } else {
      const auto slices_with_mask = mask_of(uid, *volume).flatten(1).any(1).nonzero().flatten();
      for (int64_t i = 0; i < slices_with_mask.size(0); ++i) {
        samples_.push_back({uid, slices_with_mask[i].item<int64_t>(), 0, 0});
      }
    }
  }
  TORCH_CHECK(!samples_.empty(), "the slice dataset is empty: no annotated nodule has a mask");
  build_order(0);
}

SliceDataset SliceDataset::for_epoch(int64_t epoch) const {
  SliceDataset copy = *this;
  copy.build_order(epoch);
  return copy;
}

void SliceDataset::build_order(int64_t epoch) {
  epoch_ = epoch;
  std::vector<size_t> all(samples_.size());
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 random(derived_seed(options_.seed(), epoch, kOrderStream));
  order_ = shuffled(std::move(all), random, options_.shuffle());
}

torch::Tensor SliceDataset::mask_of(const std::string& series_uid, const ct::CtVolume& volume) {
  std::lock_guard<std::mutex> lock(masks_->mutex);
  auto& mask = masks_->by_series[series_uid];
  if (!mask.defined()) {
    mask = ct::annotation_mask(volume, nodules_.at(series_uid), options_.threshold_hu());
  }
  return mask;
}

torch::data::Example<> SliceDataset::get(size_t index) {
  TORCH_CHECK(index < order_.size(), "sample ", index, " of an epoch of ", order_.size());
  const Sample& sample = samples_[order_[index]];
  const auto volume = scans_->get(sample.series_uid);
  auto input = ct::segmentation_input(volume->hu, sample.slice, 1, options_.context_slices())[0];
  auto label = mask_of(sample.series_uid, *volume)[sample.slice].unsqueeze(0).to(torch::kFloat);
  std::mt19937_64 random(derived_seed(options_.seed(), epoch_, index));
  if (options_.window() > 0) {
    // The window around the nodule, shifted inside the slice, then a random crop of it.
    const int64_t window = options_.window();
    const int64_t slack = window - options_.crop();
    auto start = [&](int64_t center, int64_t extent) {
      const int64_t shifted = std::clamp<int64_t>(center - window / 2, 0, extent - window);
      return shifted + static_cast<int64_t>(random() % static_cast<uint64_t>(slack + 1));
    };
    const int64_t top = start(sample.row, volume->rows());
    const int64_t left = start(sample.column, volume->columns());
    input = input.narrow(1, top, options_.crop()).narrow(2, left, options_.crop());
    label = label.narrow(1, top, options_.crop()).narrow(2, left, options_.crop());
  }
  if (options_.augmentation()) {
    const auto augmented = augment(input.unsqueeze(0), label.unsqueeze(0), *options_.augmentation(), random);
    input = augmented.input[0];
    label = augmented.label[0].to(torch::kFloat);
  }
  return {input.contiguous(), label.contiguous()};
}

}  // namespace dlwpt::training
