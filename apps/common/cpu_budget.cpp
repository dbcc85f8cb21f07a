#include "apps/common/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace dlwpt::apps {

namespace {

namespace fs = std::filesystem;

std::optional<std::string> first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<int64_t> integer(std::string_view text) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> quota_over_period(std::optional<int64_t> quota, std::optional<int64_t> period) {
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;  // v1 writes -1 for none
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

// cgroup v2: cpu.max holds "max 100000" (no limit) or "<quota> <period>".
std::optional<double> v2_quota(const fs::path& group) {
  const auto line = first_line(group / "cpu.max");
  if (!line) return std::nullopt;
  std::istringstream fields(*line);
  std::string quota;
  std::string period;
  fields >> quota >> period;
  return quota_over_period(integer(quota), integer(period));
}

std::optional<double> v1_quota(const fs::path& group) {
  const auto quota = first_line(group / "cpu.cfs_quota_us");
  const auto period = first_line(group / "cpu.cfs_period_us");
  if (!quota || !period) return std::nullopt;
  return quota_over_period(integer(*quota), integer(*period));
}

// The smallest quota of `group` and its ancestors under `mount`.
std::optional<double> smallest_quota(const fs::path& mount, const std::string& group,
                                     std::optional<double> (*quota_of)(const fs::path&)) {
  std::vector<fs::path> levels{mount};
  for (const auto& part : fs::path(group).lexically_normal().relative_path()) {
    if (part == "..") return std::nullopt;  // not a path the kernel writes
    levels.push_back(levels.back() / part);
  }
  std::optional<double> smallest;
  for (const auto& level : levels) {
    const auto quota = quota_of(level);
    if (quota && (!smallest || *quota < *smallest)) smallest = quota;
  }
  return smallest;
}

bool names_cpu_controller(const std::string& controllers) {
  std::istringstream list(controllers);
  std::string controller;
  while (std::getline(list, controller, ',')) {
    if (controller == "cpu") return true;
  }
  return false;
}

std::string read_whole(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<double> process_cpu_quota() {
  return cgroup_cpu_quota(read_whole("/proc/self/cgroup"), "/sys/fs/cgroup");
}

}  // namespace

int affinity_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));  // over 1024 CPUs
}

std::optional<double> cgroup_cpu_quota(const std::string& proc_self_cgroup, const fs::path& cgroup_root) {
  std::optional<double> smallest;
  const auto keep = [&](std::optional<double> quota) {
    if (quota && (!smallest || *quota < *smallest)) smallest = quota;
  };
  // Lines are "hierarchy-id:controllers:path"; cgroup v2's is "0::path".
  std::istringstream lines(proc_self_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string group = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      keep(smallest_quota(cgroup_root, group, v2_quota));
      keep(smallest_quota(cgroup_root / "unified", group, v2_quota));
    } else if (names_cpu_controller(controllers)) {
      keep(smallest_quota(cgroup_root / "cpu,cpuacct", group, v1_quota));
      keep(smallest_quota(cgroup_root / "cpu", group, v1_quota));
    }
  }
  return smallest;
}

int cpus_for(int affinity_cpus, std::optional<double> quota) {
  int cpus = std::max(1, affinity_cpus);
  if (quota && *quota > 0 && *quota < cpus) cpus = static_cast<int>(std::ceil(*quota));
  return std::max(1, cpus);
}

int available_cores() { return cpus_for(affinity_cpu_count(), process_cpu_quota()); }

std::string cpu_budget_description() {
  const int affinity = affinity_cpu_count();
  const auto quota = process_cpu_quota();
  const int cpus = cpus_for(affinity, quota);
  std::ostringstream text;
  text << cpus << (cpus == 1 ? " CPU" : " CPUs") << " (";
  if (quota) text << "cgroup CPU quota " << *quota << "; ";
  text << affinity << " in the affinity mask, " << std::thread::hardware_concurrency() << " online)";
  return text.str();
}

}  // namespace dlwpt::apps
