// The CPUs the apps size their threads by: the affinity mask and the cgroup CPU quota
// (apps/common/cpu_budget.h), read from cgroup trees written here as a container or a
// Kubernetes pod would see them.

#include <sched.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "apps/common/cpu_budget.h"
#include "test_support.h"

namespace dlwpt::apps {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

TEST(CpuBudget, CgroupV2QuotaOfTheGroupOrAnAncestorLimits) {
  const testing::TemporaryFolder folder;
  const fs::path root = folder.path("cgroup");
  write(root / "kubepods/pod1/cpu.max", "max 100000\n");
  write(root / "kubepods/pod1/app/cpu.max", "150000 100000\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/kubepods/pod1/app\n", root), 1.5);
  write(root / "kubepods/cpu.max", "100000 100000\n");  // a smaller quota above
  EXPECT_EQ(cgroup_cpu_quota("0::/kubepods/pod1/app\n", root), 1.0);
}

TEST(CpuBudget, NoQuotaWhenUnlimitedUnreadableOrMalformed) {
  const testing::TemporaryFolder folder;
  const fs::path root = folder.path("cgroup");
  EXPECT_EQ(cgroup_cpu_quota("0::/\n", root), std::nullopt);  // no cpu.max at all
  write(root / "a/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/a\n", root), std::nullopt);
  for (const char* garbage : {"", "200000", "2e5 100000", "200000 0", "-5 100000", "x y"}) {
    write(root / "a/cpu.max", garbage);
    EXPECT_EQ(cgroup_cpu_quota("0::/a\n", root), std::nullopt) << "cpu.max \"" << garbage << "\"";
  }
  EXPECT_EQ(cgroup_cpu_quota("not a cgroup file", root), std::nullopt);
  EXPECT_EQ(cgroup_cpu_quota("0::/../../etc\n", root), std::nullopt);
}

TEST(CpuBudget, CgroupV1QuotaUnderEitherMount) {
  const testing::TemporaryFolder folder;
  const fs::path root = folder.path("cgroup");
  const std::string self = "12:pids:/x\n4:cpu,cpuacct:/docker/abc\n0::/\n";
  write(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  write(root / "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_quota(self, root), std::nullopt);  // -1: no quota
  // In a container the mount's root is the container's own group, whatever path is named.
  write(root / "cpu/cpu.cfs_quota_us", "300000\n");
  write(root / "cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_quota(self, root), 3.0);
  // Another controller's line names no cpu quota.
  EXPECT_EQ(cgroup_cpu_quota("4:cpuset:/docker/abc\n", root), std::nullopt);
}

TEST(CpuBudget, QuotaRoundsUpAndOnlyLowersTheAffinityCount) {
  EXPECT_EQ(cpus_for(64, std::nullopt), 64);
  EXPECT_EQ(cpus_for(64, 2.0), 2);
  EXPECT_EQ(cpus_for(64, 1.5), 2);
  EXPECT_EQ(cpus_for(64, 0.25), 1);
  EXPECT_EQ(cpus_for(4, 16.0), 4);
  EXPECT_EQ(cpus_for(0, std::nullopt), 1);
}

TEST(CpuBudget, AffinityMaskCountsTheCpusThisThreadMayRunOn) {
  // A thread of its own, so that narrowing its mask leaves the other tests' threads alone.
  int narrowed = 0;
  int whole = 0;
  std::thread([&] {
    whole = affinity_cpu_count();
    cpu_set_t set;
    ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
    int first = 0;
    while (!CPU_ISSET(first, &set)) ++first;
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
    narrowed = affinity_cpu_count();
  }).join();
  EXPECT_EQ(narrowed, 1);
  EXPECT_GE(whole, 1);
  EXPECT_LE(whole, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_LE(available_cores(), whole);
}

}  // namespace
}  // namespace dlwpt::apps
