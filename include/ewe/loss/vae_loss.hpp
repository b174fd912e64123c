// Losses of the sheep VAE. Reductions are stated, because users trip on them:
//   reconstruction, per sample: recon_scale * mean over pixels of (x_hat - x)^2
//     (the post's 2 * 28 * 28 * MSE is recon_scale = 1568, i.e. 2 * SSE);
//   KL, per sample: -0.5 * reduce_d (1 + log_var - mean^2 - exp(log_var)), reduce_d a
//     mean over latent dimensions (the post) or a sum (KlReduction::sum);
//   total: batch mean of reconstruction + kl_weight * KL. kl_weight may change every
//   step (KL annealing) with nothing rebuilt.
// batch_means(loss) reads the last forward's per-sample terms back to the host as those
// batch means, for code that takes single steps without a Trainer.
#pragma once

#include <cstdint>

#include "ewe/core/context.hpp"
#include "ewe/ops/ops.hpp"

namespace ewe {

struct VaeLossOptions {
    double recon_scale = 2.0 * 28 * 28;
    KlReduction kl_reduction = KlReduction::mean;
};

template <class T>
class VaeLoss {
public:
    VaeLoss(Context& ctx, VaeLossOptions options, std::int64_t max_batch)
        : options_(options),
          recon_(Shape{max_batch}, ctx.device()),
          kl_(Shape{max_batch}, ctx.device()) {
        EWE_REQUIRE(options.recon_scale > 0, "VaeLoss: recon_scale must be positive, found ", options.recon_scale);
    }

    const VaeLossOptions& options() const { return options_; }
    void set_kl_weight(double w) {
        EWE_REQUIRE(w >= 0, "VaeLoss: kl_weight must be >= 0, found ", format_number(w));
        kl_weight_ = w;
    }
    double kl_weight() const { return kl_weight_; }

    // Per-sample terms into the loss' own buffers, on the context's device: read them with
    // per_sample_*() (the trainer reads them through TrainingObjective::per_sample_term
    // and sums them on the host, ewe/train/trainer.hpp).
    void forward(Context& ctx, TensorView<const T> x, TensorView<const T> x_hat, TensorView<const T> mean,
                 TensorView<const T> log_var) {
        const std::int64_t n = x.dim(0);
        ops::mse_forward<T>(ctx, options_.recon_scale, x_hat, x, recon_.view().leading(n));
        ops::kl_forward<T>(ctx, options_.kl_reduction, mean, log_var, kl_.view().leading(n));
        batch_ = n;
    }

    // Gradients of the batch-mean total: overwrites dx_hat, dmean, dlog_var.
    void backward(Context& ctx, TensorView<const T> x, TensorView<const T> x_hat, TensorView<const T> mean,
                  TensorView<const T> log_var, TensorView<T> dx_hat, TensorView<T> dmean, TensorView<T> dlog_var) {
        const double n = double(x.dim(0));
        ops::mse_backward<T>(ctx, options_.recon_scale / n, x_hat, x, dx_hat);
        ops::kl_backward<T>(ctx, options_.kl_reduction, kl_weight_ / n, mean, log_var, dmean, dlog_var);
    }

    TensorView<const T> per_sample_reconstruction() const { return recon_.view().leading(batch_); }
    TensorView<const T> per_sample_kl() const { return kl_.view().leading(batch_); }

private:
    VaeLossOptions options_;
    double kl_weight_ = 1.0;
    Tensor<T> recon_, kl_;
    std::int64_t batch_ = 0;
};

// The batch means of a VaeLoss's last forward, in double.
struct VaeLossMeans {
    double total = 0, reconstruction = 0, kl = 0;  // total = reconstruction + kl_weight * kl
};

// The per-sample terms of `loss`'s last forward copied to the host and averaged over the
// batch (a Trainer reads many steps' terms at once instead, ewe/train/trainer.hpp).
template <class T>
VaeLossMeans batch_means(const VaeLoss<T>& loss) {
    const Tensor<T> recon = Tensor<T>::copy_of(loss.per_sample_reconstruction(), Device::cpu);
    const Tensor<T> kl = Tensor<T>::copy_of(loss.per_sample_kl(), Device::cpu);
    VaeLossMeans m;
    const std::int64_t n = recon.numel();
    EWE_REQUIRE(n > 0, "batch_means: the loss has no forward pass to average");
    for (std::int64_t i = 0; i < n; ++i) {
        m.reconstruction += double(recon[i]);
        m.kl += double(kl[i]);
    }
    m.reconstruction /= double(n);
    m.kl /= double(n);
    m.total = m.reconstruction + loss.kl_weight() * m.kl;
    return m;
}

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::VaeLoss<float>;
#endif
