#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dlwpt/ct/volume.h"

namespace dlwpt::ct {

/// The largest volume the readers accept by default, in voxels: 2^28, e.g. 1024 slices of
/// 512 x 512 (LUNA16's largest scans have ~760). ct-segment holds about 24 bytes per voxel at
/// its peak (float32 HU and probabilities, int64 component labels, masks, and ITK's float
/// buffer while reading), so the default keeps a scan near 6 GB; `--max-voxels` raises it.
/// A header claiming more throws LimitError before anything of its size is allocated.
constexpr int64_t kDefaultMaxVoxels = int64_t{1} << 28;

/// Every file of a DICOM folder is checked for a sound structure (ct/dicom_file.h) before GDCM
/// parses it: a file that is not DICOM is ignored; a cut or inconsistent DICOM file fails its
/// own series (or, when its series cannot be read, every series of the folder) with a
/// ScanError naming it, and never reaches GDCM, whose assertions would abort the process.

/// The DICOM series in a folder, by SeriesInstanceUID (sorted), including series whose files
/// are bad (they fail when read). Throws ScanError when the folder holds bad DICOM files of
/// unknown series and no series.
std::vector<std::string> list_dicom_series(const std::string& folder);

/// The files of one DICOM series of a folder, in slice order along the slice normal (not the
/// order of their names).
std::vector<std::string> dicom_series_files(const std::string& folder, const std::string& series_uid);

/// Reads one DICOM series of a folder into Hounsfield units (rescale slope and intercept
/// applied), slices ordered along the slice normal. `series_uid` may be empty when the folder
/// holds one series. Throws ScanError for a folder without DICOM images, an ambiguous or
/// unknown series, bad or unreadable files, slices that are not evenly spaced (a missing
/// slice), or non-finite voxels; LimitError for more than `max_voxels` voxels.
CtVolume read_dicom_series(const std::string& folder, const std::string& series_uid = "",
                           int64_t max_voxels = kDefaultMaxVoxels);

/// Reads a MetaImage scan (`.mhd` with `.raw` or `.zraw`, or a single `.mha`), as the LUNA16
/// data set ships them; the voxel values are taken as Hounsfield units. The data is checked
/// complete before MetaIO reads it (ct/metaimage_data.h: LOCAL or external, raw or zlib,
/// single, LIST or pattern files, HeaderSize), since MetaIO only warns about missing data.
/// Throws ScanError for missing, truncated or corrupt data, a volume that is not 3D or empty,
/// or voxels that are NaN or infinite (the message gives their count); LimitError for more
/// than `max_voxels` voxels.
CtVolume read_metaimage(const std::string& path, int64_t max_voxels = kDefaultMaxVoxels);

/// A DICOM folder (its only series) or a MetaImage file, told apart by the path.
CtVolume read_scan(const std::string& path, int64_t max_voxels = kDefaultMaxVoxels);

/// Writes D x H x W voxels (float32 or uint8) with their geometry as MetaImage (`.mhd` with a
/// `.raw`, or one `.mha`), which ITK-SNAP and 3D Slicer open; `compress` writes zlib data
/// (`.zraw`), as some LUNA16 copies ship. The written files are read back for their sizes (and
/// the zlib stream inflated) and flushed to the disk: a short write (a full disk, which MetaIO
/// does not notice) removes them and throws ScanError.
void write_metaimage(const torch::Tensor& voxels, const VolumeGeometry& geometry,
                     const std::string& path, bool compress = false);

/// The file formats `write_volume` writes, chosen by the name's ending.
enum class VolumeFormat {
  metaimage,  ///< `.mhd` (with `.raw`) or `.mha`
  nifti,      ///< `.nii`, or `.nii.gz` (gzip-compressed), as 3D Slicer, ITK-SNAP and nibabel read
};

/// The format a file name asks for; ScanError for any other ending.
VolumeFormat volume_format(const std::string& path);

/// The file name ending of a format (".mhd" or ".nii.gz").
std::string volume_extension(VolumeFormat format);

/// Writes voxels as `write_metaimage` does, in the format the name asks for. NIfTI files hold
/// the geometry in RAS as the format wants (ITK turns the LPS direction and origin over), and
/// are read back whole and compared after writing (the gzip writer does not report a full
/// disk): a file that does not hold exactly the voxels is removed and throws ScanError.
void write_volume(const torch::Tensor& voxels, const VolumeGeometry& geometry, const std::string& path);

}  // namespace dlwpt::ct
