// Money: ownership cost, price selection and staleness, compare, budget, contract, charts, and the
// errors of their input files.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "load/scenario.hpp"
#include "money/budget.hpp"
#include "money/compare.hpp"
#include "money/contract.hpp"
#include "money/money.hpp"
#include "report/money_format.hpp"
#include "report/plot.hpp"
#include "serve/search.hpp"
#include "test_common.hpp"

namespace xpu {
namespace {

using test::builtin;
using test::catch_input_error;

const Site* site() { return builtin().site ? &*builtin().site : nullptr; }
long day(const char* d) { return day_number(d, "test"); }

// ------------------------------------------------------------------------------------ units, dates

TEST(MoneyUnits, MoneyEnergyPriceAndCarbon) {
  EXPECT_DOUBLE_EQ(parse_quantity("38 GUSD", Dimension::money), 38e9);
  EXPECT_DOUBLE_EQ(parse_quantity("15625 USD", Dimension::money), 15625);
  // 0.0859 USD per kWh = 0.0859 / 3.6e6 USD per joule.
  EXPECT_DOUBLE_EQ(parse_quantity("0.0859 USD/kWh", Dimension::energy_price), 0.0859 / 3.6e6);
  EXPECT_DOUBLE_EQ(parse_quantity("85.9 USD/MWh", Dimension::energy_price), 0.0859 / 3.6e6);
  EXPECT_DOUBLE_EQ(parse_quantity("366 gCO2/kWh", Dimension::carbon_intensity), 0.366 / 3.6e6);
  EXPECT_THROW(parse_quantity("10 USD/h", Dimension::money), UnitError);
  EXPECT_THROW(parse_quantity("10 USD", Dimension::energy_price), UnitError);
}

TEST(MoneyDates, DayNumbers) {
  EXPECT_EQ(day("1970-01-02"), 1);
  EXPECT_EQ(day("2026-11"), day("2026-11-01"));  // a month counts from its first day
  EXPECT_EQ(day("2025-01-01") + 365, day("2026-01-01"));
  EXPECT_EQ(date_text(day("2024-02-29")), "2024-02-29");
  for (const char* bad : {"2026-02-30", "2025-13", "2025", "26-11-2025", "2025-1-05"}) {
    auto c = catch_input_error([&] { day_number(bad, "--as-of"); });
    EXPECT_EQ(c.where, "--as-of") << bad;
  }
}

// ------------------------------------------------------------------------------------ ownership

TEST(MoneyTco, DgxH100ByHand) {
  // data/tco/dgx-h100.toml: 30,000 USD + 17,350 USD overhead; site: 4 years, 80% of the rating, PUE
  // 1.4, 0.0859 USD/kWh. The rating is the DGX H100's 10.2 kW node maximum over its 8 GPUs, 1,275 W
  // (the 700 W GPU alone had left out CPUs, NICs, switches and fans). capex = 47,350 / (4 x 8766)
  // = 1.350388 USD/h; energy = 1.275 kW x 0.8 x 1.4 = 1.428 kW x 0.0859 = 0.1226652 USD/h.
  const System& s = builtin().system("dgx-h100");
  ASSERT_TRUE(site());
  std::string why;
  auto t = tco_rate(s, site(), &why);
  ASSERT_TRUE(t) << why;
  EXPECT_NEAR(t->capex_usd_per_hour, 47350.0 / 35064.0, 1e-9);
  EXPECT_NEAR(t->wall_w, 1428.0, 1e-9);
  EXPECT_NEAR(t->energy_usd_per_hour, 1.428 * 0.0859, 1e-12);
  EXPECT_NEAR(t->usd_per_hour(), 47350.0 / 35064.0 + 1.428 * 0.0859, 1e-9);
  const Rate r = device_hour_rate(s, site(), Pricing::owned, day("2026-11-26"));
  ASSERT_TRUE(r.known);
  EXPECT_NEAR(r.usd_per_device_hour, t->usd_per_hour(), 1e-12);
  EXPECT_NE(r.origin().find("30000 + 17350 USD"), std::string::npos) << r.origin();
}

TEST(MoneyTco, NodePowerWherePublishedElseTheAcceleratorAlone) {
  // DGX B200: 14.3 kW max over 8 GPUs = 1,787.5 W per device (its 1,000 W GPUs alone had been
  // counted); MI300X platform: no node figure, the 750 W accelerator, said so in the origin.
  std::string why;
  auto b = device_power(builtin().system("dgx-b200"), site(), &why);
  ASSERT_TRUE(b) << why;
  EXPECT_NEAR(b->node_w, 1787.5, 1e-9);
  EXPECT_NEAR(b->rated_w(), 1787.5, 1e-9);
  EXPECT_NEAR(b->wall_w, 1787.5 * 0.8 * 1.4, 1e-9);
  EXPECT_NE(b->origin.find("power.node_max"), std::string::npos) << b->origin;
  auto m = device_power(builtin().system("mi300x-x8"), site(), &why);
  ASSERT_TRUE(m) << why;
  EXPECT_EQ(m->node_w, 0.0);
  EXPECT_NEAR(m->wall_w, 750.0 * 0.8 * 1.4, 1e-9);
  EXPECT_NE(m->origin.find("the accelerator alone"), std::string::npos) << m->origin;
}

TEST(MoneyTco, LiquidCooledRackOverridesPue) {
  // gb200-nvl72: PUE 1.2 from its tco file; the rack's ~120 kW over 72 GPUs (6.667 kW a 4-GPU
  // tray): 1,666.75 W x 0.8 x 1.2 = 1,600.08 W at the wall (the 1,200 W GPU alone gave 1,152 W).
  std::string why;
  auto p = device_power(builtin().system("gb200-nvl72"), site(), &why);
  ASSERT_TRUE(p) << why;
  EXPECT_NEAR(p->wall_w, 6667.0 / 4 * 0.8 * 1.2, 1e-9);
}

TEST(MoneyTco, NotSoldOrNoTdpSaysWhy) {
  std::string why;
  EXPECT_FALSE(tco_rate(builtin().system("tpu-v5p"), site(), &why));
  EXPECT_NE(why.find("data/tco/tpu-v5p.toml"), std::string::npos) << why;
  EXPECT_FALSE(device_power(builtin().system("trn2-48xl"), site(), &why));
  EXPECT_NE(why.find("TDP"), std::string::npos) << why;
  const Rate r = device_hour_rate(builtin().system("tpu-v5p"), site(), Pricing::owned, day("2026-11-26"));
  EXPECT_FALSE(r.known);
}

TEST(MoneyTco, BadOwnershipFileNamesFileLineAndKey) {
  const DataFile f{"data/tco/dgx-h100.toml",
                   "id = \"dgx-h100\"\nsource = \"s\"\ndate = \"2026-11-26\"\npurchase_price = \"30000 USD/h\"\n"
                   "purchase_source = \"s\"\n"};
  auto c = catch_input_error([&] { parse_ownership(f, nullptr); });
  EXPECT_EQ(c.where, "data/tco/dgx-h100.toml:4: purchase_price");
  EXPECT_NE(c.what.find("amount of money"), std::string::npos) << c.what;
  const DataFile g{"data/tco/site.toml", "id = \"site\"\nsource = \"s\"\ndate = \"2026-11-26\"\namortisation_years = 4\n"
                                         "amortisation_source = \"a\"\nutilisation = 1.5\n"};
  auto d = catch_input_error([&] { parse_site(g); });
  EXPECT_EQ(d.where, "data/tco/site.toml:6: utilisation");
}

TEST(MoneyTco, CatalogAttachesOwnershipAndRefusesUnknownSystems) {
  EXPECT_TRUE(builtin().system("gaudi3-x8").ownership);
  EXPECT_FALSE(builtin().system("trn2-48xl").ownership);
  ASSERT_TRUE(site());
  EXPECT_EQ(site()->file, "data/tco/site.toml");
  std::vector<DataFile> files = builtin_data_files();
  files.push_back({"data/tco/dgx-h900.toml", "id = \"dgx-h900\"\nsource = \"s\"\ndate = \"2026-11-26\"\n"
                                             "purchase_price = \"1 USD\"\npurchase_source = \"s\"\n"});
  auto c = catch_input_error([&] { build_catalog(files); });
  EXPECT_EQ(c.where, "data/tco/dgx-h900.toml: id");
}

// ------------------------------------------------------------------------------------ prices

TEST(MoneyPrices, StaleAfterAYear) {
  // tpu-v5p's on-demand offer is as of 2025-01 (the 1st): 365 days later it is not yet stale, 366 it is.
  const System& s = builtin().system("tpu-v5p");
  EXPECT_TRUE(device_hour_rate(s, site(), Pricing::on_demand, day("2026-01-01")).warning.empty());
  const Rate r = device_hour_rate(s, site(), Pricing::on_demand, day("2026-01-02"));
  EXPECT_NE(r.warning.find("2025-01"), std::string::npos) << r.warning;
  EXPECT_NE(r.warning.find("2026-01-02"), std::string::npos) << r.warning;
}

TEST(MoneyPrices, ProviderFilterAndMissingKind) {
  const System& s = builtin().system("dgx-b200");
  // Latest reserved-3y of any provider (CoreWeave, 2026-04-30) vs AWS's (p6-b200.48xlarge 62.64 USD/h / 8).
  const Rate any = device_hour_rate(s, site(), Pricing::reserved_3y, day("2026-11-26"));
  const Rate aws = device_hour_rate(s, site(), Pricing::reserved_3y, day("2026-11-26"), "AWS");
  ASSERT_TRUE(any.known && aws.known);
  EXPECT_EQ(any.offer->provider, "CoreWeave");
  EXPECT_DOUBLE_EQ(aws.usd_per_device_hour, 62.64 / 8);
  const Rate none = device_hour_rate(builtin().system("gb200-nvl72"), site(), Pricing::on_demand, day("2026-11-26"));
  EXPECT_FALSE(none.known);
  EXPECT_NE(none.missing.find("no on-demand price"), std::string::npos);
}

// Two offers of one kind and date: the cheaper per device-hour is used whatever the files' order
// (dgx-h100 on-demand: Lambda 3.99 and CoreWeave 6.16 USD per device-hour, both 2026-04-30).
TEST(MoneyPrices, SameDateOffersTakeTheCheapest) {
  System s = builtin().system("dgx-h100");
  const Rate first = device_hour_rate(s, site(), Pricing::on_demand, day("2026-11-26"));
  std::reverse(s.prices.begin(), s.prices.end());
  const Rate reversed = device_hour_rate(s, site(), Pricing::on_demand, day("2026-11-26"));
  ASSERT_TRUE(first.known && reversed.known);
  EXPECT_EQ(first.offer->provider, "Lambda");
  EXPECT_EQ(reversed.offer->provider, "Lambda");
  EXPECT_DOUBLE_EQ(first.usd_per_device_hour, reversed.usd_per_device_hour);
  int same_day = 0;
  for (const auto& o : s.prices) same_day += o.kind == "on-demand" && o.as_of == first.offer->as_of;
  EXPECT_GE(same_day, 2);
}

// A provider that no offer is from is an error naming where it was given; a known one passes.
TEST(MoneyPrices, UnknownProviderIsAnError) {
  EXPECT_NO_THROW(check_provider(builtin().systems, "AWS", "--provider"));
  EXPECT_NO_THROW(check_provider(builtin().systems, "", "--provider"));
  const auto c = catch_input_error([] { check_provider(builtin().systems, "aws", "--provider"); });
  EXPECT_TRUE(c.thrown);
  EXPECT_EQ(c.where, "--provider");
  EXPECT_NE(c.what.find("AWS"), std::string::npos) << c.what;
}

// ------------------------------------------------------------------------------------ compare

std::vector<System> systems(std::initializer_list<const char*> ids) {
  std::vector<System> out;
  for (const char* id : ids) out.push_back(builtin().system(id));
  return out;
}

CompareRequest small_job() {
  CompareRequest q;
  q.seq_len = 4096;
  q.global_batch = 256;
  q.tokens = 1e11;
  q.devices = 64;
  q.today = day("2026-11-26");
  return q;
}

TEST(Compare, RanksPricedByUsdThenUnpricedThenNoPlan) {
  const Model& m = builtin().model("llama3-8b");
  CompareRequest q = small_job();
  auto rows = compare(m, systems({"gb200-nvl72", "tpu-v5p", "dgx-h100", "mi300x-x8", "trn2-48xl"}), site(), q);
  ASSERT_EQ(rows.size(), 5u);
  // gb200-nvl72 has no on-demand price: after every priced row.
  std::size_t first_unpriced = rows.size();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].usd && first_unpriced == rows.size()) first_unpriced = i;
    if (i >= first_unpriced) {
      EXPECT_FALSE(rows[i].usd) << rows[i].system_id << " is priced but ranked after an unpriced row";
    }
    if (i > 0 && rows[i].usd && rows[i - 1].usd) {
      EXPECT_LE(*rows[i - 1].usd, *rows[i].usd);
    }
  }
  EXPECT_EQ(rows.back().system_id, "gb200-nvl72");
  for (const auto& r : rows) {
    ASSERT_TRUE(r.planned) << r.system_id << ": " << r.note;
    // days = ceil(tokens / tokens per step) x step / 86400; USD = devices x hours x rate.
    EXPECT_NEAR(r.days, std::ceil(1e11 / (4096.0 * 256)) * r.plan.step_time / 86400, 1e-9);
    if (r.usd) {
      EXPECT_NEAR(*r.usd, 64 * r.days * 24 * r.rate.usd_per_device_hour, 1e-6 * *r.usd);
    }
  }
  // The same request ranked by time: days ascending over every planned row.
  q.rank = CompareRank::time;
  auto by_time = compare(m, systems({"gb200-nvl72", "tpu-v5p", "dgx-h100", "mi300x-x8", "trn2-48xl"}), site(), q);
  for (std::size_t i = 1; i < by_time.size(); ++i) EXPECT_LE(by_time[i - 1].days, by_time[i].days);
}

