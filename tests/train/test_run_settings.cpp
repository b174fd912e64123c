// first_changed_setting (ewe/train/run_folder.hpp): the rules by which a continued run's
// settings are compared with those it recorded: `same` must be equal, `at_least` may
// grow, a `note` is never compared (but must be recorded); the first change is returned
// with its value before, in the order of the settings.
#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "error_of.hpp"
#include "ewe/train/run_folder.hpp"

using ewe::ChangedSetting;
using ewe::RunSetting;
using ewe_test::error_of;
using Rule = RunSetting::Rule;

TEST_CASE("first_changed_setting: same, at_least and note, the first change in order") {
    const std::vector<RunSetting> now{{"data", "sheep.npy", Rule::note},
                                      {"--lr", "0.001"},
                                      {"--epochs", "30", Rule::at_least},
                                      {"--seed", "42"}};
    std::map<std::string, std::string> record{{"data", "other.npy"}, {"--lr", "0.001"}, {"--epochs", "30"}, {"--seed", "42"}};
    const auto recorded = [&](const std::string& key) {
        if (!record.count(key)) ewe::fail("no '", key, "' recorded");
        return record.at(key);
    };
    CHECK_FALSE(ewe::first_changed_setting(now, recorded).has_value());  // a note may differ
    record["--epochs"] = "20";                                              // fewer epochs before: may grow
    CHECK_FALSE(ewe::first_changed_setting(now, recorded).has_value());
    record["--seed"] = "7";
    record["--epochs"] = "40";  // more epochs before than now: changed, and first in order
    std::optional<ChangedSetting> changed = ewe::first_changed_setting(now, recorded);
    REQUIRE(changed.has_value());
    CHECK(changed->now == &now[2]);
    CHECK(changed->before == "40");
    record["--epochs"] = "30";
    changed = ewe::first_changed_setting(now, recorded);
    REQUIRE(changed.has_value());
    CHECK(changed->now->key == "--seed");
    CHECK(changed->now->value == "42");
    CHECK(changed->before == "7");
    record.erase("data");  // a note is asked for even though it is not compared
    CHECK(error_of([&] { ewe::first_changed_setting(now, recorded); }) == "no 'data' recorded");
}
