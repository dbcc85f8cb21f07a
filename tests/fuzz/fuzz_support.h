#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dlwpt::fuzz {

/// Writes a fuzz input to a file of this process (under $TMPDIR) with the given extension and
/// returns its path; the readers under test take paths, as the apps give them. The same path
/// is reused for every input of the run.
std::string input_file(const uint8_t* data, size_t size, const std::string& extension);

/// An empty folder of this process (under $TMPDIR), emptied on every call: for targets whose
/// readers take a folder (DICOM) or several files (a MetaImage header and its data).
std::string input_folder();

/// Writes `size` bytes to `path`.
void write_bytes(const std::string& path, const uint8_t* data, size_t size);

}  // namespace dlwpt::fuzz
