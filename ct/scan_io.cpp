// The only translation unit that sees ITK: its headers are heavy and its macros leak.
#include "dlwpt/ct/scan_io.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

#include <gdcmTrace.h>
#include <itkGDCMImageIO.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageSeriesReader.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <metaImage.h>

#include "dlwpt/ct/dicom_file.h"
#include "dlwpt/ct/metaimage_data.h"
#include "dlwpt/weights/atomic_file.h"

namespace dlwpt::ct {

namespace fs = std::filesystem;

namespace {

using FloatImage = itk::Image<float, 3>;

// Relative deviation from the typical slice distance above which a series is rejected.
constexpr double kSliceSpacingTolerance = 0.05;

// ITK's messages start with the source location; keep the description, without the object
// addresses ITK prints ("ITK ERROR: Image(0x55cd...): ...").
std::string itk_message(const itk::ExceptionObject& error) {
  const char* description = error.GetDescription();
  static const std::regex kAddress(R"(\(0x[0-9a-fA-F]+\))");
  return std::regex_replace(first_line(description && *description ? description : error.what()), kAddress, "");
}

VolumeGeometry geometry_of(const FloatImage& image) {
  VolumeGeometry geometry;
  for (unsigned axis = 0; axis < 3; ++axis) {
    geometry.origin[axis] = image.GetOrigin()[axis];
    geometry.spacing[axis] = image.GetSpacing()[axis];
    for (unsigned column = 0; column < 3; ++column) {
      geometry.direction[axis * 3 + column] = image.GetDirection()(axis, column);
    }
  }
  return geometry;
}

template <typename Image>
void set_geometry(Image& image, const VolumeGeometry& geometry) {
  typename Image::PointType origin;
  typename Image::SpacingType spacing;
  typename Image::DirectionType direction;
  for (unsigned axis = 0; axis < 3; ++axis) {
    origin[axis] = geometry.origin[axis];
    spacing[axis] = geometry.spacing[axis];
    for (unsigned column = 0; column < 3; ++column) {
      direction(axis, column) = geometry.direction[axis * 3 + column];
    }
  }
  image.SetOrigin(origin);
  image.SetSpacing(spacing);
  image.SetDirection(direction);
}

// Copies ITK's x-fastest buffer into a [z, y, x] tensor.
torch::Tensor voxels_of(const FloatImage& image) {
  const auto size = image.GetLargestPossibleRegion().GetSize();
  return torch::from_blob(const_cast<float*>(image.GetBufferPointer()),
                          {static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]),
                           static_cast<int64_t>(size[0])},
                          torch::kFloat)
      .clone();
}

std::string format_size(const std::vector<int64_t>& size) {
  std::string text;
  for (size_t i = 0; i < size.size(); ++i) text += (i ? " x " : "") + std::to_string(size[i]);
  return text;
}

// Before anything of the scan's size is allocated: a header may claim any size.
void check_size(const std::string& path, const std::vector<int64_t>& size, int64_t max_voxels) {
  int64_t voxels = 1;
  for (int64_t side : size) {
    if (side <= 0) throw ScanError("scan '" + path + "' claims an empty size (" + format_size(size) + " voxels)");
    if (voxels > max_voxels / side) {
      throw LimitError("scan '" + path + "' has " + format_size(size) + " voxels, more than the limit of " +
                       std::to_string(max_voxels) + " (--max-voxels raises it)");
    }
    voxels *= side;
  }
}

// NaN or infinite HU would pass through the U-Net as NaN probabilities and silently empty
// masks; such a scan is refused whole.
void check_finite(const std::string& path, const torch::Tensor& hu) {
  const int64_t bad = hu.numel() - torch::isfinite(hu).sum().item<int64_t>();
  if (bad > 0) {
    throw ScanError("scan '" + path + "' holds " + std::to_string(bad) +
                    " non-finite voxels (NaN or infinity)");
  }
}

