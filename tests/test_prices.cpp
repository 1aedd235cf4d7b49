// Cloud prices: data/prices/<system-id>.toml, parsed into System::prices.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "load/catalog.hpp"
#include "report/format.hpp"
#include "spec/error.hpp"

namespace xpu {
namespace {

const Catalog& catalog() {
  static const Catalog c = build_catalog(builtin_data_files());
  return c;
}

// The InputError that f throws: "where" and "what" (empty where + a test failure if none).
template <class F>
std::pair<std::string, std::string> input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return {e.where(), e.what()};
  }
  ADD_FAILURE() << "expected an InputError";
  return {};
}

// A one-offer prices file for p5 with `offer_body` as the offer's keys.
DataFile p5_file(const std::string& offer_body) {
  return {"data/prices/p5.toml",
          "id = \"p5\"\nsource = \"test\"\ndate = \"2026-11-26\"\n[[offer]]\n" + offer_body};
}

const std::string kGoodOffer =
    "kind = \"on-demand\"\nprovider = \"AWS\"\ninstance = \"p5.48xlarge\"\nregion = \"us-east-1\"\n"
    "devices = 8\nprice = \"55.04 USD/h\"\nas_of = \"2025-06\"\nsource = \"row\"\n";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

TEST(Prices, EveryPricesFileLoadsIntoItsSystem) {
  // Each data/prices file parses on its own and its offers end up on the system with its id.
  std::set<std::string> ids;
  for (const auto& f : builtin_data_files()) {
    if (f.path.find("prices/") == std::string::npos) continue;
    std::string id;
    const auto offers = parse_prices(f, &id);
    ids.insert(id);
    ASSERT_TRUE(catalog().systems.contains(id)) << f.path;
    const System& s = catalog().systems.at(id);
    ASSERT_EQ(s.prices.size(), offers.size()) << f.path;
    for (std::size_t i = 0; i < offers.size(); ++i) {
      EXPECT_EQ(s.prices[i].file, f.path);
      EXPECT_EQ(s.prices[i].usd_per_hour, offers[i].usd_per_hour) << f.path;
      EXPECT_GE(s.prices[i].devices, 1) << f.path;
      EXPECT_GT(s.prices[i].usd_per_hour, 0) << f.path;
      EXPECT_FALSE(s.prices[i].source.empty()) << f.path;
    }
  }
  // The systems with a public price in cloud_prices.csv.
  for (const char* id : {"p5", "dgx-h100", "dgx-a100", "dgx-a100-40gb", "hgx-h200", "dgx-b200", "trn1-32xl", "trn2-48xl",
                         "inf2-48xl", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "mi300x-x8"})
    EXPECT_TRUE(ids.contains(id)) << "no prices file for " << id;
  // A system without a file has no offers.
  EXPECT_TRUE(catalog().system("gaudi3-x8").prices.empty());
}

TEST(Prices, P5OnDemandPerDevice) {
  // data/prices/p5.toml: post June-2025 cut "55.04 USD/h" for 8 GPUs, as_of 2025-06 (later than the
  // pre-cut 98.32 of 2025-05) -> 6.88 USD per GPU-hour.
  const System& s = catalog().system("p5");
  const PriceOffer* o = s.price("on-demand");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->provider, "AWS");
  EXPECT_EQ(o->instance, "p5.48xlarge");
  EXPECT_EQ(o->devices, 8);
  EXPECT_DOUBLE_EQ(o->usd_per_hour, 55.04);
  EXPECT_DOUBLE_EQ(o->usd_per_device_hour(), 55.04 / 8);
  EXPECT_EQ(o->as_of, "2025-06");
  for (const auto& [id, sys] : catalog().systems)
    for (const auto& p : sys.prices) EXPECT_DOUBLE_EQ(p.usd_per_device_hour(), p.usd_per_hour / p.devices) << id;
}

TEST(Prices, Trn1PricesPerNeuronCore) {
  // trn1.32xlarge: 21.50 USD/h covers 16 chips = 32 NeuronCores (the device unit).
  const PriceOffer* o = catalog().system("trn1-32xl").price("on-demand");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->devices, 32);
  EXPECT_DOUBLE_EQ(o->usd_per_device_hour(), 21.50 / 32);
}

