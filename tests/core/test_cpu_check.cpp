// The build check of ewe/core/cpu_check.hpp: a program compiled without optimization or
// without vector instructions the CPU has is told so, naming the flag that fixes it;
// nothing is said when there is nothing to fix; EWE_QUIET_CPU_CHECK silences it. This
// program is built as ewe::ewe's users are (-O2 or more, EWE_ARCH=native), so on the
// machine it was compiled on its own check must find nothing to say.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include <ewe/core/cpu_check.hpp>

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const ewe::CpuFeatures kAll{true, true, true};
const ewe::CpuFeatures kNone{false, false, false};

}  // namespace

TEST_CASE("cpu_build_advice: an unoptimized build is told to use -O3 or a Release build") {
    const std::string advice = ewe::cpu_build_advice(kNone, kNone, false);
    INFO(advice);
    CHECK(contains(advice, "compiled without optimization"));
    CHECK(contains(advice, "CMAKE_BUILD_TYPE=Release"));
    CHECK(contains(advice, "-O3"));
    CHECK(!contains(advice, "-march"));
}

TEST_CASE("cpu_build_advice: vector instructions the CPU has and the build lacks are named, with -march=native") {
    const std::string advice = ewe::cpu_build_advice(kAll, ewe::CpuFeatures{true, false, false}, true);
    INFO(advice);
    CHECK(contains(advice, "(FMA AVX512F)"));
    CHECK(!contains(advice, "AVX2"));
    CHECK(contains(advice, "-march=native"));
    CHECK(contains(advice, "EWE_ARCH=portable"));
    CHECK(!contains(advice, "optimization"));
    // Both problems: two lines.
    CHECK(ewe::cpu_build_advice(kAll, kNone, false).find('\n') + 1 < ewe::cpu_build_advice(kAll, kNone, false).size());
}

TEST_CASE("cpu_build_advice: nothing to say for an optimized build of all the CPU has, or for more than it has") {
    CHECK(ewe::cpu_build_advice(kAll, kAll, true).empty());
    CHECK(ewe::cpu_build_advice(kNone, kAll, true).empty());
    CHECK(ewe::cpu_build_advice(ewe::CpuFeatures{true, true, false}, ewe::CpuFeatures{true, true, false}, true).empty());
}

TEST_CASE("this program, built with ewe::ewe's flags, has nothing to be told on the machine that built it") {
    CHECK(ewe::compiled_with_optimization());
    const std::string advice = ewe::cpu_build_advice(ewe::cpu_features_of_this_machine(), ewe::cpu_features_compiled_for(),
                                                     ewe::compiled_with_optimization());
    INFO(advice);
    CHECK(advice.empty());
}

TEST_CASE("EWE_QUIET_CPU_CHECK silences the check unless empty or 0") {
    ::unsetenv("EWE_QUIET_CPU_CHECK");
    CHECK(!ewe::cpu_check_silenced());
    ::setenv("EWE_QUIET_CPU_CHECK", "0", 1);
    CHECK(!ewe::cpu_check_silenced());
    ::setenv("EWE_QUIET_CPU_CHECK", "", 1);
    CHECK(!ewe::cpu_check_silenced());
    ::setenv("EWE_QUIET_CPU_CHECK", "1", 1);
    CHECK(ewe::cpu_check_silenced());
    ::unsetenv("EWE_QUIET_CPU_CHECK");
}