using DicomSlices = std::vector<std::pair<std::string, DicomFileInfo>>;

template <size_t N>
bool nearly_equal(const std::optional<std::array<double, N>>& a,
                  const std::optional<std::array<double, N>>& b) {
  constexpr double kSameGeometry = 1e-4;
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  for (size_t i = 0; i < N; ++i) {
    if (std::abs((*a)[i] - (*b)[i]) > kSameGeometry * std::max(1.0, std::abs((*b)[i]))) return false;
  }
  return true;
}

// GDCM takes the first slice's pixel spacing and orientation for the whole series: slices
// that disagree, or that have no position, would put voxels and candidates at wrong places.
// (Each slice's own tags were checked by inspect_dicom_file.)
void check_slices_agree(const DicomSlices& slices) {
  const auto& [first_file, first] = slices.front();
  for (const auto& [file, info] : slices) {
    if (!info.position) throw ScanError("DICOM slice '" + file + "' has no Image Position (Patient)");
    if (!nearly_equal(info.pixel_spacing, first.pixel_spacing) ||
        !nearly_equal(info.orientation, first.orientation)) {
      throw ScanError("DICOM slice '" + file + "' has another pixel spacing or orientation than '" +
                      first_file + "': the slices of one series must share them");
    }
  }
}

// The slices' normal, row x column direction; GDCM's identity direction (normal z) without
// an orientation.
std::array<double, 3> slice_normal(const DicomFileInfo& slice) {
  if (!slice.orientation) return {0, 0, 1};
  const auto& o = *slice.orientation;
  return {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
}

double along(const std::array<double, 3>& position, const std::array<double, 3>& normal) {
  return position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2];
}

std::vector<double> positions_along_normal(const DicomSlices& slices) {
  const auto normal = slice_normal(slices.front().second);
  std::vector<double> positions;
  for (const auto& slice : slices) positions.push_back(along(*slice.second.position, normal));
  return positions;
}

// Positions and sizes in millimetres must be finite, and voxel sizes positive: ITK accepts
// NaN and absurd spacings, which would put every candidate at a wrong place. (MetaIO reads a
// negative spacing as a flipped axis, which is a valid geometry.)
void check_geometry(const std::string& path, const VolumeGeometry& geometry) {
  constexpr double kLargestSpacingMm = 1e6;
  const auto all_finite = [](const auto& values) {
    return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
  };
  const bool plausible = std::all_of(geometry.spacing.begin(), geometry.spacing.end(),
                                     [](double v) { return v > 0 && v < kLargestSpacingMm; });
  if (!all_finite(geometry.spacing) || !plausible) {
    std::ostringstream message;
    message << "scan '" << path << "' has voxel spacing " << geometry.spacing[0] << " x "
            << geometry.spacing[1] << " x " << geometry.spacing[2]
            << " mm; each must be positive and below " << kLargestSpacingMm << " mm";
    throw ScanError(message.str());
  }
  if (!all_finite(geometry.origin) || !all_finite(geometry.direction)) {
    throw ScanError("scan '" + path + "' has a non-finite origin or direction");
  }
}

// A missing slice shows as one gap twice as wide as the others; ITK only warns about it.
void check_even_slice_spacing(const std::string& folder, const std::vector<double>& positions) {
  if (!std::all_of(positions.begin(), positions.end(), [](double p) { return std::isfinite(p); })) {
    throw ScanError("DICOM series in '" + folder + "' has non-finite slice positions");
  }
  if (positions.size() < 2) return;
  std::vector<double> gaps;
  for (size_t i = 1; i < positions.size(); ++i) gaps.push_back(std::abs(positions[i] - positions[i - 1]));
  std::vector<double> sorted = gaps;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double typical = sorted[sorted.size() / 2];
  if (!(typical > 0)) {
    throw ScanError("DICOM series in '" + folder + "' has its slices at one position (their "
                    "Image Position (Patient) tags do not place them)");
  }
  for (size_t i = 0; i < gaps.size(); ++i) {
    if (std::abs(gaps[i] - typical) > kSliceSpacingTolerance * typical) {
      std::ostringstream message;
      message << "DICOM series in '" << folder << "' is not evenly spaced: slices " << i
              << " and " << i + 1 << " are " << gaps[i] << " mm apart, the others " << typical
              << " mm (a missing or duplicated slice?)";
      throw ScanError(message.str());
    }
  }
}

