// ewe::Communicator: what data-parallel training (ewe::Trainer with
// FitOptions::communicator) needs of a group of processes, one per rank: in-place
// weighted all-reduce of a flat buffer (sum, average, or a weighted mean such as the
// gradient of a batch split into unequal shards), broadcast from one rank, a barrier.
// Implementations: MpiCommunicator (ewe/dist/mpi.hpp, host buffers, Open MPI or any
// MPI) and NcclCommunicator (ewe/dist/nccl.cuh, CUDA buffers). Every rank must make the
// same calls in the same order with buffers of the same size; each call returns the
// same values on every rank. A collective that cannot finish (a rank died or is stuck)
// throws ewe::Error after the implementation's timeout instead of hanging.
#pragma once

#include "ewe/core/device.hpp"
#include "ewe/core/tensor.hpp"

namespace ewe {

class Communicator {
public:
    virtual ~Communicator() = default;

    virtual const char* kind() const = 0;  // "MPI", "NCCL"
    virtual int rank() const = 0;          // 0 .. size() - 1
    virtual int size() const = 0;
    // Where the buffers of the collectives must live (MPI: the host; NCCL: the GPU).
    virtual Device device() const = 0;

    // In place: buffer = the sum over ranks r of weight_r * buffer_r, where weight_r is
    // the `weight` rank r passed (1 on every rank: the sum; 1 / size(): the average).
    virtual void all_reduce(TensorView<float> buffer, double weight) = 0;
    virtual void all_reduce(TensorView<double> buffer, double weight) = 0;
    // Every rank's buffer becomes rank `root`'s.
    virtual void broadcast(TensorView<float> buffer, int root) = 0;
    virtual void broadcast(TensorView<double> buffer, int root) = 0;
    virtual void barrier() = 0;
};

}  // namespace ewe
