// The only translation unit that sees ITK: its headers are heavy and its macros leak.
#include "ct/scan_io.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageSeriesReader.h>
#include <itkMetaDataObject.h>
#include <itkMetaImageIO.h>
#include <metaImage.h>

namespace dlwpt::ct {

namespace fs = std::filesystem;

namespace {

using FloatImage = itk::Image<float, 3>;

// Relative deviation from the typical slice distance above which a series is rejected.
constexpr double kSliceSpacingTolerance = 0.05;

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// ITK's messages start with the source location; keep the description.
std::string itk_message(const itk::ExceptionObject& error) {
  const char* description = error.GetDescription();
  return first_line(description && *description ? description : error.what());
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

void check_size(const std::string& path, const std::vector<int64_t>& size) {
  int64_t voxels = 1;
  for (int64_t side : size) {
    if (side <= 0 || voxels > kMaxVoxels / side) {
      std::ostringstream message;
      message << "scan '" << path << "' claims an absurd size (";
      for (size_t i = 0; i < size.size(); ++i) message << (i ? " x " : "") << size[i];
      message << " voxels; at most " << kMaxVoxels << " are accepted)";
      throw ScanError(message.str());
    }
    voxels *= side;
  }
}

// The position of each slice along the slice normal (the direction's third column), from
// the DICOM Image Position (Patient) tag of each file.
std::vector<double> slice_positions(const itk::ImageSeriesReader<FloatImage>& reader,
                                    const VolumeGeometry& geometry) {
  std::vector<double> positions;
  const auto* dictionaries = reader.GetMetaDataDictionaryArray();
  for (const auto* dictionary : *dictionaries) {
    std::string text;
    if (!itk::ExposeMetaData<std::string>(*dictionary, "0020|0032", text)) return {};
    std::replace(text.begin(), text.end(), '\\', ' ');
    std::istringstream values(text);
    double position = 0;
    for (int axis = 0; axis < 3; ++axis) {
      double value = 0;
      if (!(values >> value)) return {};
      position += value * geometry.direction[axis * 3 + 2];
    }
    positions.push_back(position);
  }
  return positions;
}

// A missing slice shows as one gap twice as wide as the others; ITK only warns about it.
void check_even_slice_spacing(const std::string& folder, const std::vector<double>& positions) {
  if (positions.size() < 3) return;
  std::vector<double> gaps;
  for (size_t i = 1; i < positions.size(); ++i) gaps.push_back(std::abs(positions[i] - positions[i - 1]));
  std::vector<double> sorted = gaps;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double typical = sorted[sorted.size() / 2];
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

// MetaIO only prints a warning for a short data file and leaves the rest of the volume
// uninitialised; an uncompressed data file must hold every voxel.
void check_data_file_complete(const std::string& path, itk::MetaImageIO& io) {
  MetaImage* meta = io.GetMetaImagePointer();
  if (meta->CompressedData()) return;  // zlib reports its own truncation
  const std::string data_name = meta->ElementDataFileName();
  if (data_name == "LIST" || data_name.find('%') != std::string::npos) return;
  const fs::path data_file = data_name == "LOCAL" ? fs::path(path)
                                                  : fs::path(path).parent_path() / data_name;
  std::error_code error;
  const auto bytes = fs::file_size(data_file, error);
  if (error) throw ScanError("scan '" + path + "': its data file '" + data_file.string() + "' is missing");
  if (bytes < static_cast<std::uintmax_t>(io.GetImageSizeInBytes())) {
    throw ScanError("scan '" + path + "': its data file '" + data_file.string() + "' is truncated (" +
                    std::to_string(bytes) + " bytes, the header needs " +
                    std::to_string(io.GetImageSizeInBytes()) + ")");
  }
}

std::string lowercase_extension(const std::string& path) {
  std::string extension = fs::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return extension;
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
  writer->SetImageIO(itk::MetaImageIO::New());
  writer->SetFileName(path);
  writer->SetInput(image);
  writer->SetUseCompression(compress);
  writer->Update();
}

// Reads the headers of every file in a folder once; the series and their files come from it.
itk::GDCMSeriesFileNames::Pointer scan_dicom_folder(const std::string& folder) {
  if (!fs::is_directory(folder)) throw ScanError("DICOM folder '" + folder + "' does not exist");
  try {
    auto names = itk::GDCMSeriesFileNames::New();
    names->SetUseSeriesDetails(false);
    names->SetDirectory(folder);
    return names;
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot scan the DICOM folder '" + folder + "': " + itk_message(error));
  }
}

std::vector<std::string> series_uids(itk::GDCMSeriesFileNames& scanned, const std::string& folder) {
  try {
    std::vector<std::string> uids = scanned.GetSeriesUIDs();
    std::sort(uids.begin(), uids.end());
    return uids;
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot list the DICOM series in '" + folder + "': " + itk_message(error));
  }
}

std::vector<std::string> series_files(itk::GDCMSeriesFileNames& scanned, const std::string& folder,
                                      const std::string& uid) {
  try {
    return scanned.GetFileNames(uid);
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot list DICOM series " + uid + " in '" + folder + "': " + itk_message(error));
  }
}

}  // namespace

std::vector<std::string> list_dicom_series(const std::string& folder) {
  return series_uids(*scan_dicom_folder(folder), folder);
}

std::vector<std::string> dicom_series_files(const std::string& folder, const std::string& series_uid) {
  return series_files(*scan_dicom_folder(folder), folder, series_uid);
}

CtVolume read_dicom_series(const std::string& folder, const std::string& series_uid) {
  const auto scanned = scan_dicom_folder(folder);
  const auto uids = series_uids(*scanned, folder);
  if (uids.empty()) throw ScanError("folder '" + folder + "' holds no DICOM images");
  std::string uid = series_uid;
  if (uid.empty()) {
    if (uids.size() > 1) {
      std::string message = "folder '" + folder + "' holds " + std::to_string(uids.size()) +
                            " DICOM series; choose one of:";
      for (const auto& candidate : uids) message += " " + candidate;
      throw ScanError(message);
    }
    uid = uids.front();
  } else if (std::find(uids.begin(), uids.end(), uid) == uids.end()) {
    throw ScanError("folder '" + folder + "' holds no DICOM series " + uid);
  }

  const auto files = series_files(*scanned, folder, uid);
  try {
    if (files.empty()) throw ScanError("DICOM series " + uid + " in '" + folder + "' has no files");

    auto reader = itk::ImageSeriesReader<FloatImage>::New();
    reader->SetImageIO(itk::GDCMImageIO::New());
    reader->SetFileNames(files);
    reader->UpdateOutputInformation();
    const auto size = reader->GetOutput()->GetLargestPossibleRegion().GetSize();
    check_size(folder, {static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]),
                        static_cast<int64_t>(size[0])});
    reader->Update();

    CtVolume volume;
    volume.geometry = geometry_of(*reader->GetOutput());
    check_even_slice_spacing(folder, slice_positions(*reader, volume.geometry));
    volume.hu = voxels_of(*reader->GetOutput());
    volume.series_uid = uid;
    return volume;
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot read DICOM series " + uid + " in '" + folder + "': " +
                    itk_message(error));
  }
}

