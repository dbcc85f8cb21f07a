// The ct-segment app: a batch with good and bad scans, outputs, resume, scoring.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "apps/common/image_io.h"
#include "apps/ct_segment/report.h"
#include "dlwpt/ct/csv_table.h"
#include "dlwpt/ct/scoring.h"
#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/models/inference.h"
#include "tests/test_support.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Runs ct-segment with `arguments`; returns the exit status, output in `log`. `shell_prefix`
// runs before it in the same shell (e.g. "ulimit -f 96; ").
int run_tool(const std::string& arguments, const TemporaryFolder& folder, std::string* log = nullptr,
             const std::string& shell_prefix = "") {
  const std::string command = shell_prefix + "'" + binary_dir() + "/apps/ct-segment' " + arguments + " > '" +
                              folder.path("log.txt") + "' 2>&1";
  const int status = run_command(command);
  const std::string output = read_text(folder.path("log.txt"));
  std::cout << "$ " << command << "\n" << output;
  if (log) *log = output;
  return status;
}

// Runs ct-segment on one thread with the seeded reference models.
int run_ct_segment(const std::string& arguments, const TemporaryFolder& folder, std::string* log = nullptr,
                   const std::string& shell_prefix = "") {
  return run_tool("--segmentation '" + reference_path("unet_book.pt") + "' --classifier '" +
                      reference_path("luna.pt") + "' --threads 1 " + arguments,
                  folder, log, shell_prefix);
}

void write_phantom(const std::string& path, int slices) {
  const std::string command = "'" + python() + "' '" + source_dir() + "/tools/testing/ct_phantom.py' '" +
                              path + "' --slices " + std::to_string(slices) + " --size 64";
  ASSERT_EQ(run_command(command), 0) << command;
}

