// Unit strings and the typed quantities (src/units/units.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <type_traits>

#include <toml++/toml.h>

#include "units/units.hpp"

namespace xpu {
namespace {

// ---- parsing, one dimension at a time ----

TEST(Units, FlopRateWithTeraPrefix) {
  // "989.4 TFLOP/s": T = 1e12, so 989.4 x 1e12 FLOP/s.
  EXPECT_DOUBLE_EQ(parse_flop_rate("989.4 TFLOP/s").v, 989.4e12);
  // P = 1e15; E = 1e18, and the 'E' must not be read as an exponent.
  EXPECT_DOUBLE_EQ(parse_flop_rate("2.5 PFLOP/s").v, 2.5e15);
  EXPECT_DOUBLE_EQ(parse_flop_rate("1 EFLOP/s").v, 1e18);
  // TOPS written as OP/s count the same: 1978.9 x 1e12.
  EXPECT_DOUBLE_EQ(parse_flop_rate("1978.9 TOP/s").v, 1978.9e12);
}

TEST(Units, ByteRateDecimalAndBits) {
  // "3.35 TB/s" = 3.35 x 1e12 B/s.
  EXPECT_DOUBLE_EQ(parse_byte_rate("3.35 TB/s").v, 3.35e12);
  // "400 Gb/s" = 400e9 bits/s / 8 bits per byte = 50e9 B/s.
  EXPECT_DOUBLE_EQ(parse_byte_rate("400 Gb/s").v, 50e9);
  // "96 GiB/s" = 96 x 2^30 B/s.
  EXPECT_DOUBLE_EQ(parse_byte_rate("96 GiB/s").v, 96.0 * 1073741824.0);
}

TEST(Units, BytesDecimalBinaryAndBits) {
  // "80 GB" = 80 x 1e9 B.
  EXPECT_DOUBLE_EQ(parse_bytes("80 GB").v, 80e9);
  // "96 GiB" = 96 x 2^30 B = 103079215104 B (differs from 96e9).
  EXPECT_DOUBLE_EQ(parse_bytes("96 GiB").v, 96.0 * std::pow(2.0, 30));
  EXPECT_NE(parse_bytes("96 GiB").v, 96e9);
  // "64 Mb" = 64e6 bits / 8 = 8e6 B.
  EXPECT_DOUBLE_EQ(parse_bytes("64 Mb").v, 8e6);
  // "512 B" = 512 B (no prefix).
  EXPECT_DOUBLE_EQ(parse_bytes("512 B").v, 512.0);
}

TEST(Units, TimeAndPower) {
  // "2 us" = 2e-6 s; "20 ms" = 0.02 s; "5 ns" = 5e-9 s; "1.5 s" = 1.5 s.
  EXPECT_DOUBLE_EQ(parse_seconds("2 us").v, 2e-6);
  EXPECT_DOUBLE_EQ(parse_seconds("20 ms").v, 0.02);
  EXPECT_DOUBLE_EQ(parse_seconds("5 ns").v, 5e-9);
  EXPECT_DOUBLE_EQ(parse_seconds("1.5 s").v, 1.5);
  // "700 W" = 700 W; "1.2 kW" = 1200 W.
  EXPECT_DOUBLE_EQ(parse_watts("700 W").v, 700.0);
  EXPECT_DOUBLE_EQ(parse_watts("1.2 kW").v, 1200.0);
}

TEST(Units, ExponentAndSurroundingSpaces) {
  // "1.5e3 GB" = 1500 x 1e9 = 1.5e12 B; leading/trailing blanks are trimmed; no space before the unit is fine.
  EXPECT_DOUBLE_EQ(parse_bytes("1.5e3 GB").v, 1.5e12);
  EXPECT_DOUBLE_EQ(parse_bytes("  80 GB  ").v, 80e9);
  EXPECT_DOUBLE_EQ(parse_bytes("80GB").v, 80e9);
}

TEST(Units, PlainNumberForDimensionless) {
  // A dimensionless value is the number itself: 0.75.
  EXPECT_DOUBLE_EQ(parse_quantity("0.75", Dimension::dimensionless), 0.75);
  EXPECT_THROW(parse_quantity("0.75 GB", Dimension::dimensionless), UnitError);
}

// ---- errors ----

TEST(Units, MissingUnitIsRefused) {
  // "989.4" carries no unit: refused, and the message says so.
  try {
    parse_flop_rate("989.4");
    FAIL() << "no UnitError for a missing unit";
  } catch (const UnitError& e) {
    EXPECT_NE(std::string(e.what()).find("no unit"), std::string::npos) << e.what();
  }
}

TEST(Units, ValuesBeyondAnyPlanAreRefused) {
  // Overflow to inf, a denormal, and magnitudes no hardware has: typos that would reach the
  // output as inf, nan or 0.
  EXPECT_THROW(parse_byte_rate("1e300 TB/s"), UnitError);  // inf after scaling
  EXPECT_THROW(parse_byte_rate("1e-310 B/s"), UnitError);  // denormal
  EXPECT_THROW(parse_seconds("1e300 s"), UnitError);
  EXPECT_THROW(parse_bytes("1e300 EB"), UnitError);
  EXPECT_THROW(parse_quantity("1e-30", Dimension::dimensionless), UnitError);
  try {
    parse_seconds("1e30 s");
    FAIL() << "no UnitError";
  } catch (const UnitError& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
  // The edges and zero are values.
  EXPECT_DOUBLE_EQ(parse_seconds("0 s").v, 0.0);
  EXPECT_DOUBLE_EQ(parse_bytes("1000000 EB").v, 1e24);
  EXPECT_DOUBLE_EQ(parse_seconds("1 ns").v, 1e-9);
}

TEST(Units, WrongDimensionIsRefused) {
  // "3 GB" is a size, not a time; "3.35 TB" is a size, not a bandwidth; "2 us" is not a size.
  EXPECT_THROW(parse_seconds("3 GB"), UnitError);
  EXPECT_THROW(parse_byte_rate("3.35 TB"), UnitError);
  EXPECT_THROW(parse_bytes("2 us"), UnitError);
  EXPECT_THROW(parse_flop_rate("3.35 TB/s"), UnitError);
  EXPECT_THROW(parse_watts("700 GB"), UnitError);
  // The message names what was expected (a time).
  try {
    parse_seconds("3 GB");
    FAIL() << "no UnitError";
  } catch (const UnitError& e) {
    EXPECT_NE(std::string(e.what()).find(dimension_name(Dimension::time)), std::string::npos) << e.what();
  }
}

TEST(Units, GarbageAndEmptyAreRefused) {
  // Not starting with a number, two decimal points, an unknown unit, empty or blank text.
  EXPECT_THROW(parse_bytes("abc GB"), UnitError);
  EXPECT_THROW(parse_bytes("GB"), UnitError);
  EXPECT_THROW(parse_bytes("1.2.3 GB"), UnitError);
  EXPECT_THROW(parse_bytes("80 furlongs"), UnitError);
  EXPECT_THROW(parse_bytes(""), UnitError);
  EXPECT_THROW(parse_bytes("   "), UnitError);
  EXPECT_THROW(parse_seconds("nan s"), UnitError);
}

TEST(Units, ThousandsCommaIsRefused) {
  // "1,978.9 TFLOP/s" could be misread as 1 or 1978.9: refused rather than guessed.
  EXPECT_THROW(parse_flop_rate("1,978.9 TFLOP/s"), UnitError);
  // Without the comma the same figure parses: 1978.9 x 1e12.
  EXPECT_DOUBLE_EQ(parse_flop_rate("1978.9 TFLOP/s").v, 1978.9e12);
}

TEST(Units, PrefixCaseMatters) {
  // 'm' (milli) is not a byte prefix and "gb" is not "GB": refused, not guessed.
  EXPECT_THROW(parse_bytes("80 mB"), UnitError);
  EXPECT_THROW(parse_bytes("80 gb"), UnitError);
}

// ---- typed arithmetic ----

TEST(Units, BytesOverByteRateIsSeconds) {
  // 80 GB / 3.35 TB/s = 80e9 / 3.35e12 s = 0.023880... s, typed as Seconds.
  const auto t = parse_bytes("80 GB") / parse_byte_rate("3.35 TB/s");
  static_assert(std::is_same_v<std::remove_const_t<decltype(t)>, Seconds>);
  EXPECT_DOUBLE_EQ(t.v, 80e9 / 3.35e12);
  EXPECT_NEAR(t.v, 0.0238806, 1e-7);
}

TEST(Units, FlopsOverFlopRateIsSeconds) {
  // 989.4e12 FLOP at 989.4 TFLOP/s takes 1 s.
  const auto t = Flops{989.4e12} / parse_flop_rate("989.4 TFLOP/s");
  static_assert(std::is_same_v<std::remove_const_t<decltype(t)>, Seconds>);
  EXPECT_DOUBLE_EQ(t.v, 1.0);
}

TEST(Units, SameDimensionArithmetic) {
  // 3 GB + 1 GB = 4e9 B; 3 GB - 1 GB = 2e9 B; 2 x 3 GB = 6e9 B; 3 GB / 2 = 1.5e9 B; 3 GB / 1 GB = 3 (a plain ratio).
  const Bytes a{3e9}, b{1e9};
  EXPECT_DOUBLE_EQ((a + b).v, 4e9);
  EXPECT_DOUBLE_EQ((a - b).v, 2e9);
  EXPECT_DOUBLE_EQ((2.0 * a).v, 6e9);
  EXPECT_DOUBLE_EQ((a * 2.0).v, 6e9);
  EXPECT_DOUBLE_EQ((a / 2.0).v, 1.5e9);
  const double ratio = a / b;
  EXPECT_DOUBLE_EQ(ratio, 3.0);
  Bytes c = a;
  c += b;
  EXPECT_DOUBLE_EQ(c.v, 4e9);
  c -= a;
  EXPECT_DOUBLE_EQ(c.v, 1e9);
  // 1 GB < 3 GB.
  EXPECT_LT(b, a);
  EXPECT_FALSE(a < b);
}

// ---- formatting ----

TEST(Units, FormatPicksPrefix) {
  // 3.35e12 B/s -> "3.35 TB/s"; 80 x 2^30 B -> "80.0 GiB" (binary for memory); 1.25e-3 s -> "1.25 ms".
  EXPECT_EQ(format_byte_rate(ByteRate{3.35e12}), "3.35 TB/s");
  EXPECT_EQ(format_bytes(Bytes{80.0 * 1073741824.0}), "80.0 GiB");
  EXPECT_EQ(format_seconds(Seconds{1.25e-3}), "1.25 ms");
  // 2.5 s -> "2.500 s"; 3e-6 s -> "3.0 us".
  EXPECT_EQ(format_seconds(Seconds{2.5}), "2.500 s");
  EXPECT_EQ(format_seconds(Seconds{3e-6}), "3.0 us");
  // 989.4e12 FLOP/s lies in [100, 1000) T: printed with the T prefix.
  EXPECT_NE(format_flop_rate(FlopRate{989.4e12}).find("TFLOP/s"), std::string::npos);
}

TEST(Units, IsoDates) {
  EXPECT_TRUE(is_iso_date("2026-11-26", false));
  EXPECT_TRUE(is_iso_date("2025-06", true));
  EXPECT_FALSE(is_iso_date("2025-06", false));   // a day is required
  EXPECT_FALSE(is_iso_date("2025-13-01", false));  // month 13
  EXPECT_FALSE(is_iso_date("2025-00", true));
  EXPECT_FALSE(is_iso_date("2025-01-32", false));
  EXPECT_FALSE(is_iso_date("2025-01-00", false));
  EXPECT_FALSE(is_iso_date("25-01-01", false));
  EXPECT_FALSE(is_iso_date("2025/01/01", false));
  EXPECT_FALSE(is_iso_date("2025-01-01x", false));
  EXPECT_FALSE(is_iso_date("", true));
}

TEST(Units, FormatNumberNeverCutsALongFormat) {
  // An explain term's source text went through a 64-byte buffer and lost its end.
  const std::string text = format_number(", engine.prefill_layer_overhead x %.3f (the share of iterations with prompt tokens)", 0.048);
  EXPECT_EQ(text, ", engine.prefill_layer_overhead x 0.048 (the share of iterations with prompt tokens)");
  EXPECT_EQ(format_number("%.1f", 2.25), "2.2");
}

// A written TOML string reads back as it was: quotes, backslashes and control characters (a CSV
// row id may hold any of them) are escaped (calibrate wrote them raw, a file it could not read).
TEST(DoubleQuoted, ReadsBackThroughToml) {
  for (const std::string& v : {std::string("plain"), std::string("q\"x.csv"), std::string("back\\slash"),
                              std::string("new\nline\ttab"), std::string("bell\x07")}) {
    const toml::table t = toml::parse("k = " + double_quoted(v) + "\n");
    ASSERT_TRUE(t["k"].is_string()) << double_quoted(v);
    EXPECT_EQ(t["k"].value<std::string>().value(), v);
  }
}

}  // namespace
}  // namespace xpu