CtVolume read_metaimage(const std::string& path) {
  if (!fs::is_regular_file(path)) throw ScanError("scan '" + path + "' does not exist");
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
                      static_cast<int64_t>(io->GetDimensions(0))});
    check_data_file_complete(path, *io);

    auto reader = itk::ImageFileReader<FloatImage>::New();
    reader->SetImageIO(io);
    reader->SetFileName(path);
    reader->Update();

    CtVolume volume;
    volume.geometry = geometry_of(*reader->GetOutput());
    volume.hu = voxels_of(*reader->GetOutput());
    volume.series_uid = fs::path(path).stem().string();
    return volume;
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot read scan '" + path + "': " + itk_message(error));
  }
}

CtVolume read_scan(const std::string& path) {
  if (fs::is_directory(path)) return read_dicom_series(path);
  const std::string extension = lowercase_extension(path);
  if (extension == ".mhd" || extension == ".mha") return read_metaimage(path);
  if (!fs::exists(path)) throw ScanError("scan '" + path + "' does not exist");
  throw ScanError("scan '" + path + "' is neither a DICOM folder nor a MetaImage (.mhd, .mha)");
}

void write_metaimage(const torch::Tensor& voxels, const VolumeGeometry& geometry,
                     const std::string& path, bool compress) {
  if (voxels.dim() != 3) {
    throw ScanError("cannot write '" + path + "': a volume needs 3 dimensions, got " +
                    std::to_string(voxels.dim()));
  }
  const std::string extension = lowercase_extension(path);
  if (extension != ".mhd" && extension != ".mha") {
    throw ScanError("cannot write '" + path + "': MetaImage files end in .mhd or .mha");
  }
  try {
    if (voxels.scalar_type() == torch::kFloat) {
      write_image<float>(voxels, geometry, path, compress);
    } else if (voxels.scalar_type() == torch::kByte) {
      write_image<unsigned char>(voxels, geometry, path, compress);
    } else {
      throw ScanError("cannot write '" + path + "': voxels must be float32 or uint8, got " +
                      std::string(c10::toString(voxels.scalar_type())));
    }
  } catch (const itk::ExceptionObject& error) {
    throw ScanError("cannot write '" + path + "': " + itk_message(error));
  }
}

}  // namespace dlwpt::ct
