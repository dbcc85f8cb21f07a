#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace dlwpt::training {

/// Counts of a binary decision against the truth: per sample for the classifier, per voxel
/// for the segmentation (where F1 is the Dice coefficient).
struct BinaryCounts {
  int64_t true_positives = 0;
  int64_t false_positives = 0;
  int64_t false_negatives = 0;
  int64_t true_negatives = 0;

  /// Adds bool tensors of one shape: what was predicted positive, what is positive.
  void add(const torch::Tensor& predicted, const torch::Tensor& actual);
  BinaryCounts& operator+=(const BinaryCounts& other);

  int64_t total() const;
  /// As the book: 0 when there is nothing to divide.
  double precision() const;
  double recall() const;
  double f1() const;
};

/// One phase (training or validation) of one epoch.
struct EpochMetrics {
  int64_t epoch = 0;
  std::string phase;  ///< "train" or "val"
  double loss = 0;    ///< mean over the phase's batches, weighted by their sizes
  BinaryCounts counts;
  int64_t samples = 0;
  double seconds = 0;

  double samples_per_second() const { return seconds > 0 ? samples / seconds : 0; }
};

/// Appends one line to a metrics CSV (epoch, phase, loss, precision, recall, f1, the four
/// counts, samples, seconds, samples per second), writing the header when the file is new.
/// Throws FileError naming the file.
void append_metrics_csv(const std::string& path, const EpochMetrics& metrics);

/// Keeps the header and the rows of epochs 1 .. `last_epoch` of a metrics CSV, rewritten
/// atomically: a resumed run drops the rows of epochs its checkpoint does not hold (written
/// before a crash), which it is about to run again. A missing file stays missing.
void truncate_metrics_csv(const std::string& path, int64_t last_epoch);

/// "loss 0.1234, precision 0.91, recall 0.88, F1 0.89" for progress lines.
std::string summary(const EpochMetrics& metrics);

}  // namespace dlwpt::training
