// Scan reading and writing, and the U-Net's slice stacks.

#include <filesystem>
#include <fstream>
#include <limits>

#include "dlwpt/ct/scan_io.h"
#include "dlwpt/ct/slices.h"
#include "test_paths.h"
#include "tests/test_support.h"

namespace dlwpt::testing {
namespace {

using ::testing::HasSubstr;

std::string real_ct_folder() {
  return data_dir() + "/data/p1ch4/volumetric-dicom/2-LUNG 3.0  B70f-04083";
}

template <typename Fn>
std::string scan_error_of(Fn&& fn) {
  return error_message_of<ct::ScanError>(std::forward<Fn>(fn));
}

ct::VolumeGeometry oblique_geometry() {
  ct::VolumeGeometry geometry;
  geometry.origin = {-170.5, -12.25, 310.0};
  geometry.spacing = {0.7, 0.8, 2.5};
  // A rotation of 90 degrees about z with the y axis flipped: non-identity, orthonormal.
  geometry.direction = {0, -1, 0, -1, 0, 0, 0, 0, 1};
  return geometry;
}

TEST(SegmentationInput, StacksNeighboursAndClampsAtTheEdges) {
  const auto hu = torch::arange(5 * 2 * 3, torch::kFloat).view({5, 2, 3}) * 100 - 1200;
  const auto stacks = ct::segmentation_input(hu, 0, 5, 3);
  ASSERT_EQ(stacks.sizes(), (std::vector<int64_t>{5, 7, 2, 3}));
  for (int64_t slice = 0; slice < 5; ++slice) {
    for (int64_t k = 0; k < 7; ++k) {
      const int64_t source = std::clamp<int64_t>(slice + k - 3, 0, 4);
      const auto expected = hu[source].clamp(-1000, 1000);
      EXPECT_TRUE(torch::equal(stacks[slice][k], expected)) << "slice " << slice << " k " << k;
    }
  }
  EXPECT_EQ(stacks.min().item<float>(), -1000.0f);
  EXPECT_EQ(stacks.max().item<float>(), 1000.0f);
}

TEST(SegmentationInput, RejectsSlicesOutsideTheVolume) {
  const auto hu = torch::zeros({4, 8, 8});
  EXPECT_THROW(ct::segmentation_input(hu, 2, 3), c10::Error);
  EXPECT_THROW(ct::segmentation_input(torch::zeros({8, 8}), 0, 1), c10::Error);
}

TEST(MetaImage, RoundTripKeepsVoxelsAndGeometry) {
  TemporaryFolder folder;
  const auto hu = torch::randn({6, 5, 4}) * 500;
  const auto geometry = oblique_geometry();
  ct::write_metaimage(hu, geometry, folder.path("scan.mhd"));
  const auto volume = ct::read_metaimage(folder.path("scan.mhd"));
  EXPECT_TRUE(torch::equal(volume.hu, hu));
  EXPECT_EQ(volume.geometry.origin, geometry.origin);
  EXPECT_EQ(volume.geometry.spacing, geometry.spacing);
  EXPECT_EQ(volume.geometry.direction, geometry.direction);
  EXPECT_EQ(volume.series_uid, "scan");
}

TEST(MetaImage, CompressedDataReadsAsUncompressed) {
  TemporaryFolder folder;
  const auto hu = torch::randint(-1000, 1000, {5, 6, 7}).to(torch::kFloat);
  ct::write_metaimage(hu, oblique_geometry(), folder.path("packed.mhd"), /*compress=*/true);
  ASSERT_TRUE(std::filesystem::exists(folder.path("packed.zraw")));
  EXPECT_TRUE(torch::equal(ct::read_metaimage(folder.path("packed.mhd")).hu, hu));
}

TEST(MetaImage, BadFilesAreNamed) {
  TemporaryFolder folder;
  ct::write_metaimage(torch::zeros({4, 4, 4}), {}, folder.path("good.mhd"));
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("absent.mhd")); }),
              HasSubstr("does not exist"));

  write_file(folder.path("text.mhd"), "this is not a header\n");
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("text.mhd")); }),
              HasSubstr(folder.path("text.mhd")));

  std::filesystem::resize_file(folder.path("good.raw"), 100);
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("good.mhd")); }),
              HasSubstr("is truncated (100 bytes, the header needs 256)"));

  write_file(folder.path("huge.mhd"),
             "ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\n"
             "ElementType = MET_SHORT\nElementDataFile = huge.raw\n");
  EXPECT_THAT(error_message_of<LimitError>([&] { ct::read_metaimage(folder.path("huge.mhd")); }),
              HasSubstr("has 100000 x 100000 x 100000 voxels, more than the limit of 268435456 "
                        "(--max-voxels raises it)"));

  write_file(folder.path("flat.mhd"),
             "ObjectType = Image\nNDims = 2\nDimSize = 4 4\nElementType = MET_UCHAR\n"
             "ElementDataFile = flat.raw\n");
  write_file(folder.path("flat.raw"), std::string(16, '\0'));
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("flat.mhd")); }),
              HasSubstr("is 2D; a CT volume must be 3D"));

  write_file(folder.path("nodata.mhd"),
             "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\n"
             "ElementDataFile = missing.raw\n");
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("nodata.mhd")); }),
              HasSubstr("missing.raw' does not exist"));
}

