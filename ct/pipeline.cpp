#include "dlwpt/ct/pipeline.h"

#include <torch/torch.h>

#include "dlwpt/ct/slices.h"
#include "dlwpt/layers/inference.h"
#include "dlwpt/models/inference.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt::ct {

namespace {

constexpr int64_t kContextSlices = 3;  // the book's U-Net sees 7 slices
constexpr int64_t kMinSide = 16;       // below this the U-Net's poolings run out of pixels
constexpr ChunkSize kBookChunkSize = {32, 48, 48};  // the chunks the book's classifiers learnt

std::string text(const ChunkSize& size) {
  return std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" + std::to_string(size[2]);
}


// Pads count x C x H x W stacks with air at the bottom and right to the U-Net's size.
torch::Tensor pad_to(const torch::Tensor& stacks, const std::array<int64_t, 2>& size) {
  const int64_t bottom = size[0] - stacks.size(2);
  const int64_t right = size[1] - stacks.size(3);
  if (bottom == 0 && right == 0) return stacks;
  return torch::constant_pad_nd(stacks, {0, right, 0, bottom}, kMinHu);
}

}  // namespace

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

void check_segmentation_model(const UNetWrapper& model) {
  TORCH_CHECK(model, "the pipeline needs a segmentation model");
  const auto& options = model->options;
  const int64_t stack = 2 * kContextSlices + 1;
  if (options.in_channels() != stack) {
    throw ConfigError("the segmentation UNetWrapper takes in_channels=" +
                      std::to_string(options.in_channels()) + "; the pipeline feeds it " +
                      std::to_string(stack) + " slices (each slice with " +
                      std::to_string(kContextSlices) + " neighbours either side)");
  }
  if (options.n_classes() != 1) {
    throw ConfigError("the segmentation UNetWrapper has n_classes=" +
                      std::to_string(options.n_classes()) +
                      "; the pipeline reads one nodule probability per voxel (n_classes=1)");
  }
  if (!options.padding()) {
    throw ConfigError("the segmentation UNetWrapper has padding=false, its output smaller than "
                      "its input; the pipeline needs a mask the size of the slices (padding=true)");
  }
}

void check_classification_model(const LunaModel& model, const std::string& role) {
  TORCH_CHECK(model, "the pipeline needs a ", role, " classifier");
  const auto& options = model->options;
  if (options.in_channels() != 1) {
    throw ConfigError("the " + role + " LunaModel takes in_channels=" +
                      std::to_string(options.in_channels()) +
                      "; the pipeline feeds it one channel of HU (in_channels=1)");
  }
  if (options.chunk_size() != kBookChunkSize) {
    throw ConfigError("the " + role + " LunaModel takes " + text(options.chunk_size()) +
                      " chunks; the pipeline cuts the book's " + text(kBookChunkSize));
  }
}

void check_models(const AnalysisModels& models) {
  check_segmentation_model(models.segmentation);
  check_classification_model(models.nodule, "nodule");
  if (models.malignancy) check_classification_model(models.malignancy, "malignancy");
}

std::array<int64_t, 2> padded_slice_size(const UNetWrapper& model, int64_t rows,
                                         int64_t columns) {
  return {model->unet->padded_size(rows), model->unet->padded_size(columns)};
}

torch::Tensor segment_volume(UNetWrapper& model, const torch::Tensor& hu, int64_t batch_size,
                             const ProgressCallback& progress) {
  TORCH_CHECK(batch_size > 0, "batch size must be positive, got ", batch_size);
  torch::InferenceMode inference;
  const int64_t slices = hu.size(0);
  const int64_t rows = hu.size(1);
  const int64_t columns = hu.size(2);
  const auto padded = padded_slice_size(model, rows, columns);
  const torch::Device device = device_of(*model);
  auto probability = torch::empty(hu.sizes(), torch::kFloat);
  for (int64_t first = 0; first < slices; first += batch_size) {
    const int64_t count = std::min(batch_size, slices - first);
    const auto output = forward_each_sample(
        model, pad_to(segmentation_input(hu, first, count, kContextSlices), padded).to(device)).cpu();
    TORCH_CHECK(output.size(2) == padded[0] && output.size(3) == padded[1],
                "the U-Net returned ", output.sizes(), " for slices padded to ", padded[0], "x",
                padded[1], "; segmentation needs padding=true");
    probability.narrow(0, first, count)
        .copy_(output.select(1, 0).narrow(1, 0, rows).narrow(2, 0, columns));
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
    const auto output = forward_each_sample(model, torch::stack(chunks).to(device_of(*model)));
    const auto probabilities = output.probabilities.select(1, 1).to(torch::kCPU, torch::kDouble);
    const double* values = probabilities.contiguous().data_ptr<double>();
    for (int64_t i = 0; i < count; ++i) candidates[first + i].*field = values[i];
    if (progress) progress(first + count, total);
  }
}

ScanAnalysis analyse_scan(AnalysisModels& models, const CtVolume& volume,
                          const AnalysisOptions& options, const ProgressCallback& progress) {
  check_models(models);
  check_volume(volume);
  // Progress: slices segmented, then candidates classified, on one scale of twice the slices.
  const int64_t slices = volume.slices();
  ScanAnalysis analysis;
  analysis.probability = segment_volume(
      models.segmentation, volume.hu, options.batch_size(), [&](int64_t done, int64_t) {
        if (progress) progress(done, 2 * slices);
      });
  const auto padded = padded_slice_size(models.segmentation, volume.rows(), volume.columns());
  if (padded[0] != volume.rows() || padded[1] != volume.columns()) {
    analysis.notes.push_back(
        "slices of " + std::to_string(volume.columns()) + "x" + std::to_string(volume.rows()) +
        " voxels were padded with air (-1000 HU) at the right and bottom to " +
        std::to_string(padded[1]) + "x" + std::to_string(padded[0]) +
        ", the sizes the U-Net of depth " + std::to_string(models.segmentation->options.depth()) +
        " takes; the segmentation was cropped back");
  }
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
