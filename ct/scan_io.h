#pragma once

#include <string>
#include <vector>

#include "ct/volume.h"

namespace dlwpt::ct {

/// The DICOM series in a folder, by SeriesInstanceUID (sorted).
std::vector<std::string> list_dicom_series(const std::string& folder);

/// The files of one DICOM series of a folder, in slice order along the slice normal (not the
/// order of their names).
std::vector<std::string> dicom_series_files(const std::string& folder, const std::string& series_uid);

/// Reads one DICOM series of a folder into Hounsfield units (rescale slope and intercept
/// applied), slices ordered along the slice normal. `series_uid` may be empty when the folder
/// holds one series. Throws ScanError for a folder without DICOM images, an ambiguous or
/// unknown series, unreadable files, or slices that are not evenly spaced (a missing slice).
CtVolume read_dicom_series(const std::string& folder, const std::string& series_uid = "");

/// Reads a MetaImage scan (`.mhd` with `.raw` or `.zraw`, or a single `.mha`), as the LUNA16
/// data set ships them; the voxel values are taken as Hounsfield units. Throws ScanError for
/// a missing or truncated data file, a volume that is not 3D, or an absurd size.
CtVolume read_metaimage(const std::string& path);

/// A DICOM folder (its only series) or a MetaImage file, told apart by the path.
CtVolume read_scan(const std::string& path);

/// Writes D x H x W voxels (float32 or uint8) with their geometry as MetaImage (`.mhd` with a
/// `.raw`, or one `.mha`), which ITK-SNAP and 3D Slicer open; `compress` writes zlib data
/// (`.zraw`), as some LUNA16 copies ship.
void write_metaimage(const torch::Tensor& voxels, const VolumeGeometry& geometry,
                     const std::string& path, bool compress = false);

/// The largest volume the readers accept, in voxels (a header claiming more is rejected
/// before any memory is allocated): 2^31, e.g. 8192 slices of 512 x 512.
constexpr int64_t kMaxVoxels = int64_t{1} << 31;

}  // namespace dlwpt::ct