MetaImageShape shape_of(itk::MetaImageIO& io) {
  MetaImageShape shape;
  for (unsigned axis = 0; axis < io.GetNumberOfDimensions(); ++axis) {
    shape.dims.push_back(static_cast<int64_t>(io.GetDimensions(axis)));
  }
  shape.voxel_bytes = io.GetComponentSize() * io.GetNumberOfComponents();
  return shape;
}

std::string lowercase_extension(const std::string& path) {
  std::string extension = fs::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return extension;
}

bool ends_with(const std::string& text, const std::string& ending) {
  return text.size() >= ending.size() && text.compare(text.size() - ending.size(), ending.size(), ending) == 0;
}

itk::ImageIOBase::Pointer image_io_for(VolumeFormat format) {
  if (format == VolumeFormat::nifti) return itk::NiftiImageIO::New().GetPointer();
  return itk::MetaImageIO::New().GetPointer();
}

template <typename Pixel>
void write_image(const torch::Tensor& voxels, const VolumeGeometry& geometry,
                 const std::string& path, bool compress) {
  using Image = itk::Image<Pixel, 3>;
  auto image = Image::New();
  typename Image::SizeType size;
  size[0] = voxels.size(2);
  size[1] = voxels.size(1);
  size[2] = voxels.size(0);
  image->SetRegions(typename Image::RegionType(size));
  image->Allocate();
  set_geometry(*image, geometry);
  const torch::Tensor contiguous = voxels.contiguous();
  std::memcpy(image->GetBufferPointer(), contiguous.data_ptr(), contiguous.nbytes());

  auto writer = itk::ImageFileWriter<Image>::New();
  writer->SetImageIO(image_io_for(volume_format(path)));
  writer->SetFileName(path);
  writer->SetInput(image);
  writer->SetUseCompression(compress);
  writer->Update();
}

// The files of a DICOM folder after the structural check of each (dicom_file.h): GDCM asserts
// (aborting the process) on files it cannot parse, so it only ever sees sound images.
struct DicomFolder {
  std::map<std::string, DicomSlices> images;  // by series
  // "'file' problem" lines by series; "" holds the bad files whose series cannot be told.
  std::map<std::string, std::vector<std::string>> bad_files;

  std::vector<std::string> uids() const {
    std::vector<std::string> result;
    for (const auto& [uid, files] : images) result.push_back(uid);
    for (const auto& [uid, problems] : bad_files) {
      if (!uid.empty() && !images.count(uid)) result.push_back(uid);
    }
    std::sort(result.begin(), result.end());
    return result;
  }
};

DicomFolder scan_dicom_folder(const std::string& folder) {
  if (!fs::is_directory(folder)) throw ScanError("DICOM folder '" + folder + "' does not exist");
  std::vector<std::string> paths;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error)) {
    if (entry.is_regular_file()) paths.push_back(entry.path().string());
  }
  if (error) throw ScanError("cannot list the DICOM folder '" + folder + "': " + error.message());
  std::sort(paths.begin(), paths.end());
  DicomFolder scanned;
  for (const auto& path : paths) {
    DicomFileInfo info = inspect_dicom_file(path);
    if (info.kind == DicomFileInfo::Kind::Image && info.series_uid.empty()) {
      info.kind = DicomFileInfo::Kind::Broken;
      info.problem = "has no SeriesInstanceUID (0020,000E)";
    }
    if (info.kind == DicomFileInfo::Kind::Broken) {
      scanned.bad_files[info.series_uid].push_back("'" + path + "' " + info.problem);
    } else if (info.kind == DicomFileInfo::Kind::Image) {
      scanned.images[info.series_uid].emplace_back(path, std::move(info));
    }
  }
  return scanned;
}

