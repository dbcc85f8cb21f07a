#include "dlwpt/ct/scoring.h"

#include <cmath>
#include <stdexcept>

namespace dlwpt::ct {

namespace {

int64_t detection_class(const Candidate& detection, double threshold) {
  if (!(detection.nodule_probability >= threshold)) return 1;
  // Without a malignancy model the book counts every nodule as benign.
  return detection.malignancy_probability >= threshold ? 3 : 2;
}

}  // namespace

Confusion match_and_score(const std::vector<Candidate>& detections,
                          const std::vector<Annotation>& truth, double threshold) {
  Confusion confusion{};
  std::vector<bool> matched_detection(detections.size(), false);
  for (const auto& nodule : truth) {
    int64_t best = 0;
    for (size_t d = 0; d < detections.size(); ++d) {
      double squared = 0;
      for (int axis = 0; axis < 3; ++axis) {
        const double delta = detections[d].center_xyz[axis] - nodule.center_xyz[axis];
        squared += delta * delta;
      }
      if (std::sqrt(squared) / nodule.diameter_mm < 0.7) {
        best = std::max(best, detection_class(detections[d], threshold));
        matched_detection[d] = true;
      }
    }
    ++confusion[nodule.malignant ? 2 : 1][best];
  }
  for (size_t d = 0; d < detections.size(); ++d) {
    if (!matched_detection[d]) ++confusion[0][detection_class(detections[d], threshold)];
  }
  return confusion;
}

Confusion& operator+=(Confusion& total, const Confusion& scan) {
  for (size_t row = 0; row < 3; ++row) {
    for (size_t column = 0; column < 4; ++column) total[row][column] += scan[row][column];
  }
  return total;
}

std::string format_confusion(const Confusion& confusion) {
  static const char* rows[] = {"Non-nodules", "Benign", "Malignant"};
  std::ostringstream out;
  out << "                 | Complete Miss | Filtered Out | Pred. Benign | Pred. Malignant\n";
  for (size_t row = 0; row < 3; ++row) {
    char line[128];
    std::snprintf(line, sizeof line, "%16s | %13s | %12lld | %12lld | %15lld\n", rows[row],
                  row == 0 ? "" : std::to_string(confusion[row][0]).c_str(),
                  static_cast<long long>(confusion[row][1]), static_cast<long long>(confusion[row][2]),
                  static_cast<long long>(confusion[row][3]));
    out << line;
  }
  return out.str();
}

}  // namespace dlwpt::ct
