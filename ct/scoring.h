#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "dlwpt/ct/annotations.h"
#include "dlwpt/ct/candidates.h"

namespace dlwpt::ct {

/// The book's 3 x 4 confusion table (nodule_analysis.match_and_score). Rows: truth is not a
/// nodule, a benign nodule, a malignant nodule. Columns: not detected, detected by the
/// segmentation only (nodule probability below the threshold), detected as a benign nodule
/// (or as a nodule without a malignancy model), detected as malignant. A detection matches a
/// nodule when their distance divided by its diameter is below 0.7; a nodule matched by several
/// detections counts the highest column.
using Confusion = std::array<std::array<int64_t, 4>, 3>;
Confusion match_and_score(const std::vector<Candidate>& detections,
                          const std::vector<Annotation>& truth, double threshold = 0.5);

Confusion& operator+=(Confusion& total, const Confusion& scan);
std::string format_confusion(const Confusion& confusion);

}  // namespace dlwpt::ct
