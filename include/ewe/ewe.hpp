// ewe: header-only C++20 deep learning with one API on the CPU (Eigen) and on CUDA
// (cuDNN, cuBLASLt, hand-written kernels). Include this one header, from files
// compiled by the host compiler or by nvcc. Device::cuda loads the CUDA backend module
// libewe_cuda.so at run time (ewe/core/cuda_loader.hpp; the ewe::cuda CMake target builds
// it and puts it on the program's RUNPATH); files compiled by nvcc with EWE_WITH_CUDA
// also get the CUDA-only headers (ewe::cuda::StepGraph, the backend's resources).
// Header-only by default: every file that includes this header compiles the CPU backend
// (Eigen) and the float code of the layers, models and Trainer. Linking the
// ewe::compiled CMake target (which defines EWE_COMPILED_LIBRARY) takes that code from
// its library instead (src/*.cpp): such files include no Eigen and compile about 4x
// faster (docs/performance.md). To include less, include the headers below one by one:
// none of them but ewe/cpu/backend.hpp includes Eigen.
#pragma once

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/memory.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/core/step_replay.hpp"
#include "ewe/core/tensor.hpp"
#if !defined(EWE_COMPILED_LIBRARY)
#include "ewe/cpu/backend.hpp"
#endif
#include "ewe/io/checkpoint.hpp"
#include "ewe/io/npy.hpp"
#include "ewe/loss/vae_loss.hpp"
#include "ewe/models/model.hpp"
#include "ewe/models/sheep_vae.hpp"
#include "ewe/models/sheep_vae_checkpoint.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/models/vae_inference.hpp"
#include "ewe/nn/batchnorm.hpp"
#include "ewe/nn/conv2d.hpp"
#include "ewe/nn/dense.hpp"
#include "ewe/nn/elementwise.hpp"
#include "ewe/nn/layer.hpp"
#include "ewe/nn/parameters.hpp"
#include "ewe/nn/reparameterization.hpp"
#include "ewe/nn/sequential.hpp"
#include "ewe/nn/summary.hpp"
#include "ewe/ops/ops.hpp"
#include "ewe/optim/optimizers.hpp"
#include "ewe/train/callback.hpp"
#include "ewe/train/kl_annealing.hpp"
#include "ewe/train/latent_snapshots.hpp"
#include "ewe/train/loggers.hpp"
#include "ewe/train/model_checkpoint.hpp"
#include "ewe/train/objective.hpp"
#include "ewe/train/posterior_monitor.hpp"
#include "ewe/train/progress_bar.hpp"
#include "ewe/train/trainer.hpp"

#if defined(__CUDACC__) && defined(EWE_WITH_CUDA)
#include "ewe/cuda/graph.cuh"
#endif
