#pragma once

// Training checkpoints: a folder holding the model (a weights archive with its configuration,
// which load_model and Python's torch.jit.load read), the optimizer's state and the training
// state, replaced as a whole so that an interrupted save leaves the previous checkpoint.

#include <cstdint>
#include <string>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "dlwpt/weights/archive.h"

namespace dlwpt::training {

/// Where a run stands after its last completed epoch.
struct TrainingState {
  int64_t epoch = 0;       ///< completed epochs
  double best_f1 = -1;     ///< best validation F1 so far (-1: none yet)
  int64_t best_epoch = 0;  ///< the epoch that reached it
  uint64_t seed = 0;       ///< the run's seed: shuffling and augmentation derive from it
};

/// Files of a checkpoint folder.
struct CheckpointFiles {
  static constexpr const char* kModel = "model.pt";
  static constexpr const char* kOptimizer = "optimizer.pt";
  static constexpr const char* kState = "state.txt";
};

/// Writes `folder` (created if needed) with model, optimizer and state; the new checkpoint is
/// written beside it and swapped in only when complete.
void save_checkpoint(const std::string& folder, const torch::nn::Module& model,
                     const weights::ModelConfig& config, torch::optim::Optimizer& optimizer,
                     const TrainingState& state);

/// Loads a checkpoint folder into `model` (strictly; a checkpoint of another model class or
/// configuration than `config` is an error naming both) and `optimizer`; returns its state.
/// Throws FileError naming the folder or file for a missing, incomplete or unreadable
/// checkpoint. Every file is written atomically and flushed to the disk before the swap.
TrainingState load_checkpoint(const std::string& folder, torch::nn::Module& model,
                              const weights::ModelConfig& config,
                              torch::optim::Optimizer& optimizer);

/// Whether `folder` holds a complete checkpoint (or one whose swap was interrupted).
bool has_checkpoint(const std::string& folder);

}  // namespace dlwpt::training
