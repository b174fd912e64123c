// Checkpoints of any model: one safetensors file holding every parameter of a
// ParameterStore under its Keras-style name ("dense_1/kernel"), the optimizer's state
// buffers as "optimizer/<name>" (each shaped like the trainable prefix), and string
// metadata that always carries "format" (what wrote it, e.g. "ewe.sheep_vae") and
// "format_version". Written atomically (a crash leaves the previous file intact) and
// only when every value is finite; read back with every name, shape, dtype, metadata
// value and tensor value (finite) checked, and errors that name the file (and what it
// is to the caller: Checkpoint::read's source). Names, layouts and keys: docs/api.md,
// "Checkpoints".
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/io/files.hpp"
#include "ewe/io/safetensors.hpp"
#include "ewe/nn/parameters.hpp"
#include "ewe/optim/optimizers.hpp"

namespace ewe {

using CheckpointMetadata = std::map<std::string, std::string>;

// A checkpoint that does not fit what it is loaded into (another architecture, another
// optimizer or training setting): the message names both sides.
class EWE_VISIBLE CheckpointMismatch final : public Error {
public:
    using Error::Error;
};

// A double as metadata text that reads back to the same value.
inline std::string metadata_number(double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// Whole numbers as "a,b,c".
inline std::string metadata_list(const std::vector<std::int64_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(v[i]);
    }
    return s;
}

// Thrown when a checkpoint would hold (save_checkpoint) or holds (Checkpoint::
// load_parameters, load_optimizer) a NaN or an infinity: such weights are never saved
// over a good file, and never loaded.
class EWE_VISIBLE NonFiniteCheckpoint : public Error {
public:
    using Error::Error;
};

// "" when all `n` values are finite, else "holds 12 non-finite values (first: NaN at
// index 3)", the index counting row-major within the tensor.
template <class T>
std::string describe_nonfinite(const T* values, std::size_t n) {
    std::size_t count = 0, first = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (!std::isfinite(values[i])) {
            if (count == 0) first = i;
            ++count;
        }
    if (count == 0) return {};
    const T v = values[first];
    return detail::concat("holds ", count, " non-finite value", count == 1 ? "" : "s", " (first: ",
                          std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf", " at index ", first, ")");
}

// Writes params (and the optimizer's state when given) with `metadata`, which must
// name its "format" and "format_version". Refuses (NonFiniteCheckpoint, naming the file
// and the tensor) a parameter or state buffer holding a NaN or an infinity; the file
// at `path`, if any, is then left as it was.
template <class T>
void save_checkpoint(const std::filesystem::path& path, const ParameterStore<T>& params, Optimizer<T>* optimizer,
                     const CheckpointMetadata& metadata) {
    EWE_REQUIRE(metadata.count("format") && metadata.count("format_version"), "save_checkpoint: ", path.string(),
                ": the metadata must name its 'format' and 'format_version'");
    // Host buffers are written in place; device buffers go through host copies.
    std::vector<Tensor<T>> copies;
    copies.reserve(optimizer ? optimizer->state().size() + 1 : 1);
    const auto on_host = [&](TensorView<T> t) -> TensorView<const T> {
        if (t.device() == Device::cpu) return t;
        copies.push_back(Tensor<T>::copy_of(t, Device::cpu));
        return copies.back().view();
    };
    std::vector<io::SafetensorsEntry> entries;
    const auto add = [&](const std::string& name, TensorView<const T> t) {
        const std::string bad = describe_nonfinite(t.data(), std::size_t(t.numel()));
        if (!bad.empty())
            throw NonFiniteCheckpoint(detail::concat("save_checkpoint: ", path.string(), ": tensor '", name, "' ", bad,
                                                     "; not saved (a file already there is kept)"));
        entries.push_back(io::safetensors_entry<T>(name, t));
    };
    const TensorView<const T> values = on_host(params.values());
    for (const ParameterInfo& info : params.info()) add(info.name, values.slice(info.offset, info.shape));
    if (optimizer)
        for (const auto& [name, view] : optimizer->state()) add("optimizer/" + name, on_host(view));
    io::write_safetensors(path, entries, metadata);
}

// A checkpoint read from disk. Every error names the file after `source`, what the
// path is to the caller: "checkpoint" by default ("checkpoint /runs/a.safetensors: not
// a vae checkpoint ..."); a program passes the option the path came from (e.g.
// "--checkpoint") so that its messages name its flag.
class Checkpoint {
public:
    // Reads `path` and checks that it was written in `format`, version `version`.
    static Checkpoint read(const std::filesystem::path& path, const std::string& format, const std::string& version,
                           const std::string& source = "checkpoint") {
        io::require_file(path, source);
        Checkpoint c;
        c.source_ = source;
        try {
            c.file_ = io::read_safetensors(path);
        } catch (const Error& e) {
            fail(source, " ", e.what());
        }
        const auto it = c.file_.metadata.find("format");
        if (it == c.file_.metadata.end() || it->second != format)
            fail(source, " ", path.string(), ": not a ", format.substr(format.find('.') + 1),
                 " checkpoint (metadata 'format' should be ", format, ")");
        if (c.meta("format_version") != version)
            fail(source, " ", path.string(), ": checkpoint format_version ", c.meta("format_version"),
                 ", this program reads ", version);
        return c;
    }