TEST(Prices, CatalogShowListsOffers) {
  // catalog show p5 --json: "prices" holds every offer with its per-device price.
  const auto j = catalog_item_json(catalog(), "p5");
  ASSERT_TRUE(j.contains("prices"));
  ASSERT_EQ(j["prices"].size(), catalog().system("p5").prices.size());
  const auto& first = j["prices"][0];
  EXPECT_EQ(first["kind"], "on-demand");
  EXPECT_DOUBLE_EQ(first["usd_per_device_hour"].get<double>(), 12.29);
  EXPECT_TRUE(catalog_item_json(catalog(), "gaudi3-x8")["prices"].empty());
}

TEST(Prices, GoodOfferParses) {
  std::string id;
  const auto offers = parse_prices(p5_file(kGoodOffer), &id);
  EXPECT_EQ(id, "p5");
  ASSERT_EQ(offers.size(), 1u);
  EXPECT_EQ(offers[0].region, "us-east-1");
  EXPECT_EQ(offers[0].note, "");
  EXPECT_DOUBLE_EQ(offers[0].usd_per_hour, 55.04);
}

TEST(Prices, PriceWithoutRateUnitIsAnError) {
  // "55 USD" is money, not money per hour.
  auto [where, what] = input_error([] { parse_prices(p5_file(replace(kGoodOffer, "55.04 USD/h", "55 USD")), nullptr); });
  EXPECT_NE(where.find("data/prices/p5.toml"), std::string::npos) << where;
  EXPECT_NE(where.find("offer[0].price"), std::string::npos) << where;
  // A bare number is not a price either.
  auto [w2, m2] = input_error([] { parse_prices(p5_file(replace(kGoodOffer, "\"55.04 USD/h\"", "55.04")), nullptr); });
  EXPECT_NE(w2.find("offer[0].price"), std::string::npos) << w2;
}

TEST(Prices, BadKindIsAnError) {
  auto [where, what] = input_error([] { parse_prices(p5_file(replace(kGoodOffer, "on-demand", "hourly")), nullptr); });
  EXPECT_NE(where.find("data/prices/p5.toml"), std::string::npos) << where;
  EXPECT_NE(where.find("offer[0].kind"), std::string::npos) << where;
  EXPECT_NE(what.find("hourly"), std::string::npos) << what;
}

TEST(Prices, BadDevicesDateAndKeysAreErrors) {
  auto [w1, m1] = input_error([] { parse_prices(p5_file(replace(kGoodOffer, "devices = 8", "devices = 0")), nullptr); });
  EXPECT_NE(w1.find("offer[0].devices"), std::string::npos) << w1;
  auto [w2, m2] = input_error([] { parse_prices(p5_file(replace(kGoodOffer, "2025-06", "June 2025")), nullptr); });
  EXPECT_NE(w2.find("offer[0].as_of"), std::string::npos) << w2;
  auto [w3, m3] = input_error([] { parse_prices(p5_file(replace(kGoodOffer, "2025-06", "2025-13")), nullptr); });
  EXPECT_NE(w3.find("offer[0].as_of"), std::string::npos) << w3;
  auto [w4, m4] = input_error([] { parse_prices(p5_file(kGoodOffer + "discount = 0.3\n"), nullptr); });
  EXPECT_NE(w4.find("offer[0].discount"), std::string::npos) << w4;
  // The second offer is named by its index.
  auto [w5, m5] = input_error([] {
    parse_prices(p5_file(kGoodOffer + "[[offer]]\n" + replace(kGoodOffer, "price = \"55.04 USD/h\"\n", "")), nullptr);
  });
  EXPECT_NE(w5.find("offer[1].price"), std::string::npos) << w5;
  // No offer at all.
  auto [w6, m6] = input_error([] {
    parse_prices({"data/prices/p5.toml", "id = \"p5\"\nsource = \"test\"\ndate = \"2026-11-26\"\n"}, nullptr);
  });
  EXPECT_NE(w6.find("offer"), std::string::npos) << w6;
}