// A bad file fails its own series; one whose series is unknown fails every series of the folder.
void check_no_bad_files(const DicomFolder& scanned, const std::string& folder, const std::string& uid) {
  std::vector<std::string> problems;
  const std::vector<std::string> keys = uid.empty() ? std::vector<std::string>{""}
                                                     : std::vector<std::string>{uid, ""};
  for (const std::string& key : keys) {
    const auto found = scanned.bad_files.find(key);
    if (found != scanned.bad_files.end()) problems.insert(problems.end(), found->second.begin(), found->second.end());
  }
  if (problems.empty()) return;
  const std::string series = uid.empty() ? "DICOM folder '" + folder + "'"
                                         : "DICOM series " + uid + " in '" + folder + "'";
  std::string message = series + ": file " + problems.front();
  if (problems.size() > 1) message += " (and " + std::to_string(problems.size() - 1) + " more bad files)";
  throw ScanError(message);
}

// Slice order along the slice normal, as GDCM orders a series; without an orientation or a
// position on every slice, by instance number. Ties keep the order of the names.
DicomSlices ordered_slices(DicomSlices slices) {
  const auto& first = slices.front().second;
  const bool positioned = first.orientation &&
      std::all_of(slices.begin(), slices.end(), [](const auto& slice) { return slice.second.position.has_value(); });
  const auto normal = slice_normal(first);
  const auto key = [&](const DicomFileInfo& info) {
    return positioned ? along(*info.position, normal) : static_cast<double>(info.instance_number.value_or(0));
  };
  std::stable_sort(slices.begin(), slices.end(),
                   [&](const auto& a, const auto& b) { return key(a.second) < key(b.second); });
  return slices;
}

std::vector<std::string> paths_of(const DicomSlices& slices) {
  std::vector<std::string> paths;
  for (const auto& slice : slices) paths.push_back(slice.first);
  return paths;
}

std::string choose_series(const DicomFolder& scanned, const std::string& folder, const std::string& wanted) {
  const auto uids = scanned.uids();
  if (uids.empty()) {
    check_no_bad_files(scanned, folder, "");
    throw ScanError("folder '" + folder + "' holds no DICOM images");
  }
  if (wanted.empty()) {
    if (uids.size() == 1) return uids.front();
    std::string message = "folder '" + folder + "' holds " + std::to_string(uids.size()) +
                          " DICOM series; choose one of:";
    for (const auto& candidate : uids) message += " " + candidate;
    throw ScanError(message);
  }
  if (std::find(uids.begin(), uids.end(), wanted) == uids.end()) {
    throw ScanError("folder '" + folder + "' holds no DICOM series " + wanted);
  }
  return wanted;
}

// After a write, the files must hold every byte (a full disk may only show here), on the disk.
void verify_written(const std::string& path, const torch::Tensor& voxels) {
  MetaImageShape shape;
  shape.dims = {voxels.size(2), voxels.size(1), voxels.size(0)};
  shape.voxel_bytes = voxels.element_size();
  check_metaimage_data(path, shape);
  sync_to_disk(path);
  for (const char* extension : {".raw", ".zraw"}) {
    const fs::path data = fs::path(path).replace_extension(extension);
    if (lowercase_extension(path) == ".mhd" && fs::exists(data)) sync_to_disk(data.string());
  }
}