// MetaIO takes an unparsable field or one with too few values as missing and blames another
// field over several lines, wraps negative sizes and takes NaN positions: each is one line
// naming the field.
TEST(MetaImage, MalformedGeometryFieldsAreNamedInOneLine) {
  TemporaryFolder folder;
  const std::string voxels(4 * 4 * 4, '\0');
  const std::pair<std::string, std::string> cases[] = {
      {"NDims = 4\nDimSize = 4 4 4 1\n", "is 4D; a CT volume must be 3D"},
      {"NDims = three\nDimSize = 4 4 4\n", "NDims 'three' is not an integer"},
      {"DimSize = 4 4 4\n", "has no NDims line"},
      {"NDims = 36666666666666666666\nNDims = 3\nDimSize = 4 4 4\n", "line 3 repeats the key 'NDims'"},
      {"NDims = 3\nDimSize = 0x20 4 4\n", "DimSize '0x20 4 4' is not 3 whole numbers from 1 to 2147483647"},
      {"NDims = 3\nDimSize = 4 -4 4\n", "DimSize '4 -4 4' is not 3 whole numbers"},
      {"NDims = 3\nDimSize = 4294967296 4294967296 1\n", "DimSize '4294967296 4294967296 1' is not 3"},
      {"NDims = 3\nDimSize = 4 4\n", "DimSize '4 4' is not 3 whole numbers"},
      {"NDims = 3\nDimSize = 4 4 4\nOffset = nan 0 0\n", "Offset 'nan 0 0' is not 3 finite numbers"},
      {"NDims = 3\nDimSize = 4 4 4\nOffset = 1e999 0 0\n", "Offset '1e999 0 0' is not 3 finite numbers"},
      {"NDims = 3\nDimSize = 4 4 4\nElementSpacing = 1 1\n", "ElementSpacing '1 1' is not 3 finite numbers"},
      {"NDims = 3\nDimSize = 4 4 4\nTransformMatrix = nan 0 0 0 1 0 0 0 1\n",
       "TransformMatrix 'nan 0 0 0 1 0 0 0 1' is not 9 finite numbers"},
      {"NDims = 3\nDimSize = 4 4 4\nElementSpacing = 1 0 1\n", "ElementSpacing '1 0 1' has a spacing of 0"},
      // ITK's own message, without the object address it prints.
      {"NDims = 3\nDimSize = 4 4 4\nTransformMatrix = 0 0 0 0 0 0 0 0 0\n", "Image: Bad direction"},
  };
  for (const auto& [fields, expected] : cases) {
    write_file(folder.path("scan.mha"), "ObjectType = Image\n" + fields +
                                            "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n" + voxels);
    const std::string message = scan_error_of([&] { ct::read_metaimage(folder.path("scan.mha")); });
    EXPECT_THAT(message, HasSubstr(expected));
    EXPECT_THAT(message, HasSubstr(folder.path("scan.mha")));
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find("(0x"), std::string::npos) << message;
  }
}

