#include "dlwpt/training/chunk_dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include <torch/torch.h>

#include "dlwpt/ct/csv_table.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/training/seeds.h"

namespace dlwpt::training {

namespace fs = std::filesystem;

std::vector<LabelledCandidate> read_labelled_candidates(const std::string& path,
                                                        const std::string& label_column) {
  const auto table = ct::CsvTable::read(path, "candidates");
  const int uid = table.required_column("seriesuid");
  const int x = table.required_column("coordX");
  const int y = table.required_column("coordY");
  const int z = table.required_column("coordZ");
  const int label = table.required_column(label_column);
  std::vector<LabelledCandidate> candidates;
  candidates.reserve(table.rows());
  for (size_t row = 0; row < table.rows(); ++row) {
    candidates.push_back({table.text(row, uid),
                          {table.number(row, x), table.number(row, y), table.number(row, z)},
                          table.boolean(row, label)});
  }
  if (candidates.empty()) throw FileError("'" + path + "' lists no candidates");
  return candidates;
}

std::set<std::string> validation_series(const std::set<std::string>& series, int64_t stride) {
  TORCH_CHECK(stride >= 2, "the validation stride must be >= 2, got ", stride);
  std::set<std::string> validating;
  int64_t position = 0;
  for (const auto& uid : series) {
    if (position++ % stride == 0) validating.insert(uid);
  }
  return validating;
}

SeriesSplit split_by_series(const std::vector<LabelledCandidate>& candidates, int64_t stride) {
  std::set<std::string> series;
  for (const auto& candidate : candidates) series.insert(candidate.series_uid);
  const auto validating = validation_series(series, stride);
  SeriesSplit split;
  for (const auto& candidate : candidates) {
    (validating.count(candidate.series_uid) ? split.validation : split.training)
        .push_back(candidate);
  }
  TORCH_CHECK(!split.training.empty() && !split.validation.empty(), "splitting ", series.size(),
              " series with every ", stride,
              "th to validation leaves one side empty; more series are needed");
  return split;
}

ChunkDataset::ChunkDataset(std::vector<LabelledCandidate> candidates,
                           std::shared_ptr<ct::ScanLibrary> scans, const ChunkDatasetOptions& options)
    : candidates_(std::move(candidates)), scans_(std::move(scans)), options_(options) {
  TORCH_CHECK(!candidates_.empty(), "the chunk dataset is empty");
  TORCH_CHECK(options_.chunk_size().size() == 3, "chunk_size needs 3 sides");
  TORCH_CHECK(options_.balanced() >= 0 && options_.epoch_size() >= 0,
              "balanced and epoch_size must be >= 0");
  for (const auto& candidate : candidates_) {
    TORCH_CHECK(scans_->has(candidate.series_uid), "candidate of series ", candidate.series_uid,
                " has no scan among the ", scans_->size(), " scans given");
  }
  TORCH_CHECK(options_.balanced() == 0 || (positives() > 0 && negatives() > 0),
              "balancing needs positive and negative candidates; there are ", positives(),
              " and ", negatives());
  build_order(0);
}

ChunkDataset ChunkDataset::for_epoch(int64_t epoch) const {
  ChunkDataset copy = *this;
  copy.build_order(epoch);
  return copy;
}

int64_t ChunkDataset::positives() const {
  return std::count_if(candidates_.begin(), candidates_.end(),
                       [](const auto& candidate) { return candidate.positive; });
}

int64_t ChunkDataset::negatives() const {
  return static_cast<int64_t>(candidates_.size()) - positives();
}

void ChunkDataset::build_order(int64_t epoch) {
  epoch_ = epoch;
  std::mt19937_64 random(derived_seed(options_.seed(), epoch, kOrderStream));
  const size_t length = options_.epoch_size() > 0 ? static_cast<size_t>(options_.epoch_size())
                                                  : candidates_.size();
  order_.clear();
  if (options_.balanced() == 0) {
    std::vector<size_t> all(candidates_.size());
    std::iota(all.begin(), all.end(), 0);
    all = shuffled(std::move(all), random, options_.shuffle());
    for (size_t i = 0; i < length; ++i) order_.push_back(all[i % all.size()]);
    return;
  }
  std::vector<size_t> positive, negative;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    (candidates_[i].positive ? positive : negative).push_back(i);
  }
  positive = shuffled(std::move(positive), random, options_.shuffle());
  negative = shuffled(std::move(negative), random, options_.shuffle());
  // The book's LunaDataset.__getitem__ with ratio_int: every (N + 1)-th sample positive.
  const size_t period = static_cast<size_t>(options_.balanced()) + 1;
  for (size_t i = 0; i < length; ++i) {
    const size_t positive_index = i / period;
    order_.push_back(i % period == 0 ? positive[positive_index % positive.size()]
                                     : negative[(i - 1 - positive_index) % negative.size()]);
  }
}

torch::data::Example<> ChunkDataset::get(size_t index) {
  TORCH_CHECK(index < order_.size(), "sample ", index, " of an epoch of ", order_.size());
  const LabelledCandidate& candidate = candidates_[order_[index]];
  const auto volume = scans_->get(candidate.series_uid);
  if (!ct::nearest_voxel(candidate.center_xyz, *volume)) {
    throw ct::ScanError("candidate at (" + std::to_string(candidate.center_xyz[0]) + ", " +
                        std::to_string(candidate.center_xyz[1]) + ", " +
                        std::to_string(candidate.center_xyz[2]) + ") mm lies outside scan " +
                        candidate.series_uid);
  }
  const auto& size = options_.chunk_size();
  const ct::Irc center = ct::xyz_to_irc(candidate.center_xyz, volume->geometry);
  auto chunk = ct::candidate_chunk(volume->hu, center, {size[0], size[1], size[2]}).unsqueeze(0);
  if (options_.augmentation()) {
    std::mt19937_64 random(derived_seed(options_.seed(), epoch_, index));
    chunk = augment(chunk.unsqueeze(0), {}, *options_.augmentation(), random).input[0];
  }
  return {chunk, torch::tensor(candidate.positive ? int64_t{1} : int64_t{0})};
}

}  // namespace dlwpt::training
