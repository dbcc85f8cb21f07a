// read-scan-check: reads one scan (a MetaImage file or a DICOM folder) as ct-segment does and
// prints its size, or the error. The tests run it as a child process on hostile inputs, so
// that a crash inside ITK or GDCM shows as a signal instead of ending the test run.
//
//   read-scan-check SCAN [MAX_VOXELS]   exit 0: read; 1: dlwpt::Error (printed); else: a crash

#include <cstdlib>
#include <iostream>

#include "dlwpt/ct/scan_io.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: read-scan-check SCAN [MAX_VOXELS]\n";
    return 2;
  }
  const int64_t max_voxels = argc == 3 ? std::atoll(argv[2]) : dlwpt::ct::kDefaultMaxVoxels;
  try {
    const auto volume = dlwpt::ct::read_scan(argv[1], max_voxels);
    std::cout << "ok " << volume.slices() << " x " << volume.rows() << " x " << volume.columns() << "\n";
    return 0;
  } catch (const dlwpt::Error& error) {  // anything else must surface as a crash
    std::cout << "error: " << error.what() << "\n";
    return 1;
  }
}