TEST(Compare, DeadlineModeTakesTheFewestDevicesThatMeetIt) {
  const Model& m = builtin().model("llama3-8b");
  CompareRequest q = small_job();
  q.devices.reset();
  q.deadline_days = 2;
  auto rows = compare(m, systems({"dgx-h100", "tpu-v5p"}), site(), q);
  for (const auto& r : rows) {
    ASSERT_TRUE(r.planned) << r.system_id;
    EXPECT_TRUE(r.meets_deadline) << r.system_id;
    EXPECT_LE(r.days, 2.0);
    ASSERT_FALSE(r.tried.empty());
    // The chosen count is the last tried; every smaller count tried missed the deadline or did not fit.
    EXPECT_EQ(r.tried.back().first, r.devices);
    for (std::size_t i = 0; i + 1 < r.tried.size(); ++i) EXPECT_TRUE(r.tried[i].second < 0 || r.tried[i].second > 2.0);
    // A skipped count (too few devices even at 100% of peak) really misses the deadline.
    const System& sys = builtin().system(r.system_id);
    double max_peak = 0;
    for (Precision p : kAllPrecisions)
      if (auto pk = sys.peak(p)) max_peak = std::max(max_peak, pk->v);
    for (const auto& [d, days] : r.tried)
      if (days == kSkipped) {
        EXPECT_GT(r.steps * r.plan.model_flops_per_step / (d * max_peak) / 86400.0, 2.0) << d;
      }
    // Counts are the node size times powers of two.
    const int node = builtin().system(r.system_id).devices_per_node;
    EXPECT_EQ(r.devices % node, 0);
    EXPECT_EQ(__builtin_popcount(r.devices / node), 1);
  }
}

