#pragma once

#include <string>
#include <vector>

#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/ct/volume.h"

namespace dlwpt::ct_segment {

/// What to write beside the candidates and the mask.
struct OutputOptions {
  /// mask, probability and volume as MetaImage (.mhd + .raw) or NIfTI (.nii.gz)
  ct::VolumeFormat volume_format = ct::VolumeFormat::metaimage;
  bool probability_map = false;  ///< probability.mhd, float32
  bool volume = false;           ///< volume.mhd: the scan itself in HU (e.g. from DICOM)
  int64_t previews = 0;          ///< PNG slices of this many best candidates
  bool malignancy = false;       ///< a malignancy column
};

/// Candidates sorted by nodule probability, highest first (ties by id).
std::vector<ct::Candidate> by_probability(std::vector<ct::Candidate> candidates);

/// candidates.csv: id, center index/row/column, x/y/z in mm, voxels, probabilities.
std::string candidates_csv(const std::vector<ct::Candidate>& sorted, bool malignancy);
/// candidates.json: the scan's identity and geometry, and the same candidates.
std::string candidates_json(const ct::CtVolume& volume, const std::vector<ct::Candidate>& sorted,
                            bool malignancy);

/// Writes every output of one scan into `folder` (which must exist): mask.mhd/.raw (uint8, the
/// scan's geometry), candidates.csv and .json, and the optional probability map, volume and
/// previews.
void write_scan_outputs(const std::string& folder, const ct::CtVolume& volume,
                        const ct::ScanAnalysis& analysis, const OutputOptions& options);

}  // namespace dlwpt::ct_segment