// MetaIO reads text voxels, non-numeric types and surplus data without complaint.
TEST(MetaImage, TextVoxelsOtherTypesAndSurplusDataAreScanErrors) {
  TemporaryFolder folder;
  const std::string header = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\n";
  const std::string voxels(4 * 4 * 4 * 2, '\0');
  const std::pair<std::string, std::string> cases[] = {
      {"BinaryData = False\nElementType = MET_SHORT\n", "BinaryData = False (voxels as text) is not supported"},
      {"ElementType = MET_STRING\n", "ElementType 'MET_STRING' is not a numeric voxel type"},
      {"ElementType = MET_UCHAR\nElementNumberOfChannels = 2\n", "2 channels per voxel"},
      {"ElementType = MET_UCHAR\n", "holds 128 bytes, the header describes 64"},
      {"ElementType = MET_SHORT\nCompressedData = True\nCompressedDataSize = -5\n",
       "CompressedDataSize -5 is negative"},
  };
  for (const auto& [fields, expected] : cases) {
    write_file(folder.path("scan.mha"), header + fields + "ElementDataFile = LOCAL\n" + voxels);
    EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("scan.mha")); }), HasSubstr(expected));
  }
  ct::write_metaimage(torch::zeros({4, 4, 4}), {}, folder.path("good.mhd"));
  write_file(folder.path("device.mhd"), header + "ElementType = MET_SHORT\nElementDataFile = /dev/zero\n");
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("device.mhd")); }),
              HasSubstr("its data file '/dev/zero' is not a regular file"));
  std::ofstream(folder.path("good.raw"), std::ios::app) << "surplus";
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("good.mhd")); }),
              HasSubstr("holds 263 bytes, the header describes 256"));
}

TEST(Dicom, FoldersWithoutASeriesAreNamed) {
  TemporaryFolder folder;
  EXPECT_THAT(scan_error_of([&] { ct::read_dicom_series(folder.path("absent")); }),
              HasSubstr("does not exist"));
  write_file(folder.path("notes.txt"), "no images here\n");
  EXPECT_THAT(scan_error_of([&] { ct::read_dicom_series(folder.path("")); }),
              HasSubstr("holds no DICOM images"));
}

TEST(Dicom, RealSeriesReadsAsTheBookDescribesIt) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  const auto volume = ct::read_dicom_series(real_ct_folder());
  EXPECT_EQ(volume.hu.sizes(), (std::vector<int64_t>{99, 512, 512}));
  EXPECT_NEAR(volume.geometry.spacing[0], 0.564, 0.001);
  EXPECT_NEAR(volume.geometry.spacing[2], 3.0, 0.01);
  // Air outside the body near -1000 HU (or the scanner's padding below it), tissue above.
  EXPECT_LE(volume.hu.min().item<float>(), -1000.0f);
  EXPECT_GE(volume.hu.max().item<float>(), 500.0f);
  std::cout << "series " << volume.series_uid << ": HU " << volume.hu.min().item<float>()
            << " .. " << volume.hu.max().item<float>() << "\n";
}

TEST(Dicom, MetaImageCopyReadsBackIdentically) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  const auto dicom = ct::read_dicom_series(real_ct_folder());
  ct::write_metaimage(dicom.hu, dicom.geometry, folder.path("copy.mhd"));
  const auto copy = ct::read_scan(folder.path("copy.mhd"));
  EXPECT_TRUE(torch::equal(copy.hu, dicom.hu));
  for (int axis = 0; axis < 3; ++axis) {
    EXPECT_NEAR(copy.geometry.origin[axis], dicom.geometry.origin[axis], 1e-9);
    EXPECT_NEAR(copy.geometry.spacing[axis], dicom.geometry.spacing[axis], 1e-9);
  }
}

