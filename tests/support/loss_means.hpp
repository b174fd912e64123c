// loss_means(loss): the batch means of a VaeLoss's last forward, read back to the host
// from its per-sample terms (the one way loss numbers leave the device, as the Trainer
// reads them), for tests that take single steps without a Trainer.
#pragma once

#include <cstdint>

#include <ewe/loss/vae_loss.hpp>

namespace ewe_test {

struct LossMeans {
    double total = 0, reconstruction = 0, kl = 0;
};

template <class T>
LossMeans loss_means(const ewe::VaeLoss<T>& loss) {
    const ewe::Tensor<T> recon = ewe::Tensor<T>::copy_of(loss.per_sample_reconstruction(), ewe::Device::cpu);
    const ewe::Tensor<T> kl = ewe::Tensor<T>::copy_of(loss.per_sample_kl(), ewe::Device::cpu);
    LossMeans m;
    const std::int64_t n = recon.numel();
    for (std::int64_t i = 0; i < n; ++i) {
        m.reconstruction += double(recon[i]);
        m.kl += double(kl[i]);
    }
    m.reconstruction /= double(n);
    m.kl /= double(n);
    m.total = m.reconstruction + loss.kl_weight() * m.kl;
    return m;
}

}  // namespace ewe_test
