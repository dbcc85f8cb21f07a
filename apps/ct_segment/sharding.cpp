#include "apps/ct_segment/sharding.h"

#include <cstdlib>
#include <string>

#include "apps/ct_segment/scan_output.h"
#include "dlwpt/weights/errors.h"

namespace dlwpt::ct_segment {

namespace {

// A whole non-negative decimal number, or nullopt for anything else ("", "-1", "3x", "1e3").
std::optional<int64_t> parse_count(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

constexpr const char* kNotANumber = "' is not a whole number from 0 to 10^18";

int64_t required_number(const Environment& environment, const std::string& name) {
  const auto text = environment(name);
  if (!text) throw UsageError(name + " is not set, but SLURM_ARRAY_TASK_ID is (is this a job array?)");
  const auto value = parse_count(*text);
  if (!value) throw UsageError(name + "='" + *text + kNotANumber);
  return *value;
}

void check_count(int64_t count, const std::string& what) {
  if (count < 1 || count > kMaxShards) {
    throw UsageError(what + " must be a shard count from 1 to " + std::to_string(kMaxShards) + ", not " +
                     std::to_string(count));
  }
}

Shard checked(Shard shard) {
  check_count(shard.count, shard.origin);
  if (shard.index < 0 || shard.index >= shard.count) {
    throw UsageError(shard.origin + " gives shard index " + std::to_string(shard.index) + " of " +
                     std::to_string(shard.count) + " shards (indices count from 0 to " +
                     std::to_string(shard.count - 1) + ")");
  }
  return shard;
}

Shard shard_from_flag(const std::string& flag) {
  const auto slash = flag.find('/');
  const auto index = parse_count(flag.substr(0, slash));
  const auto count = slash == std::string::npos ? std::nullopt : parse_count(flag.substr(slash + 1));
  if (!index || !count) {
    throw UsageError("--shard must be K/N (shard K of N, K from 0 to N-1) or 'all', not '" + flag + "'");
  }
  return checked({*index, *count, "--shard " + flag});
}

Shard shard_from_slurm(const std::string& task_id, const std::optional<int64_t>& count_flag,
                       const Environment& environment) {
  const auto id = parse_count(task_id);
  if (!id) throw UsageError("SLURM_ARRAY_TASK_ID='" + task_id + kNotANumber);
  const int64_t first = required_number(environment, "SLURM_ARRAY_TASK_MIN");
  const auto step_text = environment("SLURM_ARRAY_TASK_STEP");
  const int64_t step = step_text ? required_number(environment, "SLURM_ARRAY_TASK_STEP") : 1;
  const int64_t count = count_flag ? *count_flag : required_number(environment, "SLURM_ARRAY_TASK_COUNT");
  const std::string origin = "SLURM_ARRAY_TASK_ID=" + task_id;
  if (step < 1) throw UsageError("SLURM_ARRAY_TASK_STEP must be at least 1, not " + std::to_string(step));
  if (*id < first) {
    throw UsageError(origin + " is below SLURM_ARRAY_TASK_MIN=" + std::to_string(first));
  }
  if ((*id - first) % step != 0) {
    throw UsageError(origin + " is not on the range SLURM_ARRAY_TASK_MIN=" + std::to_string(first) +
                     " step " + std::to_string(step) +
                     ": an array of listed task IDs cannot be sharded by its IDs, give --shard K/N");
  }
  check_count(count, count_flag ? "--shard-count" : "SLURM_ARRAY_TASK_COUNT");
  const int64_t index = (*id - first) / step;
  if (index >= count) {
    throw UsageError(origin + " is task " + std::to_string(index + 1) + " of an array of " + std::to_string(count) +
                     " tasks: its task IDs are no range (such as 0-9 or 1-9:2), give --shard K/N");
  }
  return checked({index, count, origin});
}

Shard shard_from_indexed_job(const std::string& index_text, const std::optional<int64_t>& count_flag,
                             const Environment& environment) {
  const std::string origin = "JOB_COMPLETION_INDEX=" + index_text;
  const auto index = parse_count(index_text);
  if (!index) throw UsageError("JOB_COMPLETION_INDEX='" + index_text + kNotANumber);
  std::optional<int64_t> count = count_flag;
  if (!count) {
    const auto text = environment("DLWPT_SHARD_COUNT");
    if (!text) {
      throw UsageError(origin + " is set but no shard count is: give --shard-count or DLWPT_SHARD_COUNT "
                       "(the Indexed Job's completions)");
    }
    count = parse_count(*text);
    if (!count) throw UsageError("DLWPT_SHARD_COUNT='" + *text + kNotANumber);
    check_count(*count, "DLWPT_SHARD_COUNT");
  }
  return checked({*index, *count, origin});
}

}  // namespace

std::string Shard::describe() const {
  if (whole()) return "all scans";
  return "shard " + std::to_string(index) + "/" + std::to_string(count) + " (" + origin + ")";
}

Environment process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

Shard choose_shard(const std::optional<std::string>& flag, const std::optional<int64_t>& count_flag,
                   const Environment& environment) {
  if (count_flag) check_count(*count_flag, "--shard-count");
  if (flag) {
    if (count_flag) throw UsageError("--shard K/N gives the count itself: drop --shard-count");
    if (*flag == "all") return {0, 1, "--shard all"};
    return shard_from_flag(*flag);
  }
  if (const auto task = environment("SLURM_ARRAY_TASK_ID")) return shard_from_slurm(*task, count_flag, environment);
  if (const auto index = environment("JOB_COMPLETION_INDEX")) {
    return shard_from_indexed_job(*index, count_flag, environment);
  }
  if (count_flag) {
    throw UsageError("--shard-count needs a shard index from a job array (SLURM_ARRAY_TASK_ID or "
                     "JOB_COMPLETION_INDEX); outside one give --shard K/N");
  }
  return {};
}

std::string shard_key(const ScanSource& scan) {
  return scan.listed_from.empty() ? scan_key(scan) : scan.listed_from;
}

int64_t shard_of(const std::string& key, int64_t count) {
  // FNV-1a's low bits follow the last characters closely; murmur3's finalizer spreads them.
  uint64_t hash = stable_hash(key);
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdULL;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ULL;
  hash ^= hash >> 33;
  return static_cast<int64_t>(hash % static_cast<uint64_t>(count));
}

std::vector<ScanSource> scans_of_shard(const std::vector<ScanSource>& scans, const Shard& shard) {
  std::vector<ScanSource> mine;
  for (const auto& scan : scans) {
    if (shard_of(shard_key(scan), shard.count) == shard.index) mine.push_back(scan);
  }
  return mine;
}

}  // namespace dlwpt::ct_segment