TEST(CtSegmentApp, BatchReportsBadScansAndFinishesTheOthers) {
  TemporaryFolder folder;
  const std::string scans = folder.path("scans");
  fs::create_directories(scans);
  write_phantom(scans + "/good.mhd", 36);
  write_phantom(scans + "/thin.mhd", 6);            // fewer than 7 slices
  write_phantom(scans + "/truncated.mhd", 36);
  fs::resize_file(scans + "/truncated.raw", 1000);  // truncated data
  write_phantom(scans + "/orphan.mhd", 36);
  fs::remove(scans + "/orphan.raw");                // data file missing
  write_file(scans + "/flat.mhd", "ObjectType = Image\nNDims = 2\nDimSize = 4 4\n"
                                  "ElementType = MET_UCHAR\nElementDataFile = flat.raw\n");
  write_file(scans + "/flat.raw", std::string(16, '\0'));
  write_file(scans + "/huge.mhd", "ObjectType = Image\nNDims = 3\nDimSize = 90000 90000 900\n"
                                  "ElementType = MET_SHORT\nElementDataFile = huge.raw\n");
  write_file(folder.path("list.txt"), "# scans\n" + scans + "\n\n" + folder.path("absent.mhd") + "\n");

  std::string log;
  EXPECT_EQ(run_ct_segment("@'" + folder.path("list.txt") + "' -o '" + folder.path("out") +
                               "' --previews 2 --probability --volume",
                           folder, &log),
            1);
  EXPECT_THAT(log, HasSubstr("thin has 6 slices; the segmentation needs at least 7"));
  EXPECT_THAT(log, HasSubstr("truncated.raw' is truncated"));
  EXPECT_THAT(log, HasSubstr("orphan.raw' does not exist"));
  EXPECT_THAT(log, HasSubstr("is 2D; a CT volume must be 3D"));
  EXPECT_THAT(log, HasSubstr("more than the limit of 268435456 (--max-voxels raises it)"));
  EXPECT_THAT(log, HasSubstr("absent.mhd' does not exist"));
  EXPECT_THAT(log, HasSubstr("7 scans, 6 failed"));

  // The good scan's outputs equal the library's analysis of it, with the models prepared as
  // the app prepares them.
  const std::string result = folder.path("out/good");
  ct::AnalysisModels models;
  models.segmentation =
      optimize_for_inference(weights::load_model<UNetWrapper>(reference_path("unet_book.pt")));
  models.nodule = optimize_for_inference(weights::load_model<LunaModel>(reference_path("luna.pt")));
  const auto volume = ct::read_metaimage(scans + "/good.mhd");
  const auto analysis = ct::analyse_scan(models, volume);
  const auto mask = ct::read_metaimage(result + "/mask.mhd");
  EXPECT_TRUE(torch::equal(mask.hu, analysis.mask.to(torch::kFloat)));
  EXPECT_EQ(mask.geometry.direction, volume.geometry.direction);
  EXPECT_EQ(mask.geometry.origin, volume.geometry.origin);
  // Both on one thread (the seeded U-Net's activations on HU-scale input are large enough
  // for a different thread count's summation order to show at 1e-5).
  const auto probability_closeness = closeness(ct::read_metaimage(result + "/probability.mhd").hu,
                                              analysis.probability, kProbabilityTolerance);
  std::cout << "app probability vs library probability: " << probability_closeness << "\n";
  EXPECT_TRUE(probability_closeness.within) << probability_closeness;
  const auto sorted = ct_segment::by_probability(analysis.candidates);
  EXPECT_EQ(read_text(result + "/candidates.csv"), ct_segment::candidates_csv(sorted, false));
  EXPECT_THAT(read_text(result + "/candidates.json"), HasSubstr("\"series_uid\": \"good\""));
  EXPECT_TRUE(torch::equal(ct::read_metaimage(result + "/volume.mhd").hu, volume.hu));
  int64_t previews = 0;
  for (const auto& entry : fs::directory_iterator(result + "/previews")) {
    if (entry.path().extension() != ".png") continue;
    ++previews;
    const apps::RgbImage preview = apps::load_image(entry.path().string());  // strict reader
    EXPECT_EQ(preview.width, volume.hu.size(2)) << entry.path();
    EXPECT_EQ(preview.height, volume.hu.size(1)) << entry.path();
  }
  EXPECT_EQ(previews, std::min<int64_t>(2, static_cast<int64_t>(sorted.size())));
  for (const auto& entry : fs::directory_iterator(folder.path("out"))) {
    const std::string name = entry.path().filename().string();
    // The claim locks stay (scan_output.h), the plan and failures are recorded (run_records.h).
    if (name == ".claims" || name == ".plans" || name == ".failed") continue;
    EXPECT_EQ(name, "good") << "only complete scans have folders";
  }
  std::cout << "good: " << sorted.size() << " candidates\n";
}

TEST(CtSegmentApp, CompleteScansAreSkippedAndPartialOnesRedone) {
  TemporaryFolder folder;
  write_phantom(folder.path("a.mhd"), 20);
  write_phantom(folder.path("b.mhd"), 20);
  const std::string args = "'" + folder.path("a.mhd") + "' '" + folder.path("b.mhd") + "' -o '" + folder.path("out") + "'";
  ASSERT_EQ(run_ct_segment(args, folder), 0);
  const auto written = fs::last_write_time(folder.path("out/a/candidates.csv"));
  // An interrupted run leaves b's outputs only in its hidden partial folder. A complete scan
  // is skipped without being read again: a's data file may even be gone by now.
  const std::string partial = folder.path("out/.b.partial-otherhost-123-0");
  fs::rename(folder.path("out/b"), partial);
  fs::rename(folder.path("a.raw"), folder.path("a.raw.away"));
  std::string log;
  ASSERT_EQ(run_ct_segment(args, folder, &log), 0);
  EXPECT_THAT(log, HasSubstr("skipped (complete)"));
  EXPECT_EQ(fs::last_write_time(folder.path("out/a/candidates.csv")), written);
  EXPECT_TRUE(fs::exists(folder.path("out/b/candidates.csv")));
  EXPECT_FALSE(fs::exists(partial)) << "a crashed run's partial folder is cleaned up";
  fs::rename(folder.path("a.raw.away"), folder.path("a.raw"));
  ASSERT_EQ(run_ct_segment(args + " --force", folder, &log), 0);
  EXPECT_THAT(log, ::testing::Not(HasSubstr("skipped")));
}

