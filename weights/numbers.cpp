#include "dlwpt/weights/numbers.h"

#include <charconv>

namespace dlwpt {

namespace {

// The text from_chars reads: without what std::stoll and friends skip, leading blanks and
// one plus sign ("+-5" stays no number).
std::optional<std::string_view> number_text(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\n\v\f\r");
  text = first == std::string_view::npos ? std::string_view() : text.substr(first);
  if (!text.empty() && text.front() == '+') {
    text.remove_prefix(1);
    if (!text.empty() && text.front() == '-') return std::nullopt;
  }
  return text;
}

template <typename Number>
std::optional<Number> parse_whole(std::string_view original) {
  const auto text = number_text(original);
  if (!text || text->empty()) return std::nullopt;
  Number value{};
  const char* end = text->data() + text->size();
  const auto [stop, error] = std::from_chars(text->data(), end, value);
  if (error != std::errc() || stop != end) return std::nullopt;
  return value;
}

}  // namespace

std::optional<int64_t> parse_integer(std::string_view text) { return parse_whole<int64_t>(text); }

std::optional<uint64_t> parse_unsigned(std::string_view text) {
  return parse_whole<uint64_t>(text);
}

std::optional<double> parse_double(std::string_view text) { return parse_whole<double>(text); }

uint64_t little_endian(const char* bytes, size_t count) {
  uint64_t value = 0;
  for (size_t i = count; i-- > 0;) value = value << 8 | static_cast<unsigned char>(bytes[i]);
  return value;
}

}  // namespace dlwpt
