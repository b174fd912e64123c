// The optimizers' element-wise update loop (cpu::Backend's sgd/rmsprop/adam_update):
// one pass over the parameters, their gradients and up to two state buffers, each
// element loaded, updated by the rule and stored once, in Eigen packets (AVX-512: 16
// floats). Every element goes through the same packet code, the last partial packet
// on a zero-padded copy, so an element's bits do not depend on where a range starts or
// ends (an update of one layer's slice gives the bits of the whole buffer's). The rules are written with the packet operations that
// Eigen's array expressions evaluate to (psqrt is Eigen's, a Newton step on rsqrt14
// under EIGEN_FAST_MATH), so full packets give the bits of those expressions.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

namespace ewe::cpu {

template <class T>
using UpdatePacket = typename Eigen::internal::packet_traits<T>::type;

// rule(p, g, a, b) updates the packets p (parameters), a and b (state; b unused where
// the rule has one state buffer, a too where it has none) from g (gradients), for the
// elements [0, count) of the buffers; a null state buffer is neither read nor written.
template <class T, class Rule>
void update_packets(std::int64_t count, T* params, const T* grads, T* a, T* b, const Rule& rule) {
    using P = UpdatePacket<T>;
    using Eigen::internal::ploadu;
    using Eigen::internal::pset1;
    using Eigen::internal::pstoreu;
    constexpr std::int64_t lanes = Eigen::internal::packet_traits<T>::size;
    const auto run = [&](T* p_at, const T* g_at, T* a_at, T* b_at) {
        P p = ploadu<P>(p_at), a_packet = a_at ? ploadu<P>(a_at) : pset1<P>(T(0));
        P b_packet = b_at ? ploadu<P>(b_at) : pset1<P>(T(0));
        rule(p, ploadu<P>(g_at), a_packet, b_packet);
        pstoreu(p_at, p);
        if (a_at) pstoreu(a_at, a_packet);
        if (b_at) pstoreu(b_at, b_packet);
    };
    std::int64_t i = 0;
    for (; i + lanes <= count; i += lanes) run(params + i, grads + i, a ? a + i : nullptr, b ? b + i : nullptr);
    const std::int64_t rest = count - i;
    if (rest == 0) return;
    T p_pad[lanes] = {}, g_pad[lanes] = {}, a_pad[lanes] = {}, b_pad[lanes] = {};
    std::copy_n(params + i, rest, p_pad);
    std::copy_n(grads + i, rest, g_pad);
    if (a) std::copy_n(a + i, rest, a_pad);
    if (b) std::copy_n(b + i, rest, b_pad);
    run(p_pad, g_pad, a ? a_pad : nullptr, b ? b_pad : nullptr);
    std::copy_n(p_pad, rest, params + i);
    if (a) std::copy_n(a_pad, rest, a + i);
    if (b) std::copy_n(b_pad, rest, b + i);
}

}  // namespace ewe::cpu
