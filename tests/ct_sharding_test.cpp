// ct-segment's shards and run records: which process does which scan, and what --merge reads.

#include <filesystem>
#include <map>
#include <random>

#include <sys/stat.h>

#include "apps/ct_segment/merge.h"
#include "apps/ct_segment/run_records.h"
#include "apps/ct_segment/scan_output.h"
#include "apps/ct_segment/sharding.h"
#include "tests/test_support.h"

namespace dlwpt::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace dlwpt::ct_segment;

Environment environment_of(std::map<std::string, std::string> variables) {
  return [variables](const std::string& name) -> std::optional<std::string> {
    const auto found = variables.find(name);
    if (found == variables.end()) return std::nullopt;
    return found->second;
  };
}

Shard shard_for(std::map<std::string, std::string> variables, std::optional<std::string> flag = std::nullopt,
                std::optional<int64_t> count = std::nullopt) {
  return choose_shard(flag, count, environment_of(std::move(variables)));
}

const std::map<std::string, std::string> kSlurmTask{
    {"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_STEP", "2"},
    {"SLURM_ARRAY_TASK_COUNT", "5"}};

TEST(ScanSharding, TheShardComesFromTheFlagASlurmArrayOrAnIndexedJob) {
  const auto expect = [](const Shard& shard, int64_t index, int64_t count, const std::string& origin) {
    std::cout << shard.describe() << "\n";
    EXPECT_EQ(shard.index, index);
    EXPECT_EQ(shard.count, count);
    EXPECT_EQ(shard.origin, origin);
  };
  expect(shard_for({}), 0, 1, "");
  expect(shard_for({}, "2/8"), 2, 8, "--shard 2/8");
  // --array=1-9:2, task 7: the fourth task (index 3) of five.
  expect(shard_for(kSlurmTask), 3, 5, "SLURM_ARRAY_TASK_ID=7");
  expect(shard_for({{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_COUNT", "6"}}),
         4, 6, "SLURM_ARRAY_TASK_ID=4");
  expect(shard_for(kSlurmTask, std::nullopt, 4), 3, 4, "SLURM_ARRAY_TASK_ID=7");
  expect(shard_for({{"JOB_COMPLETION_INDEX", "9"}, {"DLWPT_SHARD_COUNT", "10"}}), 9, 10, "JOB_COMPLETION_INDEX=9");
  expect(shard_for({{"JOB_COMPLETION_INDEX", "0"}}, std::nullopt, 3), 0, 3, "JOB_COMPLETION_INDEX=0");
  // The flag wins over the environment; "all" is the whole batch inside an array.
  expect(shard_for(kSlurmTask, "0/2"), 0, 2, "--shard 0/2");
  expect(shard_for(kSlurmTask, "all"), 0, 1, "--shard all");
}

TEST(ScanSharding, MalformedOrInconsistentShardsAreRefusedByName) {
  const auto refusal = [](std::map<std::string, std::string> variables, std::optional<std::string> flag,
                          std::optional<int64_t> count) {
    return error_message_of<UsageError>([&] { shard_for(std::move(variables), flag, count); });
  };
  EXPECT_THAT(refusal({}, "3/3", {}), HasSubstr("indices count from 0 to 2"));
  EXPECT_THAT(refusal({}, "1/0", {}), HasSubstr("from 1 to"));
  EXPECT_THAT(refusal({}, "-1/4", {}), HasSubstr("must be K/N"));
  EXPECT_THAT(refusal({}, "2", {}), HasSubstr("must be K/N"));
  EXPECT_THAT(refusal({}, "1/99999999999999999999", {}), HasSubstr("must be K/N"));
  EXPECT_THAT(refusal({}, "1/4", 4), HasSubstr("drop --shard-count"));
  EXPECT_THAT(refusal({}, {}, 4), HasSubstr("needs a shard index"));
  EXPECT_THAT(refusal({{"SLURM_ARRAY_TASK_ID", "3"}}, {}, {}), HasSubstr("SLURM_ARRAY_TASK_MIN is not set"));
  // --array=1,5,6: task 6 is the third of three, but its ID says index 5.
  EXPECT_THAT(refusal({{"SLURM_ARRAY_TASK_ID", "6"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_COUNT", "3"}},
                      {}, {}),
              HasSubstr("give --shard K/N"));
  EXPECT_THAT(refusal({{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_STEP", "2"},
                       {"SLURM_ARRAY_TASK_COUNT", "9"}},
                      {}, {}),
              HasSubstr("is not on the range"));
  EXPECT_THAT(refusal({{"SLURM_ARRAY_TASK_ID", "x"}}, {}, {}), HasSubstr("SLURM_ARRAY_TASK_ID='x'"));
  EXPECT_THAT(refusal({{"JOB_COMPLETION_INDEX", "2"}}, {}, {}), HasSubstr("DLWPT_SHARD_COUNT"));
  EXPECT_THAT(refusal({{"JOB_COMPLETION_INDEX", "2"}, {"DLWPT_SHARD_COUNT", "2"}}, {}, {}),
              HasSubstr("index 2 of 2 shards"));
}

std::vector<ScanSource> luna_like_scans(int count) {
  std::mt19937_64 random(5);
  std::vector<ScanSource> scans;
  for (int i = 0; i < count; ++i) {
    // LUNA16's series UIDs share their first 31 characters.
    const std::string uid = "1.3.6.1.4.1.14519.5.2.1.6279.6001." + std::to_string(random() % 1000000000000ULL);
    scans.push_back({uid + ".mhd", nullptr, uid, "/data/" + uid + ".mhd", nullptr, ""});
  }
  return scans;
}

TEST(ScanSharding, ShardsPartitionTheScansEvenlyAndStably) {
  const auto scans = luna_like_scans(2000);
  for (int64_t count = 1; count <= 16; ++count) {
    std::map<std::string, int> seen;
    size_t smallest = scans.size(), largest = 0;
    for (int64_t index = 0; index < count; ++index) {
      const auto part = scans_of_shard(scans, {index, count, "test"});
      smallest = std::min(smallest, part.size());
      largest = std::max(largest, part.size());
      for (const auto& scan : part) ++seen[scan.series_uid];
    }
    ASSERT_EQ(seen.size(), scans.size()) << count << " shards";
    for (const auto& [uid, times] : seen) ASSERT_EQ(times, 1) << uid << " in " << count << " shards";
    // 2000 scans: a shard's size is binomial; 5 standard deviations of 16 shards is +-39%.
    const double mean = static_cast<double>(scans.size()) / count;
    std::cout << count << " shards: " << smallest << " .. " << largest << " scans (mean " << mean << ")\n";
    EXPECT_GE(smallest, 0.6 * mean);
    EXPECT_LE(largest, 1.4 * mean);
  }
  // The rule must not change between builds or hosts: pinned values.
  EXPECT_EQ(shard_of("scan0", 3), 0);
  EXPECT_EQ(shard_of("scan1", 3), 1);
  EXPECT_EQ(shard_of("scan4", 3), 2);
  EXPECT_EQ(shard_of("1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860", 16), 15);
  // Inputs that name no scan are sharded too, by a key made from the input.
  const ScanSource unreadable{"/no/such/scan.mhd", nullptr, "", "", nullptr, ""};
  EXPECT_EQ(scan_key(unreadable).rfind("input__no_such_scan.mhd-", 0), 0u) << scan_key(unreadable);
}

TEST(RunRecords, PlansAndFailuresRoundTrip) {
  TemporaryFolder folder;
  const auto scans = luna_like_scans(5);
  record_plan(folder.path("run"), scans, 3);
  record_plan(folder.path("run"), scans, 3);  // another task of the array: the same file
  EXPECT_EQ(std::distance(fs::directory_iterator(folder.path("run/.plans")), fs::directory_iterator()), 1);
  const auto plans = read_plans(folder.path("run"));
  ASSERT_EQ(plans.size(), 5u);
  for (const auto& scan : scans) {
    const auto& plan = plans.at(scan_key(scan));
    EXPECT_EQ(plan.label, scan.label);
    EXPECT_EQ(plan.shard, shard_of(scan_key(scan), 3));
    EXPECT_EQ(plan.shards, 3);
  }
  record_failure(folder.path("run"), "a", {"in\tput", "bad\nvoxels", "host pid 1"});
  record_failure(folder.path("run"), "b", {"other", "gone", "host pid 2"});
  clear_failure(folder.path("run"), "b");
  const auto failures = read_failures(folder.path("run"));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures.at("a").label, "in put");
  EXPECT_EQ(failures.at("a").message, "bad voxels");
  EXPECT_EQ(failures.at("a").who, "host pid 1");

  write_file(folder.path("run/.plans/broken.tsv"),
             "# ct-segment plan 1: key, shard, shards, input, listed from\nk\t1\tx\tin\t\n");
  EXPECT_THAT(error_message_of<FileError>([&] { read_plans(folder.path("run")); }),
              HasSubstr("broken.tsv' line 2: 'x' is not a whole number"));
  write_file(folder.path("run/.plans/broken.tsv"), "key\tshard\n");
  EXPECT_THAT(error_message_of<FileError>([&] { read_plans(folder.path("run")); }),
              HasSubstr("is not a ct-segment plan"));
}

std::string results_json(const std::string& uid, const std::string& id) {
  return "{\"series_uid\": \"" + uid + "\", \"candidates\": [{\"id\": " + id +
         ", \"center_irc\": [1, 2, 3], \"center_xyz\": [4, 5, 6], \"voxels\": 7, \"nodule_probability\": 0.75}]}";
}

// What --merge reads was written by other processes, or by hand: damaged results fail their
// scan, hostile records are refused by name before they are read, and the two tables are
// written both or neither.
TEST(RunRecords, MergeRefusesHostileRecordsAndDamagedResults) {
  TemporaryFolder folder;
  const std::string run = folder.path("run");
  std::vector<ScanSource> scans;
  for (const std::string uid : {"a", "b", "c"}) scans.push_back({uid + ".mhd", nullptr, uid, "/" + uid, nullptr, ""});
  record_plan(run, scans, 2);
  for (const std::string uid : {"a", "b"}) fs::create_directories(run + "/" + uid);
  write_file(run + "/a/candidates.json", results_json("a", "1"));
  write_file(run + "/b/candidates.json", results_json("other", "1"));  // another scan's results
  auto report = merge_run(run);
  ASSERT_EQ(report.scans.size(), 3u);
  EXPECT_EQ(report.scans[0].status, MergedScan::Status::done);
  EXPECT_EQ(report.scans[1].status, MergedScan::Status::failed);
  EXPECT_THAT(report.scans[1].detail, HasSubstr("names series 'other'"));
  EXPECT_EQ(report.scans[2].status, MergedScan::Status::missing);
  EXPECT_EQ(read_text(run + "/candidates.csv"),
            "series_uid,id,index,row,column,x_mm,y_mm,z_mm,voxels,nodule_probability\na,1,1,2,3,4,5,6,7,0.75\n");

  write_file(run + "/a/candidates.json", results_json("a", "1e300"));  // no integer
  report = merge_run(run);
  EXPECT_EQ(report.scans[0].status, MergedScan::Status::failed);
  EXPECT_THAT(report.scans[0].detail, HasSubstr("'id' is 1e+300, not a count"));
  write_file(run + "/a/candidates.json", results_json("a", "1"));

  // A FIFO would block its reader forever, a huge record fill the memory.
  fs::create_directories(run + "/.failed");
  ASSERT_EQ(::mkfifo((run + "/.failed/c.txt").c_str(), 0600), 0);
  EXPECT_THAT(error_message_of<FileError>([&] { merge_run(run); }), HasSubstr("c.txt' is not a regular file"));
  fs::remove(run + "/.failed/c.txt");
  write_file(run + "/.failed/c.txt", std::string(100000, 'x'));
  EXPECT_THAT(error_message_of<FileError>([&] { merge_run(run); }), HasSubstr("more than a failure record can be"));
  fs::remove(run + "/.failed/c.txt");

  // A folder in the way of one table: neither is written.
  fs::remove(run + "/candidates.csv");
  fs::remove(run + "/scans.csv");
  fs::create_directories(run + "/scans.csv/x");
  EXPECT_THAT(error_message_of<FileError>([&] { merge_run(run); }), HasSubstr("is in the way of the merged table"));
  EXPECT_FALSE(fs::exists(run + "/candidates.csv"));
  // The tables' names are never a scan's folder.
  EXPECT_NE(scan_folder_name("scans.csv"), "scans.csv");
  EXPECT_NE(scan_folder_name("candidates.csv"), "candidates.csv");
}

}  // namespace
}  // namespace dlwpt::testing