TEST(Compare, ImpossibleDeadlineSaysSoAndRanksLast) {
  const Model& m = builtin().model("llama3-8b");
  CompareRequest q = small_job();
  q.devices.reset();
  q.deadline_days = 1e-4;
  q.max_devices = 64;
  auto rows = compare(m, systems({"dgx-h100"}), site(), q);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_FALSE(rows[0].meets_deadline);
  EXPECT_NE(rows[0].note.find("misses the deadline"), std::string::npos);
  // Every row misses it: they rank by days, priced or not (an unpriced row's days had been
  // compared with the priced rows' dollars, and ranked it first).
  rows = compare(m, systems({"dgx-h100", "gaudi3-x8", "dgx-a100"}), site(), q);
  ASSERT_EQ(rows.size(), 3u);
  for (std::size_t i = 1; i < rows.size(); ++i) {
    ASSERT_TRUE(rows[i].planned && !rows[i].meets_deadline);
    EXPECT_LE(rows[i - 1].days, rows[i].days) << rows[i].system_id;
  }
}

TEST(Compare, APrecisionOneChipLacksIsThatRowsAnswer) {
  // A100 has no fp8: its row says so; the H100 row is planned in fp8.
  const Model& m = builtin().model("llama3-8b");
  CompareRequest q = small_job();
  q.precision = Precision::fp8;
  auto rows = compare(m, systems({"dgx-a100", "dgx-h100"}), site(), q);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].system_id, "dgx-h100");
  EXPECT_TRUE(rows[0].planned);
  EXPECT_EQ(rows[0].plan.layout.precision, Precision::fp8);
  EXPECT_FALSE(rows[1].planned);
  EXPECT_NE(rows[1].note.find("--precision"), std::string::npos) << rows[1].note;
}