// A NIfTI file read back whole must hold exactly the voxels: znzlib's gzip writer does not
// report a short write.
template <typename Pixel>
void verify_nifti(const std::string& path, const torch::Tensor& voxels) {
  using Image = itk::Image<Pixel, 3>;
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetImageIO(itk::NiftiImageIO::New());
  reader->SetFileName(path);
  reader->Update();
  const auto size = reader->GetOutput()->GetLargestPossibleRegion().GetSize();
  const std::vector<int64_t> shape{static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]),
                                   static_cast<int64_t>(size[0])};
  const auto read = torch::from_blob(reader->GetOutput()->GetBufferPointer(), shape, voxels.options());
  if (read.sizes() != voxels.sizes() || !torch::equal(read, voxels)) {
    throw ScanError("the file read back does not hold the voxels written");
  }
  sync_to_disk(path);
}

void remove_written(const std::string& path) {
  std::error_code ignored;
  fs::remove(path, ignored);
  if (lowercase_extension(path) != ".mhd") return;
  fs::remove(fs::path(path).replace_extension(".raw"), ignored);
  fs::remove(fs::path(path).replace_extension(".zraw"), ignored);
}

void write_checked(const torch::Tensor& voxels, const VolumeGeometry& geometry, const std::string& path,
                   bool compress) {
  if (voxels.dim() != 3) {
    throw ScanError("cannot write '" + path + "': a volume needs 3 dimensions, got " +
                    std::to_string(voxels.dim()));
  }
  if (voxels.scalar_type() != torch::kFloat && voxels.scalar_type() != torch::kByte) {
    throw ScanError("cannot write '" + path + "': voxels must be float32 or uint8, got " +
                    std::string(c10::toString(voxels.scalar_type())));
  }
  const bool nifti = volume_format(path) == VolumeFormat::nifti;
  const torch::Tensor contiguous = voxels.contiguous();
  try {
    if (voxels.scalar_type() == torch::kFloat) {
      write_image<float>(contiguous, geometry, path, compress);
      if (nifti) verify_nifti<float>(path, contiguous);
    } else {
      write_image<unsigned char>(contiguous, geometry, path, compress);
      if (nifti) verify_nifti<unsigned char>(path, contiguous);
    }
    if (!nifti) verify_written(path, contiguous);
  } catch (const itk::ExceptionObject& error) {
    remove_written(path);
    throw ScanError("cannot write '" + path + "': " + itk_message(error));
  } catch (const Error& error) {
    // MetaIO does not check its writes: a short file is only found by reading it back.
    remove_written(path);
    throw ScanError("cannot write '" + path + "' completely (disk full?): " + std::string(error.what()));
  }
}

}  // namespace

std::vector<std::string> list_dicom_series(const std::string& folder) {
  const DicomFolder scanned = scan_dicom_folder(folder);
  const auto uids = scanned.uids();
  if (uids.empty()) check_no_bad_files(scanned, folder, "");  // a bad file of an unknown series
  return uids;
}

std::vector<std::string> dicom_series_files(const std::string& folder, const std::string& series_uid) {
  const DicomFolder scanned = scan_dicom_folder(folder);
  const auto found = scanned.images.find(series_uid);
  if (found == scanned.images.end()) return {};
  return paths_of(ordered_slices(found->second));
}

CtVolume read_dicom_series(const std::string& folder, const std::string& series_uid, int64_t max_voxels) {
  // GDCM prints several lines per slice for every private tag its dictionary lacks (scanners
  // write many); the walker has checked each file, and real problems arrive as exceptions.
  gdcm::Trace::WarningOff();
  const DicomFolder scanned = scan_dicom_folder(folder);
  const std::string uid = choose_series(scanned, folder, series_uid);
  check_no_bad_files(scanned, folder, uid);
  const auto found = scanned.images.find(uid);
  if (found == scanned.images.end()) throw ScanError("DICOM series " + uid + " in '" + folder + "' has no images");
  const DicomSlices slices = ordered_slices(found->second);
  check_slices_agree(slices);
  check_even_slice_spacing(folder, positions_along_normal(slices));
  try {
    auto reader = itk::ImageSeriesReader<FloatImage>::New();
    reader->SetImageIO(itk::GDCMImageIO::New());
    reader->SetFileNames(paths_of(slices));
    reader->UpdateOutputInformation();
    const auto size = reader->GetOutput()->GetLargestPossibleRegion().GetSize();
    check_size(folder, {static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]),
                        static_cast<int64_t>(size[0])}, max_voxels);
    reader->Update();

    CtVolume volume;
    volume.geometry = geometry_of(*reader->GetOutput());
    check_geometry(folder, volume.geometry);
    volume.hu = voxels_of(*reader->GetOutput());
    check_finite(folder, volume.hu);
    volume.series_uid = uid;
    return volume;
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot read DICOM series " + uid + " in '" + folder + "': " +
                    itk_message(error));
  }
}

