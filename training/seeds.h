#pragma once

// Seeds for the datasets' randomness: each (run seed, epoch, sample) gets its own, so that an
// epoch can be replayed whatever ran before it and however many loader threads there are.

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace dlwpt::training {

/// SplitMix64's finaliser: well-mixed, independent values for nearby inputs.
inline uint64_t mix_seed(uint64_t value) {
  value += 0x9E3779B97F4A7C15ULL;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ULL;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBULL;
  return value ^ (value >> 31);
}

inline uint64_t derived_seed(uint64_t seed, int64_t epoch, uint64_t sample) {
  return mix_seed(mix_seed(mix_seed(seed) ^ static_cast<uint64_t>(epoch)) ^ sample);
}

/// The sample number of an epoch's shuffle, apart from every real sample's.
constexpr uint64_t kOrderStream = ~uint64_t{0};

/// `indices` in a random order drawn from `random`, or as they are without `shuffle`.
inline std::vector<size_t> shuffled(std::vector<size_t> indices, std::mt19937_64& random,
                                    bool shuffle) {
  if (shuffle) std::shuffle(indices.begin(), indices.end(), random);
  return indices;
}

/// The book's split: the series sorted by UID, every `stride`-th (0, stride, 2 stride, ...)
/// validates. Throws c10::Error for a stride below 2.
std::set<std::string> validation_series(const std::set<std::string>& series, int64_t stride);

}  // namespace dlwpt::training
