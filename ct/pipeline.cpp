#include "ct/pipeline.h"

#include <torch/torch.h>

#include "ct/slices.h"

namespace dlwpt::ct {

namespace {

constexpr int64_t kContextSlices = 3;  // the book's U-Net sees 7 slices
constexpr int64_t kMinSide = 16;       // below this the U-Net's poolings run out of pixels

void check_volume(const CtVolume& volume) {
  if (volume.hu.dim() != 3) throw ScanError("scan " + volume.series_uid + " is not a 3D volume");
  if (volume.slices() < 2 * kContextSlices + 1) {
    throw ScanError("scan " + volume.series_uid + " has " + std::to_string(volume.slices()) +
                    " slices; the segmentation needs at least " +
                    std::to_string(2 * kContextSlices + 1));
  }
  if (volume.rows() < kMinSide || volume.columns() < kMinSide) {
    throw ScanError("scan " + volume.series_uid + " slices are " + std::to_string(volume.columns()) +
                    "x" + std::to_string(volume.rows()) + "; at least " + std::to_string(kMinSide) +
                    " voxels per side are needed");
  }
}

}  // namespace

torch::Tensor segment_volume(UNetWrapper& model, const torch::Tensor& hu, int64_t batch_size,
                             const ProgressCallback& progress) {
  TORCH_CHECK(batch_size > 0, "batch size must be positive, got ", batch_size);
  torch::InferenceMode inference;
  const int64_t slices = hu.size(0);
  auto probability = torch::empty(hu.sizes(), torch::kFloat);
  for (int64_t first = 0; first < slices; first += batch_size) {
    const int64_t count = std::min(batch_size, slices - first);
    const auto output = model(segmentation_input(hu, first, count, kContextSlices));
    probability.narrow(0, first, count).copy_(output.select(1, 0));
    if (progress) progress(first + count, slices);
  }
  return probability;
}

torch::Tensor nodule_mask(const torch::Tensor& probability, double threshold) {
  return binary_erosion(probability > threshold);
}

void classify_candidates(LunaModel& model, const torch::Tensor& hu,
                         std::vector<Candidate>& candidates, int64_t batch_size,
                         double Candidate::*field, const ProgressCallback& progress) {
  TORCH_CHECK(batch_size > 0, "chunk batch size must be positive, got ", batch_size);
  torch::InferenceMode inference;
  const auto& size = model->options.chunk_size();
  const int64_t total = static_cast<int64_t>(candidates.size());
  for (int64_t first = 0; first < total; first += batch_size) {
    const int64_t count = std::min(batch_size, total - first);
    std::vector<torch::Tensor> chunks;
    for (int64_t i = first; i < first + count; ++i) {
      chunks.push_back(candidate_chunk(hu, candidates[i].center_irc, size).unsqueeze(0));
    }
    const auto probabilities = model(torch::stack(chunks)).probabilities.select(1, 1).to(torch::kDouble);
    const double* values = probabilities.contiguous().data_ptr<double>();
    for (int64_t i = 0; i < count; ++i) candidates[first + i].*field = values[i];
    if (progress) progress(first + count, total);
  }
}

ScanAnalysis analyse_scan(AnalysisModels& models, const CtVolume& volume,
                          const AnalysisOptions& options, const ProgressCallback& progress) {
  check_volume(volume);
  // Progress: slices segmented, then candidates classified, on one scale of twice the slices.
  const int64_t slices = volume.slices();
  ScanAnalysis analysis;
  analysis.probability = segment_volume(
      models.segmentation, volume.hu, options.batch_size(), [&](int64_t done, int64_t) {
        if (progress) progress(done, 2 * slices);
      });
  analysis.mask = nodule_mask(analysis.probability, options.threshold());
  analysis.candidates = group_candidates(label_components(analysis.mask), volume);
  const auto classified = [&](int64_t done, int64_t total) {
    if (progress) progress(slices + (total ? slices * done / total : slices), 2 * slices);
  };
  classify_candidates(models.nodule, volume.hu, analysis.candidates, options.chunk_batch_size(),
                      &Candidate::nodule_probability, classified);
  if (models.malignancy) {
    classify_candidates(models.malignancy, volume.hu, analysis.candidates,
                        options.chunk_batch_size(), &Candidate::malignancy_probability);
  }
  if (progress) progress(2 * slices, 2 * slices);
  return analysis;
}

}  // namespace dlwpt::ct
