// Input complexity for likelihood-based anomaly scores (Serra et al., "Input complexity
// and out-of-distribution detection with likelihood-based generative models", ICLR 2020):
// a generative model gives simple inputs high likelihood whatever their class, so the
// score subtracts the code length of a general-purpose lossless compressor,
//     S(x) = -log P_model(x) - L(x),
// a log-likelihood ratio between the model and the compressor on the same discrete
// input. Here the input is each value quantized to 8 bits (round(255 x), x in [0, 1],
// as the Quick, Draw! bitmaps are stored) and the compressor is ewe's deflate
// (ewe::io::zlib_compress: fixed Huffman codes, greedy LZ77; its 6-byte header and
// checksum are a constant). A model with a density p(x) on [0, 1]^P gives the quantized
// input probability ~ p(x) / 255^P, so -log P_model(x) = -log p(x) + P log 255.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/io/png.hpp"

namespace ewe::anomaly {

// L(x) in nats for each sample (dimension 0) of `inputs` (host, values in [0, 1]):
// 8 ln 2 times the bytes of zlib_compress of its 8-bit quantization.
template <class T>
std::vector<double> compressed_length_nats(std::type_identity_t<TensorView<const T>> inputs) {
    EWE_REQUIRE(inputs.device() == Device::cpu, "compressed_length_nats: inputs must be on the host");
    EWE_REQUIRE(inputs.rank() >= 2, "compressed_length_nats: expected (n, values...), found ", inputs.shape());
    const std::int64_t n = inputs.dim(0), per = inputs.numel() / std::max<std::int64_t>(n, 1);
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(n));
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(per));
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t j = 0; j < per; ++j) {
            const double v = double(inputs[i * per + j]);
            EWE_REQUIRE(v >= 0 && v <= 1, "compressed_length_nats: value ", j, " of sample ", i,
                        " is outside [0, 1]: ", v);
            bytes[std::size_t(j)] = std::uint8_t(std::lround(255 * v));
        }
        out.push_back(8 * std::log(2.0) * double(io::zlib_compress(bytes).size()));
    }
    return out;
}

// S(x) = nll + P log 255 - L(x): the complexity-corrected negative log-likelihood of
// samples whose model density gives `nll` = -log p(x) (nats) over `values_per_sample`
// values quantized to 8 bits, and whose compressed lengths are `lengths` (nats).
inline std::vector<double> complexity_adjusted_nll(const std::vector<double>& nll, const std::vector<double>& lengths,
                                                   std::int64_t values_per_sample) {
    EWE_REQUIRE(nll.size() == lengths.size(), "complexity_adjusted_nll: ", nll.size(), " likelihoods but ",
                lengths.size(), " lengths");
    EWE_REQUIRE(values_per_sample > 0, "complexity_adjusted_nll: values_per_sample must be positive, found ",
                values_per_sample);
    const double quantization = double(values_per_sample) * std::log(255.0);
    std::vector<double> out(nll.size());
    for (std::size_t i = 0; i < nll.size(); ++i) out[i] = nll[i] + quantization - lengths[i];
    return out;
}

}  // namespace ewe::anomaly
