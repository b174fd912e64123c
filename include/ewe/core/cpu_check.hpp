// The build check: ewe is header-only, so its speed is set by the flags the user's
// program is compiled with. The first ewe::Context of a process says once, on stderr,
// when the program was compiled without optimization (no -O) or without vector
// instructions this CPU has (AVX2, FMA, AVX-512), naming the flag that fixes it, as
// TensorFlow's "This TensorFlow binary is optimized to use..." does. Issue 26 measured
// the sheep VAE at 15.6 s per epoch unoptimized, 0.41-0.55 s with -O3, 0.16-0.20 s with
// -O3 -march=native. EWE_QUIET_CPU_CHECK=1 in the environment silences it; a program
// linking ewe::compiled is not checked (the library holds the code that matters).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace ewe {

// The vector instructions the check looks at.
struct CpuFeatures {
    bool avx2 = false;
    bool fma = false;
    bool avx512f = false;
};

// What the CPU this process runs on supports (all false off x86).
inline CpuFeatures cpu_features_of_this_machine() {
    CpuFeatures f;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
#endif
    return f;
}

// What this program was compiled for.
inline CpuFeatures cpu_features_compiled_for() {
    CpuFeatures f;
#if defined(__AVX2__)
    f.avx2 = true;
#endif
#if defined(__FMA__)
    f.fma = true;
#endif
#if defined(__AVX512F__)
    f.avx512f = true;
#endif
    return f;
}

// Whether this program was compiled with optimization (-O1 or more).
inline bool compiled_with_optimization() {
#if defined(__OPTIMIZE__)
    return true;
#else
    return false;
#endif
}

// The warning for a program compiled for `compiled` (with optimization or not) that
// runs on a CPU with `cpu`: one line per problem, empty when there is none.
inline std::string cpu_build_advice(const CpuFeatures& cpu, const CpuFeatures& compiled, bool optimized) {
    std::string advice;
    if (!optimized)
        advice += "ewe: this program was compiled without optimization and trains tens of times slower; "
                  "build it with CMAKE_BUILD_TYPE=Release, or add -O3 to the compiler's flags\n";
    std::string missing;
    const auto add = [&missing](bool has, bool built_for, const char* name) {
        if (has && !built_for) missing += std::string(missing.empty() ? "" : " ") + name;
    };
    add(cpu.avx2, compiled.avx2, "AVX2");
    add(cpu.fma, compiled.fma, "FMA");
    add(cpu.avx512f, compiled.avx512f, "AVX512F");
    if (!missing.empty())
        advice += "ewe: this CPU has instructions this program was not compiled for (" + missing +
                  "), which train 2-3x faster; compile with -march=native (CMake: ewe::ewe adds it unless "
                  "ewe was configured with EWE_ARCH=portable)\n";
    return advice;
}

// Whether the environment asks for silence (EWE_QUIET_CPU_CHECK set and not "0").
inline bool cpu_check_silenced() {
    const char* quiet = std::getenv("EWE_QUIET_CPU_CHECK");
    return quiet != nullptr && *quiet != '\0' && std::string(quiet) != "0";
}

namespace detail {

// Prints cpu_build_advice for this program and machine to stderr, once per process.
// Not under ewe::compiled (EWE_COMPILED_LIBRARY): ewe's heavy code is then in
// libewe_cpu.a, compiled with ewe's own flags whatever this program's are.
inline void check_cpu_build_once() {
#if defined(EWE_COMPILED_LIBRARY)
    return;
#endif
    static const bool checked = [] {
        if (cpu_check_silenced()) return true;
        const std::string advice =
            cpu_build_advice(cpu_features_of_this_machine(), cpu_features_compiled_for(), compiled_with_optimization());
        if (!advice.empty())
            std::fprintf(stderr, "%s(EWE_QUIET_CPU_CHECK=1 silences this)\n", advice.c_str());
        return true;
    }();
    (void)checked;
}

}  // namespace detail
}  // namespace ewe