CtVolume read_metaimage(const std::string& path, int64_t max_voxels) {
  if (const auto problem = regular_file_problem(path)) throw ScanError("scan '" + path + "' " + *problem);
  check_metaimage_header(path);
  try {
    auto io = itk::MetaImageIO::New();
    if (!io->CanReadFile(path.c_str())) {
      throw ScanError("scan '" + path + "' is not a MetaImage file");
    }
    io->SetFileName(path);
    io->ReadImageInformation();
    if (io->GetNumberOfDimensions() != 3) {
      throw ScanError("scan '" + path + "' is " + std::to_string(io->GetNumberOfDimensions()) +
                      "D; a CT volume must be 3D");
    }
    check_size(path, {static_cast<int64_t>(io->GetDimensions(2)),
                      static_cast<int64_t>(io->GetDimensions(1)),
                      static_cast<int64_t>(io->GetDimensions(0))}, max_voxels);
    check_metaimage_data(path, shape_of(*io));

    auto reader = itk::ImageFileReader<FloatImage>::New();
    reader->SetImageIO(io);
    reader->SetFileName(path);
    reader->Update();

    CtVolume volume;
    volume.geometry = geometry_of(*reader->GetOutput());
    check_geometry(path, volume.geometry);
    volume.hu = voxels_of(*reader->GetOutput());
    check_finite(path, volume.hu);
    volume.series_uid = fs::path(path).stem().string();
    return volume;
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot read scan '" + path + "': " + itk_message(error));
  }
}

CtVolume read_scan(const std::string& path, int64_t max_voxels) {
  if (fs::is_directory(path)) return read_dicom_series(path, "", max_voxels);
  const std::string extension = lowercase_extension(path);
  if (extension == ".mhd" || extension == ".mha") return read_metaimage(path, max_voxels);
  if (!fs::exists(path)) throw ScanError("scan '" + path + "' does not exist");
  throw ScanError("scan '" + path + "' is neither a DICOM folder nor a MetaImage (.mhd, .mha)");
}

VolumeFormat volume_format(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ends_with(name, ".mhd") || ends_with(name, ".mha")) return VolumeFormat::metaimage;
  if (ends_with(name, ".nii") || ends_with(name, ".nii.gz")) return VolumeFormat::nifti;
  throw ScanError("cannot write '" + path + "': volumes are written as MetaImage (.mhd, .mha) or "
                  "NIfTI (.nii, .nii.gz)");
}

std::string volume_extension(VolumeFormat format) {
  return format == VolumeFormat::nifti ? ".nii.gz" : ".mhd";
}

void write_metaimage(const torch::Tensor& voxels, const VolumeGeometry& geometry,
                     const std::string& path, bool compress) {
  if (volume_format(path) != VolumeFormat::metaimage) {
    throw ScanError("cannot write '" + path + "': MetaImage files end in .mhd or .mha");
  }
  write_checked(voxels, geometry, path, compress);
}

void write_volume(const torch::Tensor& voxels, const VolumeGeometry& geometry, const std::string& path) {
  volume_format(path);  // a name of no known format fails before anything is written
  write_checked(voxels, geometry, path, /*compress=*/false);
}

}  // namespace dlwpt::ct