TEST(Compare, BadRequests) {
  const Model& m = builtin().model("llama3-8b");
  CompareRequest q = small_job();
  q.deadline_days = 3;  // both given
  EXPECT_EQ(catch_input_error([&] { compare(m, systems({"dgx-h100"}), site(), q); }).where, "--devices/--deadline-days");
  q = small_job();
  q.tokens = 0;
  EXPECT_EQ(catch_input_error([&] { compare(m, systems({"dgx-h100"}), site(), q); }).where, "--tokens");
}

TEST(Compare, JsonIsStable) {
  const Model& m = builtin().model("llama3-8b");
  const CompareRequest q = small_job();
  const auto a = compare_json(m, q, compare(m, systems({"dgx-h100", "tpu-v5p"}), site(), q), true).dump();
  CompareRequest q2 = q;
  q2.threads = 2;  // the answer does not depend on threads
  const auto b = compare_json(m, q2, compare(m, systems({"dgx-h100", "tpu-v5p"}), site(), q2), true).dump();
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find("\"usd_per_effective_pflops_day\""), std::string::npos);
}

TEST(Compare, JsonRowsCarryEveryKnobOfThePlan) {
  // "layout" is a one-line summary; "plan" holds every knob, as train --json's layout object.
  const Model& m = builtin().model("llama3-8b");
  const CompareRequest q = small_job();
  const auto sys = systems({"dgx-h100"});  // rows point into the systems' price offers: keep them alive
  const auto rows = compare(m, sys, site(), q);
  ASSERT_TRUE(rows.at(0).planned);
  const auto j = compare_json(m, q, rows, false);
  const auto& row = j.at("rows").at(0);
  const Layout& l = rows[0].plan.layout;
  EXPECT_EQ(row.at("plan").at("tp").get<int>(), l.tp);
  EXPECT_EQ(row.at("plan").at("dp").get<int>(), l.dp);
  EXPECT_EQ(row.at("plan").at("micro_batch").get<int>(), l.micro_batch);
  EXPECT_EQ(row.at("plan").at("schedule").get<std::string>(), "1f1b");
  EXPECT_EQ(row.at("plan").at("attention").get<std::string>(), "flash");
}

// ------------------------------------------------------------------------------------ budget

TEST(Budget, RunwayByHand) {
  // 1,000 dgx-h100 GPUs at AWS's reserved-3y rate (p5.48xlarge 30.24 USD/h / 8 = 3.78 USD/GPU-h):
  // 1000 x 3.78 x 730.5 h = 2,761,290 USD a month; 1e9 USD lasts 1e9 / 2,761,290 = 362.15 months.
  BudgetFile f;
  f.name = "test";
  f.file = "test.toml";
  FleetItem it;
  it.name = "fleet";
  it.system = "dgx-h100";
  it.devices = 1000;
  it.pricing = Pricing::reserved_3y;
  it.provider = "AWS";
  f.fleet.push_back(it);
  const BudgetResult r = plan_budget(builtin(), f, 1e9, {}, day("2026-11-26"), 1);
  const double monthly = 1000 * 3.78 * 730.5;
  ASSERT_TRUE(r.runway_months && r.fleet_months);
  EXPECT_NEAR(*r.usd_per_month, monthly, 1e-6);
  EXPECT_NEAR(*r.runway_months, 1e9 / monthly, 1e-9);
  EXPECT_NEAR(*r.fleet_months, *r.runway_months, 1e-12);
  ASSERT_GE(r.balance.size(), 3u);
  EXPECT_DOUBLE_EQ(r.balance[0], 1e9);
  EXPECT_NEAR(r.balance[1], 1e9 - monthly, 1e-3);
  EXPECT_LE(r.balance.back(), 0);
  EXPECT_GT(r.balance[r.balance.size() - 2], 0);
  // What the sum buys on dgx-h100, per pricing: USD / rate.
  for (const auto& b : r.buys) EXPECT_NEAR(b.device_hours * b.rate.usd_per_device_hour, 1e9, 1e-3);
}

