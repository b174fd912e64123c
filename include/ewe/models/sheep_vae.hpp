// The sheep VAE of the "sheep in latent space" experiment (Keras/R original): a Vae
// (models/vae.hpp) whose convolutional encoder and mirrored decoder SheepVaeOptions
// describes. With the default configuration the VAE has 12,857,845 parameters (350
// non-trainable) and the decoder 6,511,206, as in the original. `width` scales every
// convolution's filters and every dense width (the model sweeps of `sheep_vae sweep`):
// 1 is the post's model, 0.5 halves each layer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "ewe/models/vae.hpp"
#include "ewe/nn/batchnorm.hpp"
#include "ewe/nn/conv2d.hpp"
#include "ewe/nn/dense.hpp"
#include "ewe/nn/elementwise.hpp"

namespace ewe {

struct SheepVaeOptions {
    std::int64_t image_size = 28;
    std::int64_t channels = 1;
    std::int64_t kernel = 4;
    std::vector<std::int64_t> filters{10, 20, 40, 80};  // encoder convolutions; the decoder mirrors them
    std::vector<std::int64_t> units{100, 50, 25};       // encoder dense widths; the decoder mirrors them
    std::int64_t latent = 2;
    double dropout = 0.1;
    ReparamVariant reparam = ReparamVariant::standard;
    // Each layer gets max(1, round(width * n)) of the n filters or units listed above.
    double width = 1.0;
    static constexpr double kMaxWidth = 16.0;

    std::vector<std::int64_t> scaled_filters() const { return scaled(filters); }
    std::vector<std::int64_t> scaled_units() const { return scaled(units); }

    void validate() const {
        EWE_REQUIRE(image_size > 0 && image_size % 2 == 0, "SheepVaeOptions: image_size must be a positive even "
                    "number (the decoder upsamples by 2 and downsamples by 2), found ", image_size);
        EWE_REQUIRE(channels > 0, "SheepVaeOptions: channels must be positive, found ", channels);
        EWE_REQUIRE(!filters.empty(), "SheepVaeOptions: filters must not be empty");
        EWE_REQUIRE(units.size() >= 2, "SheepVaeOptions: units needs at least two widths, found ", units.size());
        EWE_REQUIRE(latent > 0, "SheepVaeOptions: latent must be positive, found ", latent);
        EWE_REQUIRE(std::isfinite(width) && width > 0 && width <= kMaxWidth,
                    "SheepVaeOptions: width must be in (0, ", format_number(kMaxWidth), "], found ",
                    format_number(width));
    }

private:
    std::vector<std::int64_t> scaled(const std::vector<std::int64_t>& widths) const {
        std::vector<std::int64_t> out;
        for (std::int64_t n : widths) out.push_back(std::max<std::int64_t>(1, std::llround(width * double(n))));
        return out;
    }
};

// The sheep VAE is one configuration of Vae: its constructor builds the encoder and
// the decoder that SheepVaeOptions describes.
template <class T>
class SheepVae : public Vae<T> {
public:
    SheepVae(Context& ctx, SheepVaeOptions options, std::int64_t max_batch, std::uint64_t seed)
        : Vae<T>(ctx, vae_options(options), max_batch, seed), options_(std::move(options)) {}

    const SheepVaeOptions& options() const { return options_; }

private:
    static VaeOptions<T> vae_options(const SheepVaeOptions& options) {
        options.validate();
        const Shape image{options.image_size, options.image_size, options.channels};
        return VaeOptions<T>{image, make_encoder(options), options.latent, make_decoder(options), options.reparam};
    }

    static std::shared_ptr<Sequential<T>> make_encoder(const SheepVaeOptions& options) {
        auto encoder = std::make_shared<Sequential<T>>("encoder");
        for (std::int64_t f : options.scaled_filters())
            encoder->template add<Conv2D>(ConvOptions{f, options.kernel, 1, Padding::same, Activation::relu});
        encoder->template add<Flatten>();
        const std::vector<std::int64_t> units = options.scaled_units();
        for (std::size_t i = 0; i < units.size(); ++i) {
            encoder->template add<Dense>(units[i], Activation::relu);
            if (i + 1 < units.size()) {
                encoder->template add<Dropout>(options.dropout);
                encoder->template add<BatchNormalization>();
            }
        }
        return encoder;
    }

    static std::shared_ptr<Sequential<T>> make_decoder(const SheepVaeOptions& options) {
        auto decoder = std::make_shared<Sequential<T>>("decoder");
        const std::vector<std::int64_t> u = options.scaled_units(), filters = options.scaled_filters();
        for (std::size_t i = u.size(); i-- > 0;) {
            decoder->template add<Dense>(u[i], Activation::relu);
            if (i + 1 == u.size()) {
                decoder->template add<Dropout>(options.dropout);
                decoder->template add<BatchNormalization>();
            }
        }
        const std::int64_t s = options.image_size, top = filters.back();
        decoder->template add<Dense>(s * s * top, Activation::relu);
        decoder->template add<Reshape>(Shape{s, s, top});
        for (std::size_t i = filters.size(); i-- > 0;) {
            const std::int64_t stride = i == 0 ? 2 : 1;
            decoder->template add<Conv2DTranspose>(
                ConvOptions{filters[i], options.kernel, stride, Padding::same, Activation::relu});
        }
        decoder->template add<Conv2D>(
            ConvOptions{options.channels, options.kernel, 2, Padding::same, Activation::sigmoid});
        return decoder;
    }

    SheepVaeOptions options_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::SheepVae<float>;
#endif
