#include "apps/ct_segment/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "apps/ct_segment/previews.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/weights/atomic_file.h"

namespace dlwpt::ct_segment {

namespace fs = std::filesystem;

namespace {

std::string number(double value) {
  if (std::isnan(value)) return "";
  std::ostringstream out;
  out.precision(10);
  out << value;
  return out.str();
}

std::string json_number(double value) {
  return std::isnan(value) ? "null" : number(value);
}

std::string json_string(const std::string& text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      quoted += escaped;
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

template <size_t N>
std::string json_array(const std::array<double, N>& values) {
  std::string text = "[";
  for (size_t i = 0; i < N; ++i) text += (i ? ", " : "") + json_number(values[i]);
  return text + "]";
}

}  // namespace

std::vector<ct::Candidate> by_probability(std::vector<ct::Candidate> candidates) {
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.nodule_probability > b.nodule_probability;
  });
  return candidates;
}

std::string candidates_csv(const std::vector<ct::Candidate>& sorted, bool malignancy) {
  std::string text =
      "id,index,row,column,x_mm,y_mm,z_mm,voxels,nodule_probability" +
      std::string(malignancy ? ",malignancy_probability" : "") + "\n";
  for (const auto& c : sorted) {
    text += std::to_string(c.id) + "," + number(c.center_irc[0]) + "," + number(c.center_irc[1]) +
            "," + number(c.center_irc[2]) + "," + number(c.center_xyz[0]) + "," +
            number(c.center_xyz[1]) + "," + number(c.center_xyz[2]) + "," +
            std::to_string(c.voxels) + "," + number(c.nodule_probability) +
            (malignancy ? "," + number(c.malignancy_probability) : "") + "\n";
  }
  return text;
}

std::string candidates_json(const ct::CtVolume& volume, const std::vector<ct::Candidate>& sorted,
                            bool malignancy) {
  std::ostringstream out;
  out << "{\n  \"series_uid\": " << json_string(volume.series_uid) << ",\n  \"size_irc\": ["
      << volume.slices() << ", " << volume.rows() << ", " << volume.columns() << "],\n"
      << "  \"origin_xyz\": " << json_array(volume.geometry.origin) << ",\n"
      << "  \"spacing_xyz\": " << json_array(volume.geometry.spacing) << ",\n"
      << "  \"direction\": " << json_array(volume.geometry.direction) << ",\n"
      << "  \"candidates\": [";
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& c = sorted[i];
    out << (i ? "," : "") << "\n    {\"id\": " << c.id << ", \"center_irc\": " << json_array(c.center_irc)
        << ", \"center_xyz\": " << json_array(c.center_xyz) << ", \"voxels\": " << c.voxels
        << ", \"nodule_probability\": " << json_number(c.nodule_probability);
    if (malignancy) out << ", \"malignancy_probability\": " << json_number(c.malignancy_probability);
    out << "}";
  }
  out << (sorted.empty() ? "" : "\n  ") << "]\n}\n";
  return out.str();
}

void write_scan_outputs(const std::string& folder, const ct::CtVolume& volume,
                        const ct::ScanAnalysis& analysis, const OutputOptions& options) {
  const fs::path root(folder);
  const auto volume_path = [&](const std::string& name) {
    return (root / (name + ct::volume_extension(options.volume_format))).string();
  };
  ct::write_volume(analysis.mask.to(torch::kUInt8), volume.geometry, volume_path("mask"));
  if (options.probability_map) ct::write_volume(analysis.probability, volume.geometry, volume_path("probability"));
  if (options.volume) ct::write_volume(volume.hu, volume.geometry, volume_path("volume"));
  const auto sorted = by_probability(analysis.candidates);
  write_file_atomically((root / "candidates.csv").string(), candidates_csv(sorted, options.malignancy));
  write_file_atomically((root / "candidates.json").string(), candidates_json(volume, sorted, options.malignancy));
  if (options.previews > 0) {
    write_previews((root / "previews").string(), volume, analysis.mask, sorted, options.previews);
  }
}

}  // namespace dlwpt::ct_segment