TEST(Budget, TrainingRunsAddToTheBurn) {
  BudgetFile f;
  f.file = "t.toml";
  TrainingItem t;
  t.name = "run";
  t.model = "llama3-8b";
  t.system = "dgx-h100";
  t.devices = 64;
  t.tokens = 1e11;
  t.seq_len = 4096;
  t.global_batch = 256;
  t.runs_per_year = 6;
  t.pricing = Pricing::reserved_1y;
  t.provider = "AWS";
  f.training.push_back(t);
  const BudgetResult r = plan_budget(builtin(), f, 1e8, {}, day("2026-11-26"), 1);
  ASSERT_EQ(r.lines.size(), 1u);
  const BudgetLine& l = r.lines[0];
  ASSERT_TRUE(l.plan && l.usd_per_run);
  // USD per run = devices x hours x rate; burn = runs/year x USD per run / 12.
  EXPECT_NEAR(*l.usd_per_run, 64 * l.days_per_run * 24 * (38.0 / 8), 1e-6 * *l.usd_per_run);
  EXPECT_NEAR(*r.usd_per_month, 6 * *l.usd_per_run / 12, 1e-6);
  EXPECT_NEAR(*l.runs_affordable, 1e8 / *l.usd_per_run, 1e-9);
}

TEST(Budget, FileErrorsNameLineAndKey) {
  const DataFile f{"b.toml", "name = \"x\"\nsource = \"y\"\nusd = \"10 GUSD\"\n[[fleet]]\nname = \"a\"\nsystem = \"dgx-h100\"\n"
                             "devices = 8\npricing = \"monthly\"\n"};
  auto c = catch_input_error([&] { parse_budget_file(f); });
  EXPECT_EQ(c.where, "b.toml:8: fleet[0].pricing");
  const DataFile g{"b.toml", "name = \"x\"\nsource = \"y\"\n[[fleet]]\nname = \"a\"\nsystem = \"dgx-h900\"\ndevices = 8\n"};
  const BudgetFile bf = parse_budget_file(g);
  auto d = catch_input_error([&] { plan_budget(builtin(), bf, 1e9, {}, day("2026-11-26"), 1); });
  EXPECT_EQ(d.where, "b.toml:5: fleet[0].system");  // the key's line and index, as the parser names keys
}

// ------------------------------------------------------------------------------------ contract

const char* kDeal = R"(name = "deal"
source = "test"
buyer = "Lab"
seller = "Cloud"
total = "30 GUSD"
start_year = 2026
years = 3
ramp = [0.2, 0.3, 0.5]

[[capacity]]
system = "dgx-h100"
share = 0.5
pricing = "reserved-3y"
provider = "AWS"
model = "llama3-8b"
tokens = 1e11
devices = 64
seq_len = 4096
global_batch = 256

[[capacity]]
system = "gb200-nvl72"
share = 0.5
price = "10 USD/h"
price_source = "test assumption"
model = "llama3-8b"
tokens = 1e11
devices = 64
seq_len = 4096
global_batch = 256

[[flow]]
year = 2026
from = "Investor"
to = "Lab"
kind = "equity"
usd = "10 GUSD"
source = "t"

[[flow]]
year = 2027
from = "Lab"
to = "Investor"
kind = "chips"
usd = "2 GUSD"
source = "t"

[[flow]]
year = 2027
from = "Cloud"
to = "Investor"
kind = "other"
usd = "1 GUSD"
source = "t"
)";

TEST(Contract, DollarsDeviceHoursAndFlopsByHand) {
  const ContractFile f = parse_contract_file({"deal.toml", kDeal});
  const ContractResult r = evaluate_contract(builtin(), f, day("2026-11-26"), 1);
  ASSERT_EQ(r.years, (std::vector<int>{2026, 2027, 2028}));
  EXPECT_DOUBLE_EQ(r.usd_by_year[2], 15e9);  // 30 GUSD x 0.5
  ASSERT_EQ(r.capacity.size(), 2u);
  const CapacityResult& h100 = r.capacity[0];
  ASSERT_TRUE(h100.plan);
  // 2026: 30e9 x 0.2 x 0.5 = 3e9 USD at 3.78 USD/GPU-h.
  EXPECT_NEAR(h100.years[0].usd, 3e9, 1e-3);
  EXPECT_NEAR(h100.years[0].device_hours, 3e9 / 3.78, 1e-3);
  EXPECT_NEAR(h100.years[0].flops, 3e9 / 3.78 * 3600 * h100.plan->peak_flops_per_device * h100.plan->mfu, 1e15);
  EXPECT_NEAR(h100.years[0].runs, h100.years[0].device_hours / h100.run_device_hours, 1e-9);
  const CapacityResult& gb = r.capacity[1];
  EXPECT_NEAR(gb.total.device_hours, 15e9 / 10.0, 1e-3);
  EXPECT_NE(gb.price_origin.find("test assumption"), std::string::npos);
  double usd = 0;
  for (const auto& c : r.capacity) usd += c.total.usd;
  EXPECT_NEAR(usd, 30e9, 1e-3);
}