    const std::string& path() const { return file_.path; }
    const std::string& source() const { return source_; }
    const io::SafetensorsFile& file() const { return file_; }

    // Metadata values, each checked against the range the caller can handle, so an
    // edited or corrupt file fails here naming the key, not deep inside a model.
    const std::string& meta(const std::string& key) const {
        const auto it = file_.metadata.find(key);
        if (it == file_.metadata.end()) fail(source_, " ", path(), ": metadata has no '", key, "'");
        return it->second;
    }
    std::int64_t meta_int(const std::string& key, std::int64_t lo, std::int64_t hi) const {
        const std::string& v = meta(key);
        char* end = nullptr;
        errno = 0;
        const long long x = std::strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || errno == ERANGE)
            fail(source_, " ", path(), ": metadata ", key, " = '", v, "' is not an integer");
        if (x < lo || x > hi)
            fail(source_, " ", path(), ": metadata ", key, " = ", format_number(x), " is outside [", format_number(lo), ", ",
                 format_number(hi), "]");
        return x;
    }
    std::uint64_t meta_uint64(const std::string& key) const {
        const std::string& v = meta(key);
        char* end = nullptr;
        errno = 0;
        const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || v[0] == '-' || *end != '\0' || errno == ERANGE)
            fail(source_, " ", path(), ": metadata ", key, " = '", v, "' is not an unsigned 64-bit integer");
        return x;
    }
    double meta_double(const std::string& key, double lo, double hi) const {
        const std::string& v = meta(key);
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0' || !std::isfinite(x))
            fail(source_, " ", path(), ": metadata ", key, " = '", v, "' is not a finite number");
        if (x < lo || x > hi)
            fail(source_, " ", path(), ": metadata ", key, " = ", format_number(x), " is outside [", format_number(lo), ", ",
                 format_number(hi), "]");
        return x;
    }
    // A comma-separated list of 1 to max_count whole numbers in [1, hi].
    std::vector<std::int64_t> meta_list(const std::string& key, std::size_t max_count, std::int64_t hi) const {
        const std::string& v = meta(key);
        const std::string what = source_ + " " + path() + ": metadata " + key;
        std::vector<std::int64_t> out;
        std::stringstream ss(v);
        std::string item;
        while (std::getline(ss, item, ',')) {
            char* end = nullptr;
            const double x = std::strtod(item.c_str(), &end);
            if (item.empty() || *end != '\0' || !(x >= 1 && x <= double(hi) && x == std::floor(x)))
                fail(what, ": '", item, "' is not a whole number in [1, ", hi, "]");
            out.push_back(std::int64_t(x));
        }
        if (out.empty() || out.size() > max_count) fail(what, ": needs 1 to ", max_count, " values, found ", out.size());
        return out;
    }

    // Copies every parameter of `params` from the file, checking names, shapes and that
    // every value is finite (NonFiniteCheckpoint otherwise); `params` is left unchanged
    // when any check fails.
    template <class T>
    void load_parameters(ParameterStore<T>& params) const {
        Tensor<T> host(params.values().shape());
        for (const ParameterInfo& info : params.info()) {
            const auto it = file_.tensors.find(info.name);
            if (it == file_.tensors.end())
                fail(source_, " ", path(), ": has no tensor '", info.name, "' (a checkpoint of another architecture?)");
            std::vector<std::int64_t> want;
            for (int a = 0; a < info.shape.rank(); ++a) want.push_back(info.shape[a]);
            if (it->second.shape != want)
                fail(source_, " ", path(), ": tensor '", info.name, "' has shape ",
                     shape_text(it->second.shape.data(), it->second.shape.size()), ", the model expects ", info.shape,
                     " (a checkpoint of another architecture?)");
            try {
                file_.copy_to(info.name, host.data() + info.offset, std::size_t(info.shape.numel()));
            } catch (const Error& e) {
                fail(source_, " ", e.what());
            }
            check_finite(info.name, host.data() + info.offset, std::size_t(info.shape.numel()));
        }
        copy<T>(host.view(), params.values());
    }

    // Throws CheckpointMismatch unless the file holds every parameter of `params` under
    // its name with its shape (the check load_parameters makes, without loading).
    template <class T>
    void check_architecture(const ParameterStore<T>& params) const {
        for (const ParameterInfo& info : params.info()) {
            const auto it = file_.tensors.find(info.name);
            if (it == file_.tensors.end())
                throw CheckpointMismatch(detail::concat(path(), ": has no tensor '", info.name,
                                                        "', which the model has (a checkpoint of another architecture)"));
            std::vector<std::int64_t> want;
            for (int a = 0; a < info.shape.rank(); ++a) want.push_back(info.shape[a]);
            if (it->second.shape != want)
                throw CheckpointMismatch(detail::concat(
                    path(), ": tensor '", info.name, "' has shape ",
                    shape_text(it->second.shape.data(), it->second.shape.size()), ", the model's is ", info.shape,
                    " (a checkpoint of another architecture)"));
        }
    }

    bool has_optimizer_state() const {
        for (const auto& [name, tensor] : file_.tensors)
            if (name.rfind("optimizer/", 0) == 0) return true;
        return false;
    }

    // Copies the optimizer's state buffers from the file, each checked finite
    // (NonFiniteCheckpoint otherwise); sets its step count and learning rate to those
    // given (usually read from the metadata).
    template <class T>
    void load_optimizer(Optimizer<T>& optimizer, std::int64_t iterations, double learning_rate) const {
        for (auto& [name, view] : optimizer.state()) {
            const std::string key = "optimizer/" + name;
            if (!file_.has(key))
                fail(source_, " ", path(), ": has no tensor '", key, "' (saved without ", optimizer.kind(),
                     " state, or by another optimizer)");
            Tensor<T> host(view.shape());
            try {
                file_.copy_to(key, host.data(), std::size_t(view.numel()));
            } catch (const Error& e) {
                fail(source_, " ", e.what());
            }
            check_finite(key, host.data(), std::size_t(view.numel()));
            copy<T>(host.view(), view);
        }
        optimizer.set_iterations(iterations);
        optimizer.set_learning_rate(learning_rate);
    }

private:
    template <class T>
    void check_finite(const std::string& name, const T* values, std::size_t n) const {
        const std::string bad = describe_nonfinite(values, n);
        if (!bad.empty())
            throw NonFiniteCheckpoint(
                detail::concat(source_, " ", path(), ": tensor '", name, "' ", bad, "; the file cannot be used"));
    }

    io::SafetensorsFile file_;
    std::string source_;
};

}  // namespace ewe