// Copies the first `count` slices of the real series, in slice order, into `folder`, leaving
// out slice `skip`.
void copy_real_slices(const TemporaryFolder& folder, int count, int skip = -1) {
  const auto uids = ct::list_dicom_series(real_ct_folder());
  ASSERT_EQ(uids.size(), 1u);
  const auto files = ct::dicom_series_files(real_ct_folder(), uids.front());
  ASSERT_GE(files.size(), static_cast<size_t>(count));
  for (int slice = 0; slice < count; ++slice) {
    if (slice == skip) continue;
    const std::filesystem::path file(files[slice]);
    std::filesystem::copy_file(file, folder.path(file.filename().string()));
  }
}

TEST(Dicom, NonImageFilesInTheFolderAreIgnored) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  copy_real_slices(folder, 8);
  write_file(folder.path("README.txt"), "scanner notes\n");
  write_file(folder.path("stray.bin"), std::string(300, '\x07'));
  const auto volume = ct::read_dicom_series(folder.path(""));
  EXPECT_EQ(volume.hu.sizes(), (std::vector<int64_t>{8, 512, 512}));
  const auto full = ct::read_dicom_series(real_ct_folder());
  EXPECT_TRUE(torch::equal(volume.hu, full.hu.narrow(0, 0, 8)));
  // A file named as DICOM without a DICOM header is a slice cut short, not a stray file.
  write_file(folder.path("broken.dcm"), std::string(300, '\x07'));
  EXPECT_THAT(scan_error_of([&] { ct::read_dicom_series(folder.path("")); }),
              HasSubstr("broken.dcm' is named as a DICOM file but lacks the DICOM header"));
}

TEST(Dicom, MissingSliceIsDetected) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  copy_real_slices(folder, 8);
  EXPECT_EQ(ct::read_dicom_series(folder.path("")).slices(), 8);  // complete: fine
  const auto uid = ct::list_dicom_series(folder.path("")).front();
  std::filesystem::remove(ct::dicom_series_files(folder.path(""), uid)[4]);
  EXPECT_THAT(scan_error_of([&] { ct::read_dicom_series(folder.path("")); }),
              HasSubstr("not evenly spaced"));
}

// Sets a text element (DS, UI, ...) of a slice in place, padded to the value's length with
// `padding`: the real series is explicit VR little endian.
void set_text_element(const std::string& path, uint16_t group, uint16_t element, const char* vr,
                      const std::string& value, char padding = ' ') {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const char tag[] = {static_cast<char>(group & 0xFF), static_cast<char>(group >> 8),
                      static_cast<char>(element & 0xFF), static_cast<char>(element >> 8), vr[0], vr[1]};
  const auto at = bytes.find(std::string(tag, sizeof tag));
  ASSERT_NE(at, std::string::npos) << "no " << vr << " element " << std::hex << group << "," << element;
  const size_t length = static_cast<unsigned char>(bytes[at + 6]) | static_cast<unsigned char>(bytes[at + 7]) << 8;
  ASSERT_LE(value.size(), length) << value;
  bytes.replace(at + 8, length, value + std::string(length - value.size(), padding));
  write_file(path, bytes);
}

