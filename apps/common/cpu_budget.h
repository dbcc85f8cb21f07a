#pragma once

// How many CPUs this process may really use. std::thread::hardware_concurrency() counts the
// machine's online CPUs; a process in a Slurm job, a `taskset` or a `docker --cpuset-cpus`
// may run on fewer (its affinity mask), and one in a Kubernetes pod with a CPU limit (or
// `docker --cpus`) gets a share of the CPU time of fewer (its cgroup's CPU quota). Sizing
// thread pools by the machine there runs, say, 64 intra-op threads in a quota of 2 CPUs: the
// scheduler throttles the process for most of each period, and OpenMP's barriers wait for
// threads that are not running.

#include <filesystem>
#include <optional>
#include <string>

namespace dlwpt::apps {

/// CPUs in the calling thread's affinity mask (the machine's online CPUs if it cannot be read).
int affinity_cpu_count();

/// The CPU quota of the cgroup that `proc_self_cgroup` (the text of /proc/self/cgroup) places
/// the process in, in CPUs (quota over period, possibly fractional), under the cgroup file
/// systems mounted at `cgroup_root` (/sys/fs/cgroup): cgroup v2's `cpu.max` (at the root, or
/// at `unified/` on hybrid systems) and v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us`
/// (under `cpu,cpuacct/` or `cpu/`). The process's group and every ancestor up to the mount's
/// root count, and the smallest quota wins (in a container the mount's root is the
/// container's own group, whatever path /proc/self/cgroup names). nullopt without a quota or
/// when nothing can be read: the quota only ever lowers the count.
std::optional<double> cgroup_cpu_quota(const std::string& proc_self_cgroup, const std::filesystem::path& cgroup_root);

/// The CPUs this process may use: its affinity mask, lowered to its cgroup CPU quota rounded
/// up; at least 1.
int cpus_for(int affinity_cpus, std::optional<double> quota);

/// The CPUs this process may use, as cpus_for its affinity mask and its cgroup's quota; the
/// apps' thread counts and dlwpt-serve's model placement start from it.
int available_cores();

/// A line for the logs: "2 CPUs (cgroup CPU quota 1.5; 64 in the affinity mask)".
std::string cpu_budget_description();

}  // namespace dlwpt::apps