TEST(Prices, UnknownSystemIdIsAnError) {
  // data/prices/nope.toml (id matching its file name) names no catalog system.
  std::vector<DataFile> files = builtin_data_files();
  DataFile f = p5_file(kGoodOffer);
  f.path = "data/prices/nope.toml";
  f.text = replace(f.text, "id = \"p5\"", "id = \"nope\"");
  files.push_back(f);
  auto [where, what] = input_error([&] { build_catalog(files); });
  EXPECT_NE(where.find("data/prices/nope.toml"), std::string::npos) << where;
  EXPECT_NE(where.find("id"), std::string::npos) << where;
  EXPECT_NE(what.find("nope"), std::string::npos) << what;
  // An id that differs from the file name is an error too.
  auto [w2, m2] = input_error([] {
    DataFile g = p5_file(kGoodOffer);
    g.path = "data/prices/p5e.toml";
    parse_prices(g, nullptr);
  });
  EXPECT_NE(w2.find("data/prices/p5e.toml"), std::string::npos) << w2;
  EXPECT_NE(w2.find("id"), std::string::npos) << w2;
}

TEST(Prices, PricePicksTheMostRecentOfAKind) {
  System s;
  auto offer = [](std::string kind, std::string as_of, double usd) {
    PriceOffer o;
    o.kind = std::move(kind);
    o.as_of = std::move(as_of);
    o.devices = 8;
    o.usd_per_hour = usd;
    return o;
  };
  s.prices = {offer("on-demand", "2025-05", 98.32), offer("spot", "2027-01", 1.0), offer("on-demand", "2026-04-28", 50.0),
              offer("on-demand", "2025-06", 55.04), offer("on-demand", "2026-04-28", 60.0), offer("on-demand", "2026-04", 70.0)};
  ASSERT_NE(s.price("on-demand"), nullptr);
  // Latest date wins over file order; on a tie the first in the file; "2026-04" < "2026-04-28".
  EXPECT_DOUBLE_EQ(s.price("on-demand")->usd_per_hour, 50.0);
  EXPECT_DOUBLE_EQ(s.price("spot")->usd_per_hour, 1.0);
  EXPECT_EQ(s.price("reserved-1y"), nullptr);
  EXPECT_EQ(System{}.price("on-demand"), nullptr);
  // In the data: p5's latest capacity block is the Apr-2026 rate, not the late-2024 one.
  const PriceOffer* cb = catalog().system("p5").price("capacity-block");
  ASSERT_NE(cb, nullptr);
  EXPECT_DOUBLE_EQ(cb->usd_per_hour, 31.44);
}

TEST(Prices, QuoteReplacesTheOffersOfItsKind) {
  // --price p5=4.2: one on-demand offer of 4.2 USD per device-hour, dated as given; p5's other
  // kinds stay; a system with no prices gets one; a unit form and a kind are accepted.
  Catalog c = catalog();
  const std::size_t reserved = [&] {
    std::size_t n = 0;
    for (const auto& o : c.system("p5").prices) n += o.kind == "reserved-1y";
    return n;
  }();
  ASSERT_GT(reserved, 0u);
  apply_price_quotes(c, {"p5=4.2", "gb200-nvl72=6.5 USD/h", "tpu-v5p:reserved-3y=1.75"}, "2026-11-27");
  const System& p5 = c.system("p5");
  const PriceOffer* od = p5.price("on-demand");
  ASSERT_NE(od, nullptr);
  EXPECT_DOUBLE_EQ(od->usd_per_device_hour(), 4.2);
  EXPECT_EQ(od->provider, "quote");
  EXPECT_EQ(od->file, "--price");
  EXPECT_EQ(od->as_of, "2026-11-27");
  std::size_t on_demand = 0, reserved_after = 0;
  for (const auto& o : p5.prices) {
    on_demand += o.kind == "on-demand";
    reserved_after += o.kind == "reserved-1y";
  }
  EXPECT_EQ(on_demand, 1u);
  EXPECT_EQ(reserved_after, reserved);
  ASSERT_NE(c.system("gb200-nvl72").price("on-demand"), nullptr);
  EXPECT_DOUBLE_EQ(c.system("gb200-nvl72").price("on-demand")->usd_per_device_hour(), 6.5);
  ASSERT_NE(c.system("tpu-v5p").price("reserved-3y"), nullptr);
  EXPECT_DOUBLE_EQ(c.system("tpu-v5p").price("reserved-3y")->usd_per_device_hour(), 1.75);
  EXPECT_NE(c.system("tpu-v5p").price("on-demand")->provider, "quote");  // on-demand untouched
  // The built-in catalog itself is not changed.
  EXPECT_EQ(catalog().system("gb200-nvl72").price("on-demand"), nullptr);
}

