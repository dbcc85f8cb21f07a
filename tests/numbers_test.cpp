// Whole-text number parsing (weights/numbers.h) against what std::stoll, std::stoull and
// std::stod accept, minus their exceptions and partial reads.

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "dlwpt/weights/numbers.h"

namespace dlwpt::testing {
namespace {

TEST(Numbers, IntegersAreWholeAndInRange) {
  EXPECT_EQ(parse_integer("42"), 42);
  EXPECT_EQ(parse_integer("-7"), -7);
  EXPECT_EQ(parse_integer("+7"), 7);
  EXPECT_EQ(parse_integer("  12"), 12);  // leading blanks, as std::stoll
  EXPECT_EQ(parse_integer("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(parse_integer("-9223372036854775808"), std::numeric_limits<int64_t>::min());
  for (const char* bad : {"", " ", "9223372036854775808", "1e3", "12 ", "12x", "+-5", "--5", "0x10",
                          "4888888888888888888888888888888888888888"}) {
    EXPECT_FALSE(parse_integer(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(Numbers, UnsignedRefusesSigns) {
  EXPECT_EQ(parse_unsigned("18446744073709551615"), std::numeric_limits<uint64_t>::max());
  for (const char* bad : {"-1", "18446744073709551616", "+-1", ""}) {
    EXPECT_FALSE(parse_unsigned(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(Numbers, DoublesIncludingNonFinite) {
  EXPECT_EQ(parse_double("0.25"), 0.25);
  EXPECT_EQ(parse_double("-1e3"), -1000.0);
  EXPECT_EQ(parse_double(" +2.5"), 2.5);
  EXPECT_TRUE(std::isinf(*parse_double("inf")));
  EXPECT_TRUE(std::isnan(*parse_double("nan")));
  for (const char* bad : {"", "1.5.2", "1e999", "abc", "1,5", "+-1"}) {
    EXPECT_FALSE(parse_double(bad).has_value()) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace dlwpt::testing
