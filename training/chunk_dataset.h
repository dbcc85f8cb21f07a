#pragma once

// The classifier's training data, as the book's part 2 builds it: labelled candidates from a
// LUNA-style CSV, 32 x 48 x 48 chunks cut from their CT scans around each candidate, split
// into training and validation by series, optionally balanced and augmented.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/data/datasets/base.h>
#include <torch/data/example.h>

#include "dlwpt/ct/candidates.h"
#include "dlwpt/ct/scan_library.h"
#include "dlwpt/ct/volume.h"
#include "dlwpt/training/augmentation.h"

namespace dlwpt::training {

/// One row of a candidates CSV.
struct LabelledCandidate {
  std::string series_uid;
  ct::Xyz center_xyz{};
  bool positive = false;
};

/// Reads candidates with their label from a CSV with columns seriesuid, coordX, coordY,
/// coordZ and `label_column`: LUNA's candidates.csv ("class", 1 = nodule) or the book's
/// annotations_with_malignancy.csv ("mal_bool"). Errors name the file, line and column.
std::vector<LabelledCandidate> read_labelled_candidates(const std::string& path,
                                                        const std::string& label_column);

/// Candidates of the training and of the validation series.
struct SeriesSplit {
  std::vector<LabelledCandidate> training;
  std::vector<LabelledCandidate> validation;
};

/// The book's split: the series sorted by UID, every `stride`-th (0, stride, 2 stride, ...)
/// to validation, the others to training. Throws c10::Error when either side ends up empty.
SeriesSplit split_by_series(const std::vector<LabelledCandidate>& candidates, int64_t stride = 10);

struct ChunkDatasetOptions {
  TORCH_ARG(std::vector<int64_t>, chunk_size) = std::vector<int64_t>{32, 48, 48};
  /// 0: every candidate once per epoch, in a shuffled order. N > 0: the book's `ratio_int`,
  /// one positive then N negatives, over and over (positives repeat).
  TORCH_ARG(int64_t, balanced) = 0;
  /// Samples per epoch; 0: as many as candidates.
  TORCH_ARG(int64_t, epoch_size) = 0;
  TORCH_ARG(bool, shuffle) = true;
  TORCH_ARG(std::optional<AugmentationOptions>, augmentation) = std::nullopt;
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Chunks as `torch::data` examples: data 1 x D x H x W float (HU clipped to [-1000, 1000]),
/// target an int64 scalar (1 = positive). Each epoch's order and augmentation derive from
/// (seed, epoch) alone, so any epoch can be replayed (resuming a run gives what an
/// uninterrupted run would have seen), whatever the number of loader workers.
class ChunkDataset : public torch::data::datasets::Dataset<ChunkDataset> {
 public:
  ChunkDataset(std::vector<LabelledCandidate> candidates, std::shared_ptr<ct::ScanLibrary> scans,
               const ChunkDatasetOptions& options = {});

  /// The dataset as epoch `epoch` sees it (order, balance, augmentation draws).
  ChunkDataset for_epoch(int64_t epoch) const;

  torch::data::Example<> get(size_t index) override;
  torch::optional<size_t> size() const override { return order_.size(); }

  int64_t positives() const;
  int64_t negatives() const;

 private:
  void build_order(int64_t epoch);

  std::vector<LabelledCandidate> candidates_;
  std::shared_ptr<ct::ScanLibrary> scans_;
  ChunkDatasetOptions options_;
  int64_t epoch_ = 0;
  std::vector<size_t> order_;  // candidate index of each sample of the epoch
};

}  // namespace dlwpt::training