TEST(Prices, BadQuotesAreErrors) {
  Catalog c = catalog();
  auto what = [&](const std::string& q) {
    const auto [where, msg] = input_error([&] { apply_price_quotes(c, {q}, "2026-11-27"); });
    EXPECT_EQ(where, "--price") << q;
    return msg;
  };
  EXPECT_NE(what("gb200-nvl72").find("is not SYSTEM[:KIND]=USD"), std::string::npos);
  EXPECT_NE(what("=3").find("is not SYSTEM[:KIND]=USD"), std::string::npos);
  EXPECT_NE(what("dgx-h900=3").find("unknown system 'dgx-h900'"), std::string::npos);
  EXPECT_NE(what("p5:monthly=3").find("unknown kind 'monthly'"), std::string::npos);
  EXPECT_NE(what("p5=abc").find("does not start with a number"), std::string::npos);
  // Spaces around a price are not part of it.
  {
    Catalog spaced = catalog();
    apply_price_quotes(spaced, {"p5=3 "}, "2026-11-27");
    EXPECT_DOUBLE_EQ(spaced.system("p5").price("on-demand")->usd_per_device_hour(), 3.0);
  }
  EXPECT_NE(what("p5=3 EUR/h").find("is not a price rate"), std::string::npos);
  EXPECT_NE(what("p5=0").find("must be a positive, finite USD rate"), std::string::npos);
  EXPECT_NE(what("p5=-2").find("must be a positive, finite USD rate"), std::string::npos);
  EXPECT_NE(what("p5=nan").find("must be a positive, finite USD rate"), std::string::npos);
  const auto [where, msg] = input_error([&] { apply_price_quotes(c, {"p5=3", "p5:on-demand=4"}, "2026-11-27"); });
  EXPECT_EQ(where, "--price");
  EXPECT_NE(msg.find("p5 on-demand quoted twice"), std::string::npos);
}

TEST(Prices, TableCellsStayOnOneLine) {
  // A name with a newline (from a user's file) breaks no row of a text table.
  const std::string t = render_table({"system", "offer"}, {{"my\nsys", "a\tb"}, {"x", "y"}});
  EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), 4);
  EXPECT_NE(t.find("my sys"), std::string::npos);
}

TEST(Prices, OfferLabelSaysTheProviderOnce) {
  EXPECT_EQ(offer_label("Lambda", "Lambda 8x H100 SXM"), "Lambda 8x H100 SXM");
  EXPECT_EQ(offer_label("AWS", "p5.48xlarge"), "AWS p5.48xlarge");
  EXPECT_EQ(offer_label("Lamb", "Lambda 8x H100 SXM"), "Lamb Lambda 8x H100 SXM");  // a word, not a prefix
  EXPECT_EQ(offer_label("", "p5.48xlarge"), "p5.48xlarge");
  EXPECT_EQ(offer_label("quote", ""), "quote");
  // Every built-in offer's label names its instance and, once, its provider.
  for (const auto& [id, s] : catalog().systems)
    for (const auto& o : s.prices) {
      const std::string l = offer_label(o.provider, o.instance);
      EXPECT_NE(l.find(o.instance), std::string::npos) << id;
      EXPECT_EQ(l.find(o.provider + " " + o.provider), std::string::npos) << id << ": " << l;
    }
}

}  // namespace
}  // namespace xpu