// GDCM reads a DS it cannot parse as 0 and takes the first slice's spacing and orientation for
// all: every such slice fails its series, naming the file and the tag.
TEST(Dicom, SliceTagsThatAreNoNumbersOrDisagreeAreScanErrors) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  struct Case {
    uint16_t group, element;
    std::string value, expected;
  };
  const Case cases[] = {
      {0x0028, 0x1052, "nan", "has Rescale Intercept 'nan"},
      {0x0028, 0x1053, "0", "has Rescale Slope 0"},
      {0x0020, 0x0032, "-143.2\\-287.2\\nan", "has Image Position (Patient) '-143.2\\-287.2\\nan"},
      {0x0028, 0x0030, "0\\0.56", "Pixel Spacing"},
      {0x0028, 0x0030, "0.9\\0.9", "has another pixel spacing or orientation than"},
      {0x0020, 0x0037, "0\\0\\0\\0\\0\\0", "are not orthogonal unit vectors"},
  };
  for (const Case& c : cases) {
    TemporaryFolder folder;
    copy_real_slices(folder, 8);
    const auto uid = ct::list_dicom_series(folder.path("")).front();
    const std::string victim = ct::dicom_series_files(folder.path(""), uid)[3];
    set_text_element(victim, c.group, c.element, "DS", c.value);
    const std::string message = scan_error_of([&] { ct::read_dicom_series(folder.path("")); });
    std::cout << c.value << ": " << message << "\n";
    EXPECT_THAT(message, HasSubstr(c.expected)) << c.value;
    EXPECT_THAT(message, HasSubstr(std::filesystem::path(victim).filename().string())) << c.value;
  }
}

// GDCM asserts (aborting the process) on a geometry element with another VR than the
// standard's: such a slice fails its series with a message instead.
TEST(Dicom, GeometryElementsWithAnotherVrAreScanErrors) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  copy_real_slices(folder, 4);
  const auto uid = ct::list_dicom_series(folder.path("")).front();
  const std::string victim = ct::dicom_series_files(folder.path(""), uid)[2];
  std::ifstream in(victim, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const auto at = bytes.find(std::string("\x28\x00\x30\x00" "DS", 6));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 4] = 'A';  // Pixel Spacing as an age string
  write_file(victim, bytes);
  EXPECT_THAT(scan_error_of([&] { ct::read_dicom_series(folder.path("")); }),
              HasSubstr("element (0028,0030) has VR AS, not DS"));
}

// A SeriesInstanceUID names output folders and fills one-line summaries: one with control
// characters fails the folder, and the message shows them escaped, on one line.
TEST(Dicom, SeriesUidWithControlCharactersIsAScanErrorOnOneLine) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  copy_real_slices(folder, 4);
  const auto uid = ct::list_dicom_series(folder.path("")).front();
  const std::string victim = ct::dicom_series_files(folder.path(""), uid)[1];
  set_text_element(victim, 0x0020, 0x000E, "UI", "1.2.3\nrm -rf\t", '\0');
  const std::string message = scan_error_of([&] { ct::read_dicom_series(folder.path("")); });
  std::cout << message << "\n";
  EXPECT_THAT(message, HasSubstr(std::filesystem::path(victim).filename().string() +
                                 "' has (0020,000E) '1.2.3\\x0Arm -rf\\x09', which is not a UID"));
  EXPECT_EQ(message.find_first_of("\n\t"), std::string::npos);
}