TEST(Contract, CashFlowsConserveAndReturnsCount) {
  const ContractFile f = parse_contract_file({"deal.toml", kDeal});
  const ContractResult r = evaluate_contract(builtin(), f, day("2026-11-26"), 1);
  // Every flow leaves one party and enters another: the net flows sum to zero every year.
  ASSERT_EQ(r.flow_years, (std::vector<int>{2026, 2027, 2028}));
  for (double s : r.net_sum) EXPECT_NEAR(s, 0, 1e-3);
  ASSERT_EQ(r.parties, (std::vector<std::string>{"Cloud", "Investor", "Lab"}));
  // 2027: Lab pays Cloud 9 GUSD (the commitment) and Investor 2 GUSD (chips).
  EXPECT_NEAR(r.net.at("Lab")[1], -11e9, 1e-3);
  EXPECT_NEAR(r.net.at("Investor")[1], 3e9, 1e-3);
  // Investor put 10 GUSD into Lab; 2 GUSD of chip purchases come back (the "other" flow from Cloud does not count).
  ASSERT_EQ(r.returns.size(), 1u);
  EXPECT_EQ(r.returns[0].investor, "Investor");
  EXPECT_NEAR(r.returns[0].share(), 0.2, 1e-12);
}

TEST(Contract, FileErrorsNameLineAndKey) {
  auto bad = [](const std::string& from, const std::string& to) {
    const std::string text = test::replace_once(kDeal, from, to);
    return catch_input_error([&] { parse_contract_file({"deal.toml", text}); });
  };
  EXPECT_EQ(bad("ramp = [0.2, 0.3, 0.5]", "ramp = [0.2, 0.3, 0.4]").where, "deal.toml:8: ramp");
  EXPECT_EQ(bad("ramp = [0.2, 0.3, 0.5]", "ramp = [0.5, 0.5]").where, "deal.toml:8: ramp");
  EXPECT_EQ(bad("total = \"30 GUSD\"", "total = \"30 GB\"").where, "deal.toml:5: total");
  EXPECT_EQ(bad("kind = \"chips\"", "kind = \"gift\"").where, "deal.toml:44: flow[1].kind");
  EXPECT_EQ(bad("share = 0.5\npricing", "share = 0.6\npricing").where, "deal.toml: capacity.share");
  EXPECT_EQ(bad("buyer = \"Lab\"", "buyr = \"Lab\"").where, "deal.toml:3: buyr");
  EXPECT_EQ(bad("seller = \"Cloud\"", "seller = \"Lab\"").where, "deal.toml:4: seller");  // buyer = seller
  EXPECT_EQ(bad("start_year = 2026", "start_year = 2147483647").where, "deal.toml:6: start_year");  // wrapped years
  EXPECT_EQ(bad("year = 2027\nfrom = \"Lab\"", "year = 99999\nfrom = \"Lab\"").where, "deal.toml:41: flow[1].year");
  EXPECT_EQ(bad("price = \"10 USD/h\"", "price = \"10 USD\"").where, "deal.toml:24: capacity[1].price");
  EXPECT_EQ(bad("price = \"10 USD/h\"", "price = \"2e6 USD/h\"").where, "deal.toml:24: capacity[1].price");  // above 1e6
  EXPECT_EQ(bad("total = \"30 GUSD\"", "total = \"1e30 USD\"").where, "deal.toml:5: total");                // above 1e15
  const ContractFile f = parse_contract_file({"deal.toml", test::replace_once(kDeal, "\"gb200-nvl72\"", "\"gb900\"")});
  EXPECT_EQ(catch_input_error([&] { evaluate_contract(builtin(), f, day("2026-11-26"), 1); }).where,
            "deal.toml:22: capacity.system");  // the key's line, not the [[capacity]] header's (21)
  // A provider no offer is from: named at its key's line.
  const ContractFile amazon = parse_contract_file({"deal.toml", test::replace_once(kDeal, "provider = \"AWS\"", "provider = \"Amazon\"")});
  EXPECT_EQ(catch_input_error([&] { evaluate_contract(builtin(), amazon, day("2026-11-26"), 1); }).where, "deal.toml:14: capacity.provider");
}

// ------------------------------------------------------------------------------------ compare --serve

ServeCompareRequest small_traffic(double tokens_per_day) {
  ServeCompareRequest q;
  q.tokens_per_day = tokens_per_day;
  q.input_len = 512;
  q.output_len = 128;
  q.requests = 64;
  q.today = day("2026-11-26");
  return q;
}

