#pragma once

// The book's training loops: LunaModel with cross entropy (chapters 11, 12 and 14) and the
// U-Net with the Dice + false-negative loss (chapter 13). Epochs of training and validation
// with metrics, the best model by validation F1 (the Dice coefficient for the U-Net) kept, a
// checkpoint after every epoch and exact resumption.

#include <functional>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/unet.h"
#include "dlwpt/training/checkpoint.h"
#include "dlwpt/training/chunk_dataset.h"
#include "dlwpt/training/metrics.h"
#include "dlwpt/training/optimizer.h"
#include "dlwpt/training/slice_dataset.h"

namespace dlwpt::training {

struct TrainingOptions {
  /// The run ends after this epoch (counted from 1; a resumed run goes on to it).
  TORCH_ARG(int64_t, epochs) = 1;
  TORCH_ARG(int64_t, batch_size) = 32;
  /// Threads cutting (and augmenting) chunks while the model trains.
  TORCH_ARG(int64_t, workers) = 2;
  TORCH_ARG(OptimizerOptions, optimizer) = book_classification_optimizer();
  /// A candidate (a voxel, for the U-Net) counts as predicted positive when its probability
  /// exceeds this.
  TORCH_ARG(double, threshold) = 0.5;
  /// Where `checkpoint/`, `best.pt` and `metrics.csv` go; empty: nowhere.
  TORCH_ARG(std::string, run_folder) = "";
  /// Continue the checkpoint in run_folder instead of starting afresh.
  TORCH_ARG(bool, resume) = false;
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Called after each phase of each epoch, and with (epoch, phase, batches done, batches) as
/// batches finish.
struct TrainingCallbacks {
  std::function<void(const EpochMetrics&)> phase_done;
  std::function<void(int64_t epoch, const std::string& phase, int64_t done, int64_t total)>
      batch_done;
};

struct TrainingResult {
  TrainingState state;
  std::vector<EpochMetrics> history;  ///< the phases this call ran, in order
};

/// Trains `model` (its parameters that require gradients) with cross entropy. The optimizer
/// is created over all parameters, as the book does; frozen ones get no gradient and stay.
TrainingResult train_classifier(LunaModel& model, const ChunkDataset& training,
                                const ChunkDataset& validation, const TrainingOptions& options,
                                const TrainingCallbacks& callbacks = {});

/// Trains the U-Net with the book's segmentation loss; metrics count voxels (F1 = Dice). Pass
/// `book_segmentation_optimizer()` in the options for the book's Adam.
TrainingResult train_segmentation(UNetWrapper& model, const SliceDataset& training,
                                  const SliceDataset& validation, const TrainingOptions& options,
                                  const TrainingCallbacks& callbacks = {});

}  // namespace dlwpt::training
