#include "dlwpt/training/metrics.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <torch/torch.h>

#include "dlwpt/weights/atomic_file.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt::training {

namespace {

double ratio(int64_t numerator, int64_t denominator) {
  return denominator > 0 ? static_cast<double>(numerator) / static_cast<double>(denominator) : 0.0;
}

int64_t count(const torch::Tensor& mask) { return mask.sum().item<int64_t>(); }

}  // namespace

void BinaryCounts::add(const torch::Tensor& predicted, const torch::Tensor& actual) {
  TORCH_CHECK(predicted.sizes() == actual.sizes(), "metrics: predictions ", predicted.sizes(),
              " and truth ", actual.sizes(), " differ in shape");
  const auto p = predicted.to(torch::kBool);
  const auto a = actual.to(torch::kBool);
  true_positives += count(p & a);
  false_positives += count(p & ~a);
  false_negatives += count(~p & a);
  true_negatives += count(~p & ~a);
}

BinaryCounts& BinaryCounts::operator+=(const BinaryCounts& other) {
  true_positives += other.true_positives;
  false_positives += other.false_positives;
  false_negatives += other.false_negatives;
  true_negatives += other.true_negatives;
  return *this;
}

int64_t BinaryCounts::total() const {
  return true_positives + false_positives + false_negatives + true_negatives;
}

double BinaryCounts::precision() const {
  return ratio(true_positives, true_positives + false_positives);
}

double BinaryCounts::recall() const {
  return ratio(true_positives, true_positives + false_negatives);
}

double BinaryCounts::f1() const {
  const double p = precision();
  const double r = recall();
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

void append_metrics_csv(const std::string& path, const EpochMetrics& m) {
  const bool is_new = !std::filesystem::exists(path);
  std::ofstream file(path, std::ios::app);
  if (!file) throw FileError("cannot write the metrics file '" + path + "'");
  if (is_new) {
    file << "epoch,phase,loss,precision,recall,f1,true_positives,false_positives,"
            "false_negatives,true_negatives,samples,seconds,samples_per_second\n";
  }
  char line[512];
  std::snprintf(line, sizeof line, "%lld,%s,%.8g,%.6f,%.6f,%.6f,%lld,%lld,%lld,%lld,%lld,%.3f,%.2f\n",
                static_cast<long long>(m.epoch), m.phase.c_str(), m.loss, m.counts.precision(),
                m.counts.recall(), m.counts.f1(), static_cast<long long>(m.counts.true_positives),
                static_cast<long long>(m.counts.false_positives),
                static_cast<long long>(m.counts.false_negatives),
                static_cast<long long>(m.counts.true_negatives), static_cast<long long>(m.samples),
                m.seconds, m.samples_per_second());
  file << line;
  if (!file.flush()) throw FileError("cannot write the metrics file '" + path + "'");
}

void truncate_metrics_csv(const std::string& path, int64_t last_epoch) {
  std::ifstream file(path);
  if (!file) {
    if (!std::filesystem::exists(path)) return;
    throw FileError("cannot read the metrics file '" + path + "'");
  }
  std::string kept;
  bool header = true;
  for (std::string line; std::getline(file, line);) {
    // A row begins with its epoch; a torn last row (no epoch, or one beyond) goes too.
    long long epoch = 0;
    const bool in_checkpoint = std::sscanf(line.c_str(), "%lld,", &epoch) == 1 &&
                               epoch >= 1 && epoch <= last_epoch && !file.eof();
    if (header || in_checkpoint) kept += line + "\n";
    header = false;
  }
  if (file.bad()) throw FileError("cannot read the metrics file '" + path + "'");
  write_file_atomically(path, kept);
}

std::string summary(const EpochMetrics& m) {
  char text[256];
  std::snprintf(text, sizeof text, "loss %.4f, precision %.3f, recall %.3f, F1 %.3f, %.1f samples/s",
                m.loss, m.counts.precision(), m.counts.recall(), m.counts.f1(),
                m.samples_per_second());
  return text;
}

}  // namespace dlwpt::training