// Truncates a slice of a real series at many offsets (before and in the "DICM" header, the
// meta group, the data set, the pixel data) and reads the folder in a child process each time:
// every cut must give a ScanError (exit 1), never a crash inside GDCM (a signal) nor a volume.
// A .dcm file cut before its "DICM" magic is a broken DICOM file, not a stray file to ignore.
TEST(Dicom, SliceCutAtAnyOffsetIsAScanErrorNotACrash) {
  if (!has_data_dir()) GTEST_SKIP() << "the book's data folder is missing: " << data_dir();
  TemporaryFolder folder;
  copy_real_slices(folder, 5);
  const auto uid = ct::list_dicom_series(folder.path("")).front();
  const std::string victim = ct::dicom_series_files(folder.path(""), uid)[2];
  const std::string original = folder.path("original.bin");
  std::filesystem::copy_file(victim, original);
  const auto size = static_cast<int64_t>(std::filesystem::file_size(original));
  std::vector<int64_t> offsets = {0, 1, 100, 128, 131, 132, 133, 200, 300, size / 2, size - 2, size - 1};
  // Each cut runs a process; under the sanitizers (ten times slower) fewer cuts through the
  // headers are tried, the fixed offsets above still reach every part of the file.
  for (int64_t offset = 340; offset < 3700; offset += 97 * DLWPT_TEST_TIME_SCALE) offsets.push_back(offset);
  int errors = 0;
  for (const int64_t offset : offsets) {
    std::filesystem::copy_file(original, victim, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(victim, offset);
    const int status = run_command("'" + binary_dir() + "/tests/read-scan-check' '" + folder.path("") +
                                   "' > '" + folder.path("out.txt") + "' 2>/dev/null");
    EXPECT_EQ(status, 1) << "cut at " << offset << " of " << size << " bytes";
    errors += status == 1;
  }
  std::cout << errors << " of " << offsets.size() << " cuts gave a ScanError\n";
}

TEST(MetaImage, CorruptCompressedDataIsAScanError) {
  TemporaryFolder folder;
  const auto hu = torch::randint(-1000, 1000, {5, 6, 7}).to(torch::kFloat);
  ct::write_metaimage(hu, {}, folder.path("cut.mhd"), /*compress=*/true);
  std::filesystem::resize_file(folder.path("cut.zraw"), std::filesystem::file_size(folder.path("cut.zraw")) / 2);
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("cut.mhd")); }),
              HasSubstr("cut.zraw' is truncated ("));
  ct::write_metaimage(hu, {}, folder.path("local.mha"), /*compress=*/true);
  std::filesystem::resize_file(folder.path("local.mha"), std::filesystem::file_size(folder.path("local.mha")) - 20);
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("local.mha")); }),
              HasSubstr("its data is truncated"));
}

TEST(MetaImage, MissingPatternSlicesAndHeaderSizePastTheEndAreScanErrors) {
  TemporaryFolder folder;
  const std::string head = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 2\nElementType = MET_UCHAR\n";
  write_file(folder.path("s1.raw"), std::string(16, '\1'));
  write_file(folder.path("pattern.mhd"), head + "ElementDataFile = s%d.raw 1 2 1\n");
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("pattern.mhd")); }),
              HasSubstr("s2.raw' does not exist"));
  write_file(folder.path("s2.raw"), std::string(16, '\2'));
  EXPECT_EQ(ct::read_metaimage(folder.path("pattern.mhd")).hu.sum().item<float>(), 48.0f);
  // Indices beyond an int (the fuzzer's: a 120-digit last index threw out of std::stoll).
  write_file(folder.path("huge.mhd"), head + "ElementDataFile = s%d.raw 1 4" + std::string(120, '8') + " 1\n");
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("huge.mhd")); }),
              HasSubstr("has an index beyond the range of an int"));
  write_file(folder.path("skip.mhd"), head + "HeaderSize = 100\nElementDataFile = s1.raw\n");
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("skip.mhd")); }),
              HasSubstr("its data should start at byte 100"));
}

TEST(MetaImage, VoxelLimitAndNonFiniteVoxels) {
  TemporaryFolder folder;
  auto hu = torch::zeros({4, 4, 4});
  ct::write_metaimage(hu, {}, folder.path("small.mhd"));
  EXPECT_THAT(error_message_of<LimitError>([&] { ct::read_metaimage(folder.path("small.mhd"), 63); }),
              HasSubstr("has 4 x 4 x 4 voxels, more than the limit of 63 (--max-voxels raises it)"));
  EXPECT_EQ(ct::read_metaimage(folder.path("small.mhd"), 64).hu.numel(), 64);
  hu[1][2][3] = std::numeric_limits<float>::quiet_NaN();
  hu[3][0][0] = std::numeric_limits<float>::infinity();
  ct::write_metaimage(hu, {}, folder.path("nan.mhd"));
  EXPECT_THAT(scan_error_of([&] { ct::read_metaimage(folder.path("nan.mhd")); }),
              HasSubstr("holds 2 non-finite voxels"));
}

}  // namespace
}  // namespace dlwpt::testing
