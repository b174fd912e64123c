// Which CUDA devices this process can use, and why none when there are none: the
// status of cudaGetDeviceCount (e.g. cudaErrorInsufficientDriver), the driver and
// runtime versions and each device's name; plus the rule for programs that need a GPU.
//
// The rule (CUDA test programs, CUDA benchmarks): print the report first; without a
// usable device, print "skipped: no CUDA device (<error name>)" and exit with
// kSkipExitCode (ctest's SKIP_RETURN_CODE, so the run reads as Skipped, never Passed),
// unless EWE_REQUIRE_CUDA=1 is set, which makes it a failure naming the CUDA error.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <cuda_runtime.h>

namespace ewe::cuda {

// The exit code of a program that skipped because it had no device (autoconf's and
// ctest's convention).
inline constexpr int kSkipExitCode = 77;

struct DeviceReport {
    cudaError_t count_status = cudaSuccess;  // what cudaGetDeviceCount returned
    int count = 0;
    int driver_version = 0;   // 1000 * major + 10 * minor; 0 when no driver is installed
    int runtime_version = 0;  // the same encoding, of the runtime this program links
    std::vector<std::string> devices;  // "0: NVIDIA H200 (sm_90, 139.8 GiB)", one per device

    bool usable() const { return count_status == cudaSuccess && count > 0; }
    // The CUDA error name that explains an unusable machine ("cudaErrorNoDevice" when
    // the runtime reported success and zero devices).
    std::string error_name() const {
        return count_status == cudaSuccess ? "cudaErrorNoDevice" : cudaGetErrorName(count_status);
    }
    std::string error_text() const {
        return count_status == cudaSuccess ? "cudaGetDeviceCount found 0 devices" : cudaGetErrorString(count_status);
    }
    // One line, e.g. "CUDA driver 13.0, runtime 13.0; 1 device: 0: NVIDIA H200 (sm_90, 139.8 GiB)".
    std::string str() const {
        std::ostringstream s;
        const auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
        s << "CUDA driver " << (driver_version ? version(driver_version) : std::string("none")) << ", runtime "
          << version(runtime_version) << "; ";
        if (!usable()) {
            s << "no usable device (" << error_name() << ": " << error_text() << ")";
            return s.str();
        }
        s << count << (count == 1 ? " device:" : " devices:");
        for (const std::string& d : devices) s << " " << d << ";";
        std::string line = s.str();
        line.pop_back();
        return line;
    }
};

// Asks the runtime; never throws, and leaves no sticky error behind.
inline DeviceReport probe_devices() {
    DeviceReport r;
    if (cudaDriverGetVersion(&r.driver_version) != cudaSuccess) r.driver_version = 0;
    if (cudaRuntimeGetVersion(&r.runtime_version) != cudaSuccess) r.runtime_version = 0;
    r.count_status = cudaGetDeviceCount(&r.count);
    if (r.count_status != cudaSuccess) r.count = 0;
    for (int i = 0; i < r.count; ++i) {
        cudaDeviceProp p{};
        std::ostringstream s;
        s << i << ": ";
        if (cudaGetDeviceProperties(&p, i) == cudaSuccess) {
            s.precision(1);
            s << p.name << " (sm_" << p.major << p.minor << ", " << std::fixed << double(p.totalGlobalMem) / (1 << 30)
              << " GiB)";
        } else {
            s << "(properties unavailable)";
        }
        r.devices.push_back(s.str());
    }
    (void)cudaGetLastError();
    return r;
}

// EWE_REQUIRE_CUDA from the environment: "1" requires a device; unset, "" or "0" does not.
// Any other value is refused (returns std::nullopt) so a typo cannot silently allow skips.
inline std::optional<bool> cuda_required_by_environment() {
    const char* v = std::getenv("EWE_REQUIRE_CUDA");
    if (v == nullptr || std::strcmp(v, "") == 0 || std::strcmp(v, "0") == 0) return false;
    if (std::strcmp(v, "1") == 0) return true;
    return std::nullopt;
}

// The rule above, for `program`: prints the device report (stdout), then returns
// std::nullopt when the program should run, or the exit code it must leave with:
// kSkipExitCode after "skipped: no CUDA device (<error name>)", or 1 after a FAIL line
// naming the CUDA error when EWE_REQUIRE_CUDA=1 (2 when EWE_REQUIRE_CUDA is malformed).
inline std::optional<int> exit_code_without_device(const char* program) {
    if (const char* slash = std::strrchr(program, '/')) program = slash + 1;  // argv[0] -> its file name
    const DeviceReport report = probe_devices();
    std::printf("%s: %s\n", program, report.str().c_str());
    const std::optional<bool> required = cuda_required_by_environment();
    if (!required) {
        std::printf("FAIL: %s: EWE_REQUIRE_CUDA must be 1 (require a device), 0 or unset; got '%s'\n", program,
                    std::getenv("EWE_REQUIRE_CUDA"));
        std::fflush(stdout);
        return 2;
    }
    if (report.usable()) {
        std::fflush(stdout);
        return std::nullopt;
    }
    if (*required) {
        std::printf("FAIL: %s: EWE_REQUIRE_CUDA=1 but no usable CUDA device (%s: %s)\n", program,
                    report.error_name().c_str(), report.error_text().c_str());
        std::fflush(stdout);
        return 1;
    }
    std::printf("skipped: no CUDA device (%s)\n", report.error_name().c_str());
    std::fflush(stdout);
    return kSkipExitCode;
}

}  // namespace ewe::cuda
