#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "dlwpt/ct/candidates.h"
#include "dlwpt/ct/volume.h"
#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/unet.h"

namespace dlwpt::ct {

/// The book's part-2 pipeline (chapter 14's nodule analysis) on one scan.
struct AnalysisOptions {
  /// Slices per U-Net batch. One is fastest per slice on CPU, a 512x512 slice's activations
  /// staying in cache (measured with dlwpt-bench as whole batches: 2 slices took 2.4x, 8
  /// slices 11x one slice); the models now run eval-mode batches sample by sample themselves
  /// (layers/inference.h), so larger batches cost only the memory of their inputs.
  TORCH_ARG(int64_t, batch_size) = 1;
  /// Candidate chunks per LunaModel batch; the same holds (16 chunks as a whole batch took 18x
  /// one chunk).
  TORCH_ARG(int64_t, chunk_batch_size) = 1;
  /// Voxels whose probability exceeds this form the mask.
  TORCH_ARG(double, threshold) = 0.5;
};

/// The models the pipeline runs; `malignancy` may be empty. The U-Net must take the 7-slice
/// stacks the pipeline builds (in_channels 7: 3 context slices either side), give one
/// probability per voxel (n_classes 1) the size of its input (padding true); the LunaModels
/// take one HU channel in the book's 32 x 48 x 48 chunks. `check_models` says which does not.
/// The inputs go to the device of each model (`load_model(path, device)`), the results come
/// back to the CPU. The models must be in eval mode; prepared by `optimize_for_inference`
/// (models/inference.h) they run several times faster on CPU, with the same results.
struct AnalysisModels {
  UNetWrapper segmentation{nullptr};
  LunaModel nodule{nullptr};
  LunaModel malignancy{nullptr};
};

/// Called with (done, total) as work advances.
using ProgressCallback = std::function<void(int64_t done, int64_t total)>;

/// What the pipeline finds in one scan.
struct ScanAnalysis {
  torch::Tensor probability;  ///< float32 D x H x W, the U-Net's per-voxel output
  torch::Tensor mask;         ///< bool D x H x W: probability > threshold, eroded once
  std::vector<Candidate> candidates;  ///< by id, with their probabilities
  /// What the pipeline adapted to run the scan (such as padding its slices), one sentence
  /// each, for the user to see; empty for the book's 512 x 512 slices.
  std::vector<std::string> notes;
};

/// Throw ConfigError naming the model and what the pipeline needs when a model does not fit it
/// (see AnalysisModels); `role` names the classifier ("nodule", "malignancy").
void check_segmentation_model(const UNetWrapper& model);
void check_classification_model(const LunaModel& model, const std::string& role);
void check_models(const AnalysisModels& models);

/// The slice size the U-Net runs on: height and width rounded up to multiples of
/// 2^(depth - 1), the sizes whose every pooling halves an even side. `segment_volume` pads
/// slices of other sizes with air (kMinHu) at the bottom and right to it and crops the
/// output back, so that every slice size works and the 512 x 512 slices are untouched.
std::array<int64_t, 2> padded_slice_size(const UNetWrapper& model, int64_t rows, int64_t columns);

/// The U-Net over every slice: slice i sees slices i-3 .. i+3 (clamped), HU in [-1000, 1000],
/// padded to `padded_slice_size`; returns D x H x W probabilities.
torch::Tensor segment_volume(UNetWrapper& model, const torch::Tensor& hu, int64_t batch_size,
                             const ProgressCallback& progress = {});

/// probability > threshold, then one binary erosion with the 6-neighbour cross.
torch::Tensor nodule_mask(const torch::Tensor& probability, double threshold);

/// Runs each candidate's 32 x 48 x 48 chunk through a LunaModel and stores the probability of
/// its second class in `field` (Candidate::nodule_probability or malignancy_probability).
void classify_candidates(LunaModel& model, const torch::Tensor& hu,
                         std::vector<Candidate>& candidates, int64_t batch_size,
                         double Candidate::*field, const ProgressCallback& progress = {});

/// Throws ScanError for a volume the pipeline's models cannot take: fewer than 7 slices, or
/// sides under 16 voxels. analyse_scan checks it; callers may check before queueing a scan.
void check_volume(const CtVolume& volume);

/// Segmentation, mask, grouping and classification of one scan. Throws ConfigError for models
/// that do not fit the pipeline (`check_models`), ScanError for a volume the models cannot
/// take (fewer than 7 slices, sides under 16 voxels).
ScanAnalysis analyse_scan(AnalysisModels& models, const CtVolume& volume,
                          const AnalysisOptions& options = {},
                          const ProgressCallback& progress = {});

}  // namespace dlwpt::ct
