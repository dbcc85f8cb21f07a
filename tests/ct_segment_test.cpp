// The ct-segment app: a batch with good and bad scans, outputs, resume, scoring.

#include <filesystem>
#include <fstream>

#include "apps/ct_segment/report.h"
#include "apps/ct_segment/scoring.h"
#include "ct/pipeline.h"
#include "ct/scan_io.h"
#include "tests/test_support.h"
#include "weights/model_archive.h"

namespace dlwpt::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs ct-segment on one thread with the seeded reference models; returns the exit status, output in `log`.
int run_ct_segment(const std::string& arguments, const TemporaryFolder& folder, std::string* log = nullptr) {
  const std::string command = "'" + binary_dir() + "/apps/ct-segment' --segmentation '" +
                              reference_path("unet_book.pt") + "' --classifier '" +
                              reference_path("luna.pt") + "' --threads 1 " + arguments + " > '" +
                              folder.path("log.txt") + "' 2>&1";
  const int status = run_command(command);
  const std::string output = read_text(folder.path("log.txt"));
  std::cout << "$ " << command << "\n" << output;
  if (log) *log = output;
  return status;
}

void write_phantom(const std::string& path, int slices) {
  const std::string command = "'" + python() + "' '" + source_dir() + "/tools/ct_phantom.py' '" +
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
  EXPECT_THAT(log, HasSubstr("orphan.raw' is missing"));
  EXPECT_THAT(log, HasSubstr("is 2D; a CT volume must be 3D"));
  EXPECT_THAT(log, HasSubstr("more than the limit of 268435456 (--max-voxels raises it)"));
  EXPECT_THAT(log, HasSubstr("absent.mhd' does not exist"));
  EXPECT_THAT(log, HasSubstr("7 scans, 6 failed"));

  // The good scan's outputs equal the library's analysis of it.
  const std::string result = folder.path("out/good");
  ct::AnalysisModels models;
  models.segmentation = weights::load_model<UNetWrapper>(reference_path("unet_book.pt"));
  models.nodule = weights::load_model<LunaModel>(reference_path("luna.pt"));
  const auto volume = ct::read_metaimage(scans + "/good.mhd");
  const auto analysis = ct::analyse_scan(models, volume);
  const auto mask = ct::read_metaimage(result + "/mask.mhd");
  EXPECT_TRUE(torch::equal(mask.hu, analysis.mask.to(torch::kFloat)));
  EXPECT_EQ(mask.geometry.direction, volume.geometry.direction);
  EXPECT_EQ(mask.geometry.origin, volume.geometry.origin);
  // Both on one thread (the seeded U-Net's activations on HU-scale input are large enough
  // for a different thread count's summation order to show at 1e-5).
  const double probability_difference = (ct::read_metaimage(result + "/probability.mhd").hu -
                                         analysis.probability).abs().max().item<double>();
  std::cout << "max |app probability - library probability| = " << probability_difference << "\n";
  EXPECT_LE(probability_difference, kParityTolerance);
  const auto sorted = ct_segment::by_probability(analysis.candidates);
  EXPECT_EQ(read_text(result + "/candidates.csv"), ct_segment::candidates_csv(sorted, false));
  EXPECT_THAT(read_text(result + "/candidates.json"), HasSubstr("\"series_uid\": \"good\""));
  EXPECT_TRUE(torch::equal(ct::read_metaimage(result + "/volume.mhd").hu, volume.hu));
  int64_t previews = 0;
  for (const auto& entry : fs::directory_iterator(result + "/previews")) previews += entry.path().extension() == ".png";
  EXPECT_EQ(previews, std::min<int64_t>(2, static_cast<int64_t>(sorted.size())));
  for (const auto& entry : fs::directory_iterator(folder.path("out"))) {
    EXPECT_EQ(entry.path().filename().string(), "good") << "only complete scans have folders";
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
  fs::rename(folder.path("out/b"), folder.path("out/.b.partial"));
  fs::rename(folder.path("a.raw"), folder.path("a.raw.away"));
  std::string log;
  ASSERT_EQ(run_ct_segment(args, folder, &log), 0);
  EXPECT_THAT(log, HasSubstr("skipped (complete)"));
  EXPECT_EQ(fs::last_write_time(folder.path("out/a/candidates.csv")), written);
  EXPECT_TRUE(fs::exists(folder.path("out/b/candidates.csv")));
  EXPECT_FALSE(fs::exists(folder.path("out/.b.partial")));
  fs::rename(folder.path("a.raw.away"), folder.path("a.raw"));
  ASSERT_EQ(run_ct_segment(args + " --force", folder, &log), 0);
  EXPECT_THAT(log, ::testing::Not(HasSubstr("skipped")));
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
  EXPECT_THAT(log, HasSubstr("cannot read the annotations file"));
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
  const auto confusion = ct_segment::match_and_score(detections, truth);
  // Rows: not a nodule, benign, malignant; columns: missed, filtered out, benign, malignant.
  const ct_segment::Confusion expected = {{{0, 1, 1, 0}, {0, 0, 0, 1}, {1, 1, 0, 0}}};
  std::cout << ct_segment::format_confusion(confusion);
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
