#pragma once

#include <string>
#include <vector>

#include "apps/zebraify/zebra.h"

namespace dlwpt::zebraify {

/// Opens a window showing each input beside its zebra. Keys: Right/N and Left/P step through
/// the images, Space shows the original in place of the zebra and back, S saves the zebra
/// into `save_folder` as <name>_zebra.png, Q or Esc (or closing the window) quits. Images are
/// converted on a worker thread, so the window stays responsive; `read_options` bound the
/// images it reads. Returns the exit status.
int run_viewer(const Zebraifier& zebraifier, const std::vector<std::string>& inputs,
               int64_t max_side, const std::string& save_folder,
               const apps::ImageReadOptions& read_options = {});

}  // namespace dlwpt::zebraify