// The offline peak is a converged rate, not start-up and drain: 512 requests on 8 single-device
// replicas are 64 each, far below a batch cap of 256 or 1,024, and ranked tpu-v6e first. Sized
// per layout (2 x the requests its replicas run at once), each system's peak is within 1% of the
// same layout's rate at ten times the requests, and dgx-h100 leads, as at 8,000 requests.
TEST(CompareServe, OfflinePeakConvergesWhateverTheRequestFloor) {
  const Model& m = builtin().model("llama3-8b");
  EXPECT_EQ(peak_requests(512, kPeakWaves, 8, 1024, 437000, 100), kPeakWaves * 8 * 1024);
  EXPECT_EQ(peak_requests(512, kPeakWaves, 8, 1024, 20000, 100), kPeakWaves * 8 * 200);  // the KV cache binds
  EXPECT_EQ(peak_requests(99999, kPeakWaves, 1, 8, 1000, 100), 99999);          // the floor
  EXPECT_EQ(peak_requests(1, kPeakWaves, 1024, 1 << 20, 1L << 40, 1), kPeakMaxRequests);
  std::map<std::string, double> peak;
  for (const char* id : {"dgx-h100", "mi300x-x8", "tpu-v6e"}) {
    const System& s = builtin().system(id);
    const ServingPick p = best_serving(m, s, 100, 100, 0, 0, std::nullopt, 512);
    ASSERT_TRUE(p.ok) << id << ": " << p.note;
    const ServeReport& r = p.report;
    EXPECT_GT(r.requests, 512) << id;
    ServeRequest q;
    q.devices = r.layout.tp * r.layout.pp * r.layout.replicas;
    static_cast<WorkloadShape&>(q.work) = r.work;
    q.work.requests = 10 * static_cast<int>(r.requests);
    const ServeReport ten = evaluate_serve(m, s, q, r.layout, r.options);
    ASSERT_TRUE(ten.feasible) << id;
    EXPECT_NEAR(r.output_tps_per_device / ten.output_tps_per_device, 1.0, 0.01) << id;
    peak[id] = r.output_tps_per_device;
  }
  EXPECT_GT(peak["dgx-h100"], peak["tpu-v6e"]);
  EXPECT_GT(peak["dgx-h100"], peak["mi300x-x8"]);
}

TEST(CompareServe, DevicesScaleWithTrafficAndCostIsDevicesTimesPriceTimesHours) {
  const Model& m = builtin().model("llama3-8b");
  const auto sys = systems({"dgx-h100"});
  const auto small = compare_serving(m, sys, site(), small_traffic(1e9));
  const auto big = compare_serving(m, sys, site(), small_traffic(1e11));
  ASSERT_EQ(small.size(), 1u);
  ASSERT_TRUE(small[0].served) << small[0].note;
  ASSERT_TRUE(big[0].served) << big[0].note;
  // The same layout (the search does not depend on the traffic) at 100x the traffic.
  EXPECT_EQ(serve_layout_summary(small[0].pick.report), serve_layout_summary(big[0].pick.report));
  EXPECT_GT(big[0].devices, small[0].devices);
  for (const auto* r : {&small[0], &big[0]}) {
    const double per_dev = r->pick.report.output_tps_per_device;
    // Enough whole replicas, and one fewer would not be.
    EXPECT_EQ(r->devices % r->replica_devices, 0);
    EXPECT_GE(r->devices * per_dev, r->required_output_tps * (1 - 1e-9));
    EXPECT_LT((r->devices - r->replica_devices) * per_dev, r->required_output_tps);
    ASSERT_TRUE(r->usd_per_month);
    EXPECT_NEAR(*r->usd_per_month, r->devices * r->rate.usd_per_device_hour * kHoursPerMonth, 1e-6 * *r->usd_per_month);
    // Input and output dollars add up to the month.
    const double days = kHoursPerMonth / 24;
    const double in = *r->usd_per_m_input * (r->required_output_tps * 86400 * 4) * days / 1e6;
    const double out = *r->usd_per_m_output * (r->required_output_tps * 86400) * days / 1e6;
    EXPECT_NEAR(in + out, *r->usd_per_month, 1e-6 * *r->usd_per_month);
  }
  // 512 in : 128 out: a fifth of the tokens are output.
  EXPECT_NEAR(big[0].required_output_tps, 1e11 / 5 / 86400, 1e-6);
}

TEST(CompareServe, UnpricedAndUnservedRowsSaySoAndRankLast) {
  const Model& m = builtin().model("llama3-8b");
  ServeCompareRequest q = small_traffic(1e10);
  auto rows = compare_serving(m, systems({"gb200-nvl72", "dgx-h100"}), site(), q);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].system_id, "dgx-h100");
  EXPECT_EQ(rows[1].system_id, "gb200-nvl72");
  EXPECT_TRUE(rows[1].served);
  EXPECT_FALSE(rows[1].usd_per_month);
  EXPECT_NE(rows[1].note.find("no on-demand price"), std::string::npos) << rows[1].note;
  // An SLO no layout can meet: the row says so.
  q.slo_tpot_s = 1e-6;
  rows = compare_serving(m, systems({"dgx-h100"}), site(), q);
  EXPECT_FALSE(rows[0].served);
  EXPECT_NE(rows[0].note.find("meets the SLOs"), std::string::npos) << rows[0].note;
}

TEST(CompareServe, SloCostsThroughput) {
  const Model& m = builtin().model("llama3-8b");
  ServeCompareRequest q = small_traffic(1e10);
  const auto free = compare_serving(m, systems({"dgx-h100"}), site(), q);
  q.slo_tpot_s = 0.02;
  q.slo_ttft_s = 0.5;
  const auto tight = compare_serving(m, systems({"dgx-h100"}), site(), q);
  ASSERT_TRUE(free[0].served && tight[0].served) << tight[0].note;
  EXPECT_LE(tight[0].pick.report.tpot.p99, 0.02);
  EXPECT_LE(tight[0].pick.report.ttft.p99, 0.5);
  EXPECT_GE(tight[0].devices, free[0].devices);
}

