// ewe::NcclCommunicator on one GPU, one rank (the unique id through a file): the
// weighted all-reduce, broadcast and barrier on CUDA buffers, host buffers refused, and
// ewe::Trainer over it trains as one process without a communicator does (one rank:
// every shard is the whole batch, its weight 1). Several ranks are owed on a machine
// with several GPUs.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <filesystem>

#include "ewe/dist/nccl.cuh"
#include "parity_util.cuh"

using namespace ewe;

namespace {

std::filesystem::path fresh_id_path(const char* name) {
    const std::filesystem::path path = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove(path);
    return path;
}

std::vector<float> host_values(TensorView<const float> t) {
    Tensor<float> host(t.shape());
    copy<float>(t, host.view());
    return std::vector<float>(host.data(), host.data() + host.numel());
}

}  // namespace

TEST_CASE("one rank: weighted all-reduce, broadcast, barrier; host buffers refused") {
    Context ctx(Device::cuda);
    const std::filesystem::path id_path = fresh_id_path("ewe_test_nccl_id");
    NcclCommunicator comm(ctx, nccl_unique_id_file(id_path, 0), 0, 1);
    CHECK(comm.rank() == 0);
    CHECK(comm.size() == 1);
    CHECK(comm.device() == Device::cuda);
    const Tensor<float> values = test::uniform(Shape{1000}, 3, -1, 1);
    Tensor<float> buffer = values.to(Device::cuda);
    comm.all_reduce(buffer.view(), 1.0);
    CHECK(host_values(buffer.view()) == host_values(values.view()));
    comm.all_reduce(buffer.view(), 0.5);
    const std::vector<float> halved = host_values(buffer.view());
    for (std::size_t i = 0; i < halved.size(); ++i) CHECK(halved[i] == values[std::int64_t(i)] * 0.5f);
    Tensor<double> doubles = Tensor<double>(Shape{3}).to(Device::cuda);
    comm.all_reduce(doubles.view(), 2.0);
    comm.broadcast(buffer.view(), 0);
    CHECK(host_values(buffer.view()) == halved);
    comm.barrier();
    Tensor<float> host(Shape{4});
    CHECK_THROWS_WITH(comm.all_reduce(host.view(), 1.0), doctest::Contains("NCCL reduces CUDA buffers"));
    CHECK_THROWS_WITH(comm.broadcast(buffer.view(), 1), doctest::Contains("root 1 is not a rank in [0, 1)"));
    std::filesystem::remove(id_path);
}

TEST_CASE("Trainer over a one-rank NCCL communicator trains as one process does") {
    ContextOptions deterministic;
    deterministic.deterministic = true;
    const std::int64_t batch = 8;
    const Tensor<float> images = test::uniform(Shape{20, 28, 28, 1}, 9, 0, 1);
    SheepVaeOptions model_options;
    model_options.filters = {4, 8};
    model_options.units = {16, 8};
    auto train = [&](bool with_communicator) {
        Context ctx(Device::cuda, deterministic);
        SheepVae<float> vae(ctx, model_options, batch, 5);
        VaeLoss<float> loss(ctx, VaeLossOptions{}, batch);
        Adam<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
        VaeObjective<float> objective(vae, loss);
        std::unique_ptr<NcclCommunicator> comm;
        if (with_communicator)
            comm = std::make_unique<NcclCommunicator>(ctx, nccl_unique_id_file(fresh_id_path("ewe_test_nccl_fit"), 0),
                                                      0, 1);
        FitOptions options;
        options.epochs = 2;
        options.batch_size = batch;
        options.metrics_every = 1;
        options.communicator = comm.get();
        Trainer<float> trainer(ctx, objective, optimizer, options);
        trainer.fit(images.view());
        return host_values(vae.params().values());
    };
    const std::vector<float> alone = train(false), over_nccl = train(true);
    REQUIRE(alone.size() == over_nccl.size());
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < alone.size(); ++i) {
        diff += (double(alone[i]) - over_nccl[i]) * (double(alone[i]) - over_nccl[i]);
        norm += double(alone[i]) * alone[i];
    }
    // Deterministic kernels on the same inputs; the alone run replays a CUDA graph, the
    // other runs eagerly (test_graph.cu's bound for that).
    CHECK(std::sqrt(diff / norm) <= 1e-6);
}

EWE_CUDA_TEST_MAIN
