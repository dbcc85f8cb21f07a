#pragma once

// Numbers read from untrusted text (archive configurations, MetaImage headers, CSV tables,
// checkpoint states): the whole text must be the number, and a number out of range is no
// number, never an exception that escapes. And binary numbers of file formats.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dlwpt {

/// A decimal integer, optionally signed and after leading blanks, that fits int64_t.
std::optional<int64_t> parse_integer(std::string_view text);

/// As parse_integer, without a sign, for uint64_t.
std::optional<uint64_t> parse_unsigned(std::string_view text);

/// A decimal floating-point number (also inf and nan), after leading blanks, that fits a
/// double; callers decide about non-finite values.
std::optional<double> parse_double(std::string_view text);

/// The unsigned number in `count` (at most 8) bytes, little endian, as pickles and ZIP files
/// store them; the caller checks that the bytes exist.
uint64_t little_endian(const char* bytes, size_t count);

}  // namespace dlwpt