TEST(CompareServe, BadRequests) {
  const Model& m = builtin().model("llama3-8b");
  auto where = [&](auto edit) {
    ServeCompareRequest q = small_traffic(1e9);
    edit(q);
    return catch_input_error([&] { compare_serving(m, systems({"dgx-h100"}), site(), q); }).where;
  };
  EXPECT_EQ(where([](auto& q) { q.tokens_per_day = 0; }), "--tokens-per-day");
  EXPECT_EQ(where([](auto& q) { q.input_len = 0; }), "--input-len");
  EXPECT_EQ(where([](auto& q) { q.output_len = -1; }), "--output-len");
  EXPECT_EQ(where([](auto& q) { q.slo_ttft_s = -1; }), "--slo-ttft-ms");
}

TEST(Contract, ServedTokensFromAServingProfile) {
  const std::string text = test::replace_once(kDeal, "seq_len = 4096\nglobal_batch = 256\n\n[[capacity]]",
                                              "seq_len = 4096\nglobal_batch = 256\nserve_model = \"llama3-8b\"\n"
                                              "serve_input_len = 512\nserve_output_len = 128\n\n[[capacity]]");
  const ContractFile f = parse_contract_file({"deal.toml", text});
  ASSERT_EQ(f.capacity[0].serve_model, "llama3-8b");
  const ContractResult r = evaluate_contract(builtin(), f, day("2026-11-26"), 1);
  const CapacityResult& h100 = r.capacity[0];
  ASSERT_TRUE(h100.serving && h100.serving->ok) << h100.note;
  const double tps = h100.serving->report.output_tps_per_device;
  // tokens = device-hours x 3600 x output tokens/s per device x (512 + 128) / 128.
  EXPECT_NEAR(h100.years[0].served_tokens, h100.years[0].device_hours * 3600 * tps * 5, 1e-6 * h100.years[0].served_tokens);
  EXPECT_NEAR(h100.total.served_output_tokens * 5, h100.total.served_tokens, 1e-6 * h100.total.served_tokens);
  EXPECT_FALSE(r.capacity[1].serving);  // no profile: nothing served
  EXPECT_EQ(r.capacity[1].total.served_tokens, 0);
  const auto j = contract_json(f, r, day("2026-11-26"), false);
  EXPECT_TRUE(j["capacity"][0]["served_tokens"].is_number());
  EXPECT_TRUE(j["capacity"][1]["served_tokens"].is_null());
  // A profile key without serve_model, and an unknown serving model, name the key.
  EXPECT_EQ(catch_input_error([&] {
              parse_contract_file({"deal.toml", test::replace_once(kDeal, "global_batch = 256\n\n[[capacity]]", "global_batch = 256\nserve_input_len = 5\n\n[[capacity]]")});
            }).where,
            "deal.toml:20: capacity[0].serve_input_len");
  const ContractFile g = parse_contract_file({"deal.toml", test::replace_once(text, "serve_model = \"llama3-8b\"", "serve_model = \"nope\"")});
  EXPECT_EQ(catch_input_error([&] { evaluate_contract(builtin(), g, day("2026-11-26"), 1); }).where,
            "deal.toml:20: capacity.serve_model");  // the key's line, not the header's (10)
  // Length spreads: read, passed to the serving search (its workload names them), and checked.
  const std::string spread = test::replace_once(text, "serve_output_len = 128\n", "serve_output_len = 128\nserve_output_spread = \"uniform:64\"\n");
  const ContractFile sf = parse_contract_file({"deal.toml", spread});
  EXPECT_EQ(spread_name(sf.capacity[0].serve_output_spread), "uniform:64");
  const ContractResult sr = evaluate_contract(builtin(), sf, day("2026-11-26"), 1);
  ASSERT_TRUE(sr.capacity[0].serving && sr.capacity[0].serving->ok);
  EXPECT_NE(sr.capacity[0].serving->workload.find("output lengths uniform:64"), std::string::npos) << sr.capacity[0].serving->workload;
  EXPECT_EQ(contract_json(sf, sr, day("2026-11-26"), false)["capacity"][0]["serving"]["output_spread"], "uniform:64");
  EXPECT_EQ(catch_input_error([&] {
              parse_contract_file({"deal.toml", test::replace_once(spread, "uniform:64", "wide")});
            }).where,
            "deal.toml:23: capacity[0].serve_output_spread");
}

// ------------------------------------------------------------------------------------ charts

TEST(Plot, ScriptHoldsDataAndTerminal) {
  PlotPanel p;
  p.title = "t \"q\"";
  p.x = {"a", "b"};
  p.series = {{"s", {1.5, std::nullopt}}};
  const std::string s = gnuplot_script({p, p}, "svg size 800,600", "/tmp/x.svg");
  EXPECT_NE(s.find("set terminal svg size 800,600"), std::string::npos);
  EXPECT_NE(s.find("\"a\" 1.5\n\"b\" ?\n"), std::string::npos) << s;
  EXPECT_NE(s.find("set multiplot layout 2,1"), std::string::npos);
  EXPECT_NE(s.find("\"t \\\"q\\\"\""), std::string::npos);
}

}  // namespace
}  // namespace xpu