// The folders of a run's complete scans, and whether anything else hidden but the run's
// records (claims, plans, failures) is left.
std::vector<std::string> result_folders(const std::string& output, bool* leftovers) {
  std::vector<std::string> names;
  bool hidden = false;
  for (const auto& entry : fs::directory_iterator(output)) {
    const std::string name = entry.path().filename().string();
    if (name == ".claims" || name == ".plans" || name == ".failed") continue;
    if (name[0] == '.') hidden = true;
    else if (entry.is_directory()) names.push_back(name);
  }
  if (leftovers) *leftovers = hidden;
  std::sort(names.begin(), names.end());
  return names;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

// Several processes on one input list and one output folder: each scan is analysed by exactly
// one of them, and the results equal a single run's.
TEST(CtSegmentApp, ConcurrentRunsDoEveryScanOnce) {
  TemporaryFolder folder;
  std::string list;
  for (int i = 0; i < 6; ++i) {
    const std::string scan = folder.path("scan" + std::to_string(i) + ".mhd");
    write_phantom(scan, 10 + i);
    list += scan + "\n";
  }
  write_file(folder.path("list.txt"), list);
  const std::string tool = "'" + binary_dir() + "/apps/ct-segment' --segmentation '" +
                           reference_path("unet_book.pt") + "' --classifier '" +
                           reference_path("luna.pt") + "' --threads 1 @'" + folder.path("list.txt") + "'";
  ASSERT_EQ(run_command(tool + " -o '" + folder.path("single") + "' > /dev/null 2>&1"), 0);
  for (const int processes : {2, 4}) {
    for (int trial = 0; trial < 2; ++trial) {
      const std::string output = folder.path("out" + std::to_string(processes) + "_" + std::to_string(trial));
      std::string command = "(";
      for (int p = 0; p < processes; ++p) {
        command += tool + " -o '" + output + "' > '" + folder.path("log" + std::to_string(p)) + "' 2>&1 & ";
      }
      command += "wait)";
      run_command(command);
      std::string logs;
      for (int p = 0; p < processes; ++p) logs += read_text(folder.path("log" + std::to_string(p)));
      bool leftovers = false;
      const auto folders = result_folders(output, &leftovers);
      const size_t analysed = count_of(logs, " -> " + output + "/");
      std::cout << processes << " processes, trial " << trial << ": " << folders.size()
                << " scan folders, " << analysed << " analyses, "
                << count_of(logs, "skipped (in progress") << " skipped as in progress, "
                << count_of(logs, "FAILED") << " failures\n";
      EXPECT_EQ(folders.size(), 6u);
      EXPECT_EQ(analysed, 6u) << logs;
      EXPECT_FALSE(leftovers) << "no partial folder may remain";
      EXPECT_EQ(count_of(logs, "FAILED"), 0u) << logs;
      for (const auto& name : folders) {
        EXPECT_EQ(read_text(output + "/" + name + "/candidates.csv"),
                  read_text(folder.path("single/" + name + "/candidates.csv"))) << name;
        EXPECT_TRUE(torch::equal(ct::read_metaimage(output + "/" + name + "/mask.mhd").hu,
                                 ct::read_metaimage(folder.path("single/" + name + "/mask.mhd")).hu))
            << name;
      }
    }
  }
}

// Every shard count from 1 to the number of scans: the shards' results, merged, are those of
// one run, and the merge names the failed scan; with a shard not run, its scans are missing. A
// DICOM folder is listed only by the process whose shard holds it.
TEST(CtSegmentApp, ShardedRunsMergeIntoTheResultsOfOneRun) {
  TemporaryFolder folder;
  fs::create_directories(folder.path("scans"));
  for (int i = 0; i < 6; ++i) write_phantom(folder.path("scans/scan" + std::to_string(i) + ".mhd"), 10 + i);
  write_file(folder.path("scans/corrupt.mhd"), "NDims = 3\nDimSize = 64 64 10\nElementType = MET_SHORT\n"
                                                 "ElementDataFile = corrupt.raw\n");
  write_file(folder.path("scans/corrupt.raw"), std::string(100, '\0'));
  ASSERT_EQ(run_command("'" + python() + "' '" + source_dir() + "/tools/testing/dicom_phantom.py' '" +
                        folder.path("dicom") + "' --slices 10 --size 64 > /dev/null"), 0);
  const std::string inputs = "'" + folder.path("scans") + "' '" + folder.path("dicom") + "' ";
  std::string log;
  ASSERT_EQ(run_ct_segment(inputs + "-o '" + folder.path("single") + "'", folder), 1);
  ASSERT_EQ(run_tool("--merge '" + folder.path("single") + "'", folder, &log), 1);
  EXPECT_THAT(log, HasSubstr("8 scans: 7 done, 1 failed, 0 missing"));
  const std::string single = read_text(folder.path("single/candidates.csv"));
  EXPECT_GT(count_of(single, "\nscan5,"), 0u) << "every row starts with its scan's series UID";

  for (int count = 1; count <= 8; ++count) {
    const std::string output = folder.path("sharded" + std::to_string(count));
    size_t analysed = 0, dicom_listings = 0;
    for (int index = 0; index < count; ++index) {
      run_ct_segment(inputs + "--shard " + std::to_string(index) + "/" + std::to_string(count) + " -o '" + output + "'",
                     folder, &log);
      analysed += count_of(log, " -> " + output + "/");
      dicom_listings += count_of(log, "(series ");
    }
    EXPECT_EQ(analysed, 7u) << count << " shards";
    EXPECT_EQ(dicom_listings, 1u) << count << " shards: only the DICOM folder's shard lists it";
    ASSERT_EQ(run_tool("--merge '" + output + "'", folder, &log), 1);
    EXPECT_THAT(log, HasSubstr("8 scans: 7 done, 1 failed, 0 missing"));
    EXPECT_EQ(read_text(output + "/candidates.csv"), single) << count << " shards";
    for (const auto& name : result_folders(folder.path("single"), nullptr)) {
      EXPECT_EQ(read_text(output + "/" + name + "/mask.raw"), read_text(folder.path("single/" + name + "/mask.raw")))
          << count << " shards, " << name;
    }
  }

  // Shard 2/3 never ran: its scans are missing, by name and shard; exit status 1.
  const std::string partial = folder.path("partial");
  for (const char* shard : {"0/3", "1/3"}) run_ct_segment(inputs + "--shard " + shard + " -o '" + partial + "'", folder);
  ASSERT_EQ(run_tool("--merge '" + partial + "' --all-scans", folder, &log), 1);
  const size_t missing = count_of(log, "completed it (shard 2/3)");
  EXPECT_GT(missing, 0u);
  EXPECT_THAT(log, HasSubstr(std::to_string(missing) + " missing"));
  EXPECT_THAT(read_text(partial + "/scans.csv"), HasSubstr(",missing,2/3,"));
  // The missing shard, run late, completes the run.
  run_ct_segment(inputs + "--shard 2/3 -o '" + partial + "'", folder);
  ASSERT_EQ(run_tool("--merge '" + partial + "'", folder, &log), 1);
  EXPECT_THAT(log, HasSubstr("8 scans: 7 done, 1 failed, 0 missing"));
  EXPECT_EQ(read_text(partial + "/candidates.csv"), single);
  // A failed scan, repaired and rerun, is done and no longer reported failed.
  fs::remove(folder.path("scans/corrupt.mhd"));
  fs::copy_file(folder.path("scans/scan0.mhd"), folder.path("scans/corrupt.mhd"));
  ASSERT_EQ(run_ct_segment(inputs + "-o '" + partial + "'", folder), 0);
  ASSERT_EQ(run_tool("--merge '" + partial + "'", folder, &log), 0);
  EXPECT_THAT(log, HasSubstr("8 scans: 8 done, 0 failed, 0 missing"));
}

// The classifier in bfloat16 leaves the mask as float32 makes it, and its probabilities within
// a few hundredths (the real CT's figures are in README); an unknown precision is refused.
TEST(CtSegmentApp, ClassifierInBFloat16KeepsTheMaskAndNearlyTheProbabilities) {
  TemporaryFolder folder;
  write_phantom(folder.path("scan.mhd"), 24);
  const std::string scan = "'" + folder.path("scan.mhd") + "' ";
  std::string log;
  if (const auto reason = bfloat16_unsupported_reason()) {
    EXPECT_EQ(run_ct_segment(scan + "--precision bfloat16 -o '" + folder.path("reduced") + "'", folder, &log), 2);
    EXPECT_THAT(log, HasSubstr("bfloat16 inference: "));
    return;
  }
  // The book's trained classifier when the data was there for the references: its
  // probabilities are not all 0 or 1, as the seeded one's are on phantoms.
  const std::string trained = fs::exists(reference_path("book_cls.pt")) ? reference_path("book_cls.pt") : "";
  const std::string classifier = trained.empty() ? "" : "--classifier '" + trained + "' ";
  ASSERT_EQ(run_ct_segment(scan + classifier + "-o '" + folder.path("exact") + "'", folder), 0);
  ASSERT_EQ(run_ct_segment(scan + classifier + "--classifier-precision bfloat16 -o '" + folder.path("reduced") + "'",
                           folder, &log), 0);
  EXPECT_THAT(log, HasSubstr("U-Net in float32, classifier in bfloat16"));
  EXPECT_EQ(read_text(folder.path("reduced/scan/mask.raw")), read_text(folder.path("exact/scan/mask.raw")));
  const auto exact = ct::CsvTable::read(folder.path("exact/scan/candidates.csv"));
  const auto reduced = ct::CsvTable::read(folder.path("reduced/scan/candidates.csv"));
  ASSERT_EQ(reduced.rows(), exact.rows());
  std::map<std::string, double> probabilities;
  const int id = exact.required_column("id"), probability = exact.required_column("nodule_probability");
  for (size_t row = 0; row < exact.rows(); ++row) probabilities[exact.text(row, id)] = exact.number(row, probability);
  double worst = 0;
  for (size_t row = 0; row < reduced.rows(); ++row) {
    worst = std::max(worst, std::abs(reduced.number(row, probability) - probabilities.at(reduced.text(row, id))));
  }
  std::cout << exact.rows() << " candidates, largest probability difference " << worst << "\n";
  EXPECT_LE(worst, 0.05);
  EXPECT_EQ(run_ct_segment(scan + "--precision float16 -o '" + folder.path("bad") + "'", folder, &log), 2);
  EXPECT_THAT(log, HasSubstr("precision 'float16' is none of float32, bfloat16"));
}

// kill -9 in the middle of a batch: no folder under a final name is incomplete, and a rerun
// redoes only the scans that were not finished.
TEST(CtSegmentApp, KilledRunIsResumedWithoutRedoingFinishedScans) {
  TemporaryFolder folder;
  std::string list;
  for (int i = 0; i < 4; ++i) {
    const std::string scan = folder.path("scan" + std::to_string(i) + ".mhd");
    write_phantom(scan, 40);
    list += scan + "\n";
  }
  write_file(folder.path("list.txt"), list);
  const std::string args = "@'" + folder.path("list.txt") + "' -o '" + folder.path("out") + "'";
  const std::string tool = "'" + binary_dir() + "/apps/ct-segment' --segmentation '" +
                           reference_path("unet_book.pt") + "' --classifier '" +
                           reference_path("luna.pt") + "' --threads 1 " + args;
  // Killed as soon as the second scan has started.
  const std::string command =
      "(" + tool + " > '" + folder.path("killed.log") + "' 2>&1 & pid=$!; for i in $(seq 600); do "
      "grep -q 'scan 2/4' '" + folder.path("killed.log") + "' && break; sleep 0.1; done; "
      "kill -9 $pid; wait $pid; exit 0)";
  ASSERT_EQ(run_command(command), 0);
  bool leftovers = false;
  const auto finished = result_folders(folder.path("out"), &leftovers);
  std::cout << "finished before the kill: " << finished.size() << " scans\n";
  ASSERT_LT(finished.size(), 4u) << "the run was not killed mid-batch";
  for (const auto& name : finished) {
    EXPECT_TRUE(fs::exists(folder.path("out/" + name + "/candidates.json"))) << name;
  }
  std::string log;
  ASSERT_EQ(run_ct_segment(args, folder, &log), 0);
  EXPECT_EQ(count_of(log, "skipped (complete)"), finished.size());
  EXPECT_EQ(count_of(log, " -> " + folder.path("out") + "/"), 4 - finished.size());
  EXPECT_EQ(result_folders(folder.path("out"), &leftovers).size(), 4u);
  EXPECT_FALSE(leftovers);
}

// Two scans whose results would share a folder are never taken for one another.
TEST(CtSegmentApp, ScansWithCollidingNamesAreNotMixedUp) {
  TemporaryFolder folder;
  fs::create_directories(folder.path("a"));
  fs::create_directories(folder.path("b"));
  write_phantom(folder.path("a/scan.mhd"), 12);
  write_phantom(folder.path("b/scan.mhd"), 14);
  write_phantom(folder.path("x y.mhd"), 12);
  write_phantom(folder.path("x_y.mhd"), 12);
  std::string log;
  EXPECT_EQ(run_ct_segment("'" + folder.path("a/scan.mhd") + "' '" + folder.path("b/scan.mhd") +
                               "' '" + folder.path("x y.mhd") + "' '" + folder.path("x_y.mhd") +
                               "' -o '" + folder.path("out") + "'",
                           folder, &log),
            1);
  EXPECT_THAT(log, HasSubstr("its results would go to 'scan', as those of " + folder.path("a/scan.mhd")));
  EXPECT_THAT(log, HasSubstr("4 scans, 1 failed"));
  bool leftovers = false;
  const auto folders = result_folders(folder.path("out"), &leftovers);
  ASSERT_EQ(folders.size(), 3u);
  EXPECT_EQ(folders[0], "scan");
  EXPECT_EQ(folders[1], "x_y");
  EXPECT_EQ(folders[2].rfind("x_y-", 0), 0u) << folders[2];  // "x y": renamed, with a hash
  // A later run with the other scan of that name does not take the first one's results.
  EXPECT_EQ(run_ct_segment("'" + folder.path("b/scan.mhd") + "' -o '" + folder.path("out") + "'", folder, &log), 1);
  EXPECT_THAT(log, HasSubstr("holds the results of " + folder.path("a/scan.mhd")));
}

// A full disk (here: a file size limit, which fails writes with EFBIG as ENOSPC would) fails
// the scan; nothing appears under a final name and no partial folder is left.
TEST(CtSegmentApp, AFullDiskFailsTheScanAndLeavesNothing) {
  TemporaryFolder folder;
  write_phantom(folder.path("scan.mhd"), 12);
  std::string log;
  // 96 blocks of 512 bytes: room for the log and the 48 KB mask, not for the 192 KB
  // probability map.
  EXPECT_EQ(run_ct_segment("'" + folder.path("scan.mhd") + "' -o '" + folder.path("out") + "' --probability",
                           folder, &log, "ulimit -f 96; "),
            1);
  EXPECT_THAT(log, HasSubstr("FAILED"));
  EXPECT_THAT(log, HasSubstr("probability.raw' is truncated"));
  bool leftovers = false;
  EXPECT_TRUE(result_folders(folder.path("out"), &leftovers).empty());
  EXPECT_FALSE(leftovers);
  // With room again the same command completes the scan.
  EXPECT_EQ(run_ct_segment("'" + folder.path("scan.mhd") + "' -o '" + folder.path("out") + "' --probability", folder), 0);
  EXPECT_TRUE(fs::exists(folder.path("out/scan/probability.raw")));
}

// The voxels and the voxel-to-RAS affine of a NIfTI file as nibabel reads it (tools/testing/read_nifti.py).
weights::TensorMap read_with_nibabel(const std::string& path, const TemporaryFolder& folder) {
  const std::string out = folder.path("nibabel.pt");
  const std::string command = "'" + python() + "' '" + source_dir() + "/tools/testing/read_nifti.py' '" + path +
                              "' '" + out + "'";
  if (run_command(command) != 0) throw std::runtime_error("failed: " + command);
  return weights::read_archive(out).tensors;
}

// NIfTI wants RAS millimetres; the scan geometry is LPS (DICOM's and ITK's): x and y turn over.
torch::Tensor ras_affine(const ct::VolumeGeometry& geometry) {
  auto affine = torch::eye(4, torch::kDouble);
  for (int row = 0; row < 3; ++row) {
    const double sign = row < 2 ? -1.0 : 1.0;
    for (int column = 0; column < 3; ++column) {
      affine[row][column] = sign * geometry.direction[row * 3 + column] * geometry.spacing[column];
    }
    affine[row][3] = sign * geometry.origin[row];
  }
  return affine;
}

// --format nifti writes the same mask, probabilities and volume as MetaImage, and nibabel
// reads them with the scan's geometry.
TEST(CtSegmentApp, NiftiOutputsEqualTheMetaImageOnesInNibabel) {
  TemporaryFolder folder;
  write_phantom(folder.path("scan.mhd"), 12);
  const std::string scan = "'" + folder.path("scan.mhd") + "' --probability --volume -o '";
  ASSERT_EQ(run_ct_segment(scan + folder.path("mhd") + "'", folder), 0);
  ASSERT_EQ(run_ct_segment(scan + folder.path("nifti") + "' --format nifti", folder), 0);
  EXPECT_FALSE(fs::exists(folder.path("nifti/scan/mask.mhd")));
  const auto geometry = ct::read_metaimage(folder.path("scan.mhd")).geometry;
  for (const std::string name : {"mask", "probability", "volume"}) {
    const auto expected = ct::read_metaimage(folder.path("mhd/scan/" + name + ".mhd")).hu.to(torch::kDouble);
    const auto nifti = read_with_nibabel(folder.path("nifti/scan/" + name + ".nii.gz"), folder);
    EXPECT_TRUE(torch::equal(nifti.at("voxels"), expected)) << name;
    const double affine_error = (nifti.at("affine") - ras_affine(geometry)).abs().max().item<double>();
    std::cout << name << ".nii.gz: voxels equal " << torch::equal(nifti.at("voxels"), expected)
              << ", largest affine difference " << affine_error << " mm\n";
    EXPECT_LT(affine_error, 1e-4) << name << "\n" << nifti.at("affine") << "\n" << ras_affine(geometry);
  }
  std::string log;
  EXPECT_EQ(run_ct_segment(scan + folder.path("x") + "' --format png", folder, &log), 2);
  EXPECT_THAT(log, HasSubstr("--format must be mhd or nifti"));
}

TEST(CtSegmentApp, ListFilesThatIncludeThemselvesAreRefused) {
  TemporaryFolder folder;
  write_file(folder.path("a.txt"), "@" + folder.path("b.txt") + "\n");
  write_file(folder.path("b.txt"), "# loops back\n@" + folder.path("a.txt") + "\n");
  write_file(folder.path("self.txt"), "@" + folder.path("self.txt") + "\n");
  std::string log;
  EXPECT_EQ(run_ct_segment("@'" + folder.path("self.txt") + "' -o '" + folder.path("out") + "'", folder, &log), 2);
  EXPECT_THAT(log, HasSubstr("self.txt' includes itself"));
  EXPECT_EQ(run_ct_segment("@'" + folder.path("a.txt") + "' -o '" + folder.path("out") + "'", folder, &log), 2);
  EXPECT_THAT(log, HasSubstr("a.txt' includes itself (through " + folder.path("b.txt") + ")"));
}

TEST(CtSegmentApp, BadCommandLinesFail) {
  TemporaryFolder folder;
  EXPECT_EQ(run_ct_segment("--help", folder), 0);
  EXPECT_EQ(run_ct_segment("", folder), 2);
  EXPECT_EQ(run_ct_segment("x.mhd", folder), 2);  // no --output
  EXPECT_EQ(run_ct_segment("x.mhd -o out --batch-size 0", folder), 2);
  EXPECT_EQ(run_ct_segment("@'" + folder.path("no-list.txt") + "' -o out", folder), 2);
  std::string log;
  EXPECT_EQ(run_ct_segment("x.mhd -o out --annotations '" + folder.path("none.csv") + "'", folder, &log), 2);
  EXPECT_THAT(log, HasSubstr("the annotations file '" + folder.path("none.csv") + "' does not exist"));
}

TEST(Scoring, MatchesAsTheBookDoes) {
  auto detection = [](double x, double nodule, double malignancy = 0.0) {
    ct::Candidate candidate;
    candidate.center_xyz = {x, 0, 0};
    candidate.nodule_probability = nodule;
    candidate.malignancy_probability = malignancy;
    return candidate;
  };
  const std::vector<ct::Annotation> truth = {
      {{0, 0, 0}, 10.0, false},   // matched by two detections: the higher class counts
      {{100, 0, 0}, 10.0, true},  // matched only by a filtered-out detection
      {{300, 0, 0}, 10.0, true},  // missed
  };
  const std::vector<ct::Candidate> detections = {
      detection(6.9, 0.9),         // 0.69 diameters away: a match, benign
      detection(-3.0, 0.8, 0.7),   // a match, malignant
      detection(104.0, 0.2),       // a match, filtered out
      detection(107.0, 0.9),       // 0.7 diameters: no match, a false positive
      detection(200.0, 0.1),       // no match, filtered out
  };
  const auto confusion = ct::match_and_score(detections, truth);
  // Rows: not a nodule, benign, malignant; columns: missed, filtered out, benign, malignant.
  const ct::Confusion expected = {{{0, 1, 1, 0}, {0, 0, 0, 1}, {1, 1, 0, 0}}};
  std::cout << ct::format_confusion(confusion);
  EXPECT_EQ(confusion, expected);
}

TEST(Scoring, ReadsLunaAnnotations) {
  TemporaryFolder folder;
  write_file(folder.path("a.csv"),
             "seriesuid,coordX,coordY,coordZ,diameter_mm,mal_bool,mal_details\n"
             "1.2.3,-128.5,-175.25,-298.0,5.5,True,\"[4, 2, 4, 2]\"\n"
             "1.2.3,10,20,30,4,False,\"[1]\"\n4.5.6,1,2,3,7,False,[]\n");
  const auto annotations = ct::read_annotations(folder.path("a.csv"));
  ASSERT_EQ(annotations.at("1.2.3").size(), 2u);
  EXPECT_EQ(annotations.at("1.2.3")[0].center_xyz, (ct::Xyz{-128.5, -175.25, -298.0}));
  EXPECT_TRUE(annotations.at("1.2.3")[0].malignant);
  EXPECT_FALSE(annotations.at("4.5.6")[0].malignant);
  write_file(folder.path("b.csv"), "seriesuid,coordX,coordY\n1,2,3\n");
  EXPECT_THAT(error_message_of<std::runtime_error>([&] { ct::read_annotations(folder.path("b.csv")); }),
              HasSubstr("lacks the column 'coordZ'"));
  if (has_data_dir()) {
    const auto real = ct::read_annotations(data_dir() + "/data/part2/luna/annotations_with_malignancy.csv");
    size_t nodules = 0;
    for (const auto& [uid, list] : real) nodules += list.size();
    std::cout << "annotations_with_malignancy.csv: " << nodules << " nodules in " << real.size() << " series\n";
    EXPECT_GT(nodules, 1000u);
  }
}

}  // namespace
}  // namespace dlwpt::testing
