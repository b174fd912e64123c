// The CPU backend's thread pool (ewe/cpu/thread_pool.hpp) and the work items the backend
// cuts its ops into: every item runs once, slots are never shared, exceptions reach the
// caller, nested and concurrent calls run, workers compute with the caller's
// flush-to-zero mode and sleep when idle; the parallel paths of dense layers and
// convolutions against references (float convolution backwards, direct filter gradient
// included, against double and bit-identical on 1 and 3 threads); and whole training
// steps bit-identical for 1, 2 and 3 threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <ewe/cpu/backend.hpp>  // the backend's internals (linking ewe::compiled leaves it out of ewe.hpp)
#include <ewe/ewe.hpp>

using namespace ewe;

namespace {

// Sets OpenMP's thread count, the default of contexts with threads = 0
// (cpu::default_thread_count), for one scope.
class ThreadsScope {
public:
    explicit ThreadsScope(int threads) : saved_(omp_get_max_threads()) { omp_set_num_threads(threads); }
    ~ThreadsScope() { omp_set_num_threads(saved_); }
    ThreadsScope(const ThreadsScope&) = delete;
    ThreadsScope& operator=(const ThreadsScope&) = delete;

private:
    int saved_;
};

double process_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

template <class T>
void fill_pattern(TensorView<T> t, int seed) {
    for (std::int64_t i = 0; i < t.numel(); ++i) t[i] = T(((i * 7919 + seed * 104729) % 2001) - 1000) / T(1000);
}

}  // namespace

TEST_CASE("parallel_for runs every item once, on distinct slots, for 1 to 4 threads") {
    for (int threads : {1, 2, 4}) {
        for (std::int64_t items : {0, 1, 3, 1000}) {
            std::vector<std::atomic<int>> runs(static_cast<std::size_t>(items));
            std::vector<std::atomic<int>> inside(static_cast<std::size_t>(threads));
            std::atomic<bool> shared_slot{false}, bad_slot{false};
            cpu::parallel_for(threads, items, [&](std::int64_t item, int slot) {
                if (slot < 0 || slot >= threads) {
                    bad_slot = true;
                    return;
                }
                if (inside[std::size_t(slot)].fetch_add(1) != 0) shared_slot = true;
                runs[std::size_t(item)].fetch_add(1);
                inside[std::size_t(slot)].fetch_sub(1);
            });
            INFO(threads << " threads, " << items << " items");
            CHECK_FALSE(bad_slot.load());
            CHECK_FALSE(shared_slot.load());
            int wrong = 0;
            for (auto& r : runs) wrong += r.load() != 1;
            CHECK(wrong == 0);
        }
    }
}

TEST_CASE("parallel_for: an item's exception reaches the caller, and the pool still works") {
    std::atomic<int> ran{0};
    CHECK_THROWS_WITH_AS(cpu::parallel_for(2, 200, [&](std::int64_t item, int) {
                             ran.fetch_add(1);
                             if (item == 17) throw std::runtime_error("item 17 failed");
                         }),
                         "item 17 failed", std::runtime_error);
    CHECK(ran.load() >= 18);
    std::atomic<std::int64_t> sum{0};
    cpu::parallel_for(2, 100, [&](std::int64_t item, int) { sum.fetch_add(item); });
    CHECK(sum.load() == 4950);
}

TEST_CASE("parallel_for: calls from inside an item and from two application threads all complete") {
    std::atomic<std::int64_t> nested{0};
    cpu::parallel_for(2, 8, [&](std::int64_t, int) {
        cpu::parallel_for(2, 10, [&](std::int64_t item, int slot) {
            CHECK(slot == 0);  // the pool is busy: the inner loop runs on the calling thread
            nested.fetch_add(item);
        });
    });
    CHECK(nested.load() == 8 * 45);

    std::atomic<std::int64_t> totals[2] = {0, 0};
    auto caller = [&](int which) {
        for (int round = 0; round < 200; ++round)
            cpu::parallel_for(2, 50, [&](std::int64_t item, int) { totals[which].fetch_add(item); });
    };
    std::thread a(caller, 0), b(caller, 1);
    a.join();
    b.join();
    CHECK(totals[0].load() == 200 * 1225);
    CHECK(totals[1].load() == 200 * 1225);
}

#if defined(__SSE2__)
TEST_CASE("parallel_for: every thread computes with the caller's flush-to-zero mode") {
    for (bool flush : {true, false, true}) {
        set_cpu_denormal_flushing(flush);
        const unsigned expected = _mm_getcsr() & ~0x3Fu;  // the control bits, not the exception flags
        std::atomic<int> different{0};
        cpu::parallel_for(2, 64, [&](std::int64_t, int) {
            if ((_mm_getcsr() & ~0x3Fu) != expected) different.fetch_add(1);
            std::this_thread::sleep_for(std::chrono::microseconds(200));  // let the worker take items too
        });
        INFO("flush " << flush);
        CHECK(different.load() == 0);
    }
}
#endif

TEST_CASE("an idle pool sleeps: its threads use no CPU time between calls") {
    std::atomic<std::int64_t> sum{0};
    cpu::parallel_for(2, 64, [&](std::int64_t item, int) { sum.fetch_add(item); });
    const double before = process_cpu_seconds();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const double used = process_cpu_seconds() - before;
    INFO("CPU time while idle for 300 ms: " << used * 1e3 << " ms (the spin before sleeping is "
                                             << cpu::ThreadPool::kSpin.count() << " us)");
    CHECK(used < 0.05);
}

TEST_CASE("dense layers: the parallel paths (cut along in, cut along out) against a direct computation") {
    ThreadsScope scope(2);
    Context ctx;
    struct Case {
        std::int64_t n, in, out;
    };
    for (const Case c : {Case{8, 4096, 12}, Case{8, 12, 4096}, Case{3, 3000, 101}, Case{5, 97, 3001}}) {
        Tensor<double> x(Shape{c.n, c.in}), w(Shape{c.in, c.out}), b(Shape{c.out}), y(Shape{c.n, c.out}),
            dy(Shape{c.n, c.out}), dpre(Shape{c.n, c.out}), dx(Shape{c.n, c.in}), dw(Shape{c.in, c.out}),
            db(Shape{c.out});
        fill_pattern(x.view(), 1);
        fill_pattern(w.view(), 2);
        fill_pattern(b.view(), 3);
        fill_pattern(dy.view(), 4);
        ops::dense_forward<double>(ctx, x.view(), w.view(), b.view(), Activation::relu, y.view());
        ops::dense_backward<double>(ctx, x.view(), w.view(), y.view(), dy.view(), Activation::relu, dpre.view(),
                                    dx.view(), dw.view(), db.view());
        std::vector<double> pre(std::size_t(c.n * c.out)), d(std::size_t(c.n * c.out));
        double worst = 0;
        auto compare = [&](double got, double want) { worst = std::max(worst, std::abs(got - want) / (1 + std::abs(want))); };
        for (std::int64_t r = 0; r < c.n; ++r)
            for (std::int64_t o = 0; o < c.out; ++o) {
                double acc = b[o];
                for (std::int64_t k = 0; k < c.in; ++k) acc += x[r * c.in + k] * w[k * c.out + o];
                const double want = std::max(acc, 0.0);
                compare(y[r * c.out + o], want);
                d[std::size_t(r * c.out + o)] = want > 0 ? dy[r * c.out + o] : 0.0;
            }
        for (std::int64_t o = 0; o < c.out; ++o) {
            double acc = 0;
            for (std::int64_t r = 0; r < c.n; ++r) acc += d[std::size_t(r * c.out + o)];
            compare(db[o], acc);
        }
        for (std::int64_t k = 0; k < c.in; ++k)
            for (std::int64_t o = 0; o < c.out; ++o) {
                double acc = 0;
                for (std::int64_t r = 0; r < c.n; ++r) acc += x[r * c.in + k] * d[std::size_t(r * c.out + o)];
                compare(dw[k * c.out + o], acc);
            }
        for (std::int64_t r = 0; r < c.n; ++r)
            for (std::int64_t k = 0; k < c.in; ++k) {
                double acc = 0;
                for (std::int64_t o = 0; o < c.out; ++o) acc += d[std::size_t(r * c.out + o)] * w[k * c.out + o];
                compare(dx[r * c.in + k], acc);
            }
        INFO("n " << c.n << ", in " << c.in << ", out " << c.out << ": worst relative difference " << worst);
        CHECK(worst < 1e-12);
    }
}

TEST_CASE("convolutions: a batch cut into groups of images equals the images one at a time") {
    ThreadsScope scope(2);
    Context ctx;
    for (bool transposed : {false, true}) {
        // 20 images in 16 groups: groups of one and of two images.
        ConvGeometry g;
        g.batch = 20;
        g.in_c = transposed ? 6 : 5;
        g.out_c = transposed ? 5 : 6;
        g.h = ConvAxis::forward(11, 3, 2, Padding::same);
        g.w = ConvAxis::forward(9, 3, 1, Padding::same);
        const Shape small = g.input_shape(), big = g.output_shape();
        Tensor<double> x(transposed ? big : small), w(g.filter_shape()), b(Shape{transposed ? g.in_c : g.out_c}),
            y(transposed ? small : big);
        Tensor<double> dy(y.shape()), dpre(y.shape()), dx(x.shape()), dw(w.shape()), db(b.shape());
        fill_pattern(x.view(), 5);
        fill_pattern(w.view(), 6);
        fill_pattern(b.view(), 7);
        fill_pattern(dy.view(), 8);
        auto forward = [&](const ConvGeometry& geo, TensorView<const double> xs, TensorView<double> ys) {
            if (transposed) ops::conv2d_transpose_forward<double>(ctx, geo, xs, w.view(), b.view(), Activation::relu, ys);
            else ops::conv2d_forward<double>(ctx, geo, xs, w.view(), b.view(), Activation::relu, ys);
        };
        auto backward = [&](const ConvGeometry& geo, TensorView<const double> xs, TensorView<const double> ys,
                            TensorView<const double> dys, TensorView<double> dpres, TensorView<double> dxs,
                            TensorView<double> dws, TensorView<double> dbs) {
            if (transposed)
                ops::conv2d_transpose_backward<double>(ctx, geo, xs, w.view(), ys, dys, Activation::relu, dpres, dxs, dws, dbs);
            else ops::conv2d_backward<double>(ctx, geo, xs, w.view(), ys, dys, Activation::relu, dpres, dxs, dws, dbs);
        };
        forward(g, x.view(), y.view());
        backward(g, x.view(), y.view(), dy.view(), dpre.view(), dx.view(), dw.view(), db.view());

        const ConvGeometry one = g.with_batch(1);
        Tensor<double> y1(y.shape().features().with_batch(1)), dpre1(y1.shape()), dx1(x.shape().features().with_batch(1)), dw1(w.shape()),
            db1(b.shape());
        std::vector<double> dw_sum(std::size_t(dw.numel()), 0.0), db_sum(std::size_t(db.numel()), 0.0);
        double worst_y = 0, worst_dx = 0;
        const std::int64_t xs = x.numel() / g.batch, ys = y.numel() / g.batch;
        for (std::int64_t n = 0; n < g.batch; ++n) {
            const TensorView<const double> xn = x.view().slice(n * xs, x.shape().features().with_batch(1));
            forward(one, xn, y1.view());
            backward(one, xn, y1.view(), dy.view().slice(n * ys, y1.shape()), dpre1.view(), dx1.view(), dw1.view(),
                     db1.view());
            for (std::int64_t i = 0; i < ys; ++i) worst_y = std::max(worst_y, std::abs(y1[i] - y[n * ys + i]));
            for (std::int64_t i = 0; i < xs; ++i) worst_dx = std::max(worst_dx, std::abs(dx1[i] - dx[n * xs + i]));
            for (std::int64_t i = 0; i < dw.numel(); ++i) dw_sum[std::size_t(i)] += dw1[i];
            for (std::int64_t i = 0; i < db.numel(); ++i) db_sum[std::size_t(i)] += db1[i];
        }
        double worst_dw = 0, worst_db = 0;
        for (std::int64_t i = 0; i < dw.numel(); ++i) worst_dw = std::max(worst_dw, std::abs(dw_sum[std::size_t(i)] - dw[i]));
        for (std::int64_t i = 0; i < db.numel(); ++i) worst_db = std::max(worst_db, std::abs(db_sum[std::size_t(i)] - db[i]));
        INFO((transposed ? "conv2d_transpose" : "conv2d") << ": y " << worst_y << ", dx " << worst_dx << ", dw "
                                                           << worst_dw << ", db " << worst_db);
        CHECK(worst_y < 1e-13);
        CHECK(worst_dx < 1e-12);
        CHECK(worst_dw < 1e-11);
        CHECK(worst_db < 1e-11);
    }
}

TEST_CASE("float convolution backwards (direct filter gradient, its image blocks) match double, the same bits on 1 and 3 threads") {
    struct Case {
        std::int64_t batch, size, in_c, out_c, kernel, stride;
        bool transposed;
    };
    // One input channel (1 -> 1 on the one-channel kernels, 1 -> 10), 40 and 80 output
    // channels (the direct filter gradient; 36x36x40 + 36x36x80 floats is over the 512 KB
    // of a block of images, so 3 blocks of one image), 20 (im2col), and transposed ones.
    for (const Case& t : {Case{3, 9, 1, 1, 3, 1, false}, Case{3, 10, 1, 10, 4, 1, false}, Case{2, 11, 3, 40, 3, 2, false},
                          Case{3, 36, 40, 80, 3, 1, false}, Case{2, 8, 10, 20, 4, 1, false},
                          Case{2, 9, 20, 80, 4, 2, true}, Case{2, 7, 40, 40, 3, 1, true}}) {
        CAPTURE(t.size);
        CAPTURE(t.in_c);
        CAPTURE(t.out_c);
        CAPTURE(t.transposed);
        ConvGeometry g;
        g.batch = t.batch;
        g.in_c = t.in_c;
        g.out_c = t.out_c;
        g.h = ConvAxis::forward(t.size, t.kernel, t.stride, Padding::same);
        g.w = ConvAxis::forward(t.size + 1, t.kernel, t.stride, Padding::same);
        // The transposed convolution's input is g's output side (and its output g's input).
        const Shape x_shape = t.transposed ? g.output_shape() : g.input_shape();
        const Shape y_shape = t.transposed ? g.input_shape() : g.output_shape();
        const auto run = [&]<class T>(T, int threads) {
            ContextOptions options;
            options.threads = threads;
            Context ctx(Device::cpu, options);
            Tensor<T> x(x_shape), w(g.filter_shape()), y(y_shape), dy(y_shape), dpre(y_shape), dx(x_shape),
                dw(g.filter_shape()), db(Shape{y_shape[3]});
            fill_pattern(x.view(), 1);
            fill_pattern(w.view(), 2);
            fill_pattern(y.view(), 3);  // positive where the ReLU passes the gradient
            fill_pattern(dy.view(), 4);
            for (std::int64_t i = 0; i < dw.numel(); ++i) dw[i] = std::numeric_limits<T>::quiet_NaN();
            if (t.transposed)
                ops::conv2d_transpose_backward<T>(ctx, g, x.view(), w.view(), y.view(), dy.view(), Activation::relu,
                                                  dpre.view(), dx.view(), dw.view(), db.view());
            else
                ops::conv2d_backward<T>(ctx, g, x.view(), w.view(), y.view(), dy.view(), Activation::relu, dpre.view(),
                                        dx.view(), dw.view(), db.view());
            return std::pair{std::vector<T>(dw.data(), dw.data() + dw.numel()),
                             std::vector<T>(dx.data(), dx.data() + dx.numel())};
        };
        const auto [dw_want, dx_want] = run(0.0, 1);
        const auto [dw_one, dx_one] = run(0.0f, 1);
        const auto [dw_three, dx_three] = run(0.0f, 3);
        double worst = 0, largest = 1e-30;
        for (std::size_t i = 0; i < dw_want.size(); ++i) {
            worst = std::max(worst, std::abs(double(dw_one[i]) - dw_want[i]));
            largest = std::max(largest, std::abs(dw_want[i]));
        }
        CHECK(std::all_of(dw_one.begin(), dw_one.end(), [](float v) { return std::isfinite(v); }));
        CHECK(worst / largest < 1e-5);
        CHECK(dw_one == dw_three);
        CHECK(dx_one == dx_three);
    }
}

TEST_CASE("training steps of the sheep VAE are bit-identical for 1, 2 and 3 threads") {
    // Width 0.5 keeps every parallel path of the seed model (dense layers cut along in and
    // along out, image groups, element-wise pieces) at a quarter of its cost.
    SheepVaeOptions model_options;
    model_options.width = 0.5;
    // The loss terms after each step as the trainer reads them (its one route out of the
    // loss): means over the epoch so far.
    struct StepLosses : Callback<float> {
        std::vector<double> losses;
        void on_batch_end(Trainer<float>&, const BatchLogs& logs) override {
            for (const auto& [name, value] : logs.running.values) losses.push_back(value);
        }
    };
    auto run = [&](int threads, std::int64_t batch) {
        ThreadsScope scope(threads);
        Context ctx;
        SheepVae<float> vae(ctx, model_options, batch, 7);
        VaeLoss<float> loss(ctx, VaeLossOptions{}, batch);
        Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
        Tensor<float> x(Shape{3 * batch, 28, 28, 1});  // three steps' batches
        for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float((i * 7919 + i / (batch * 784) * 31) % 256) / 255.0f;
        VaeObjective<float> objective(vae, loss);
        Trainer<float> trainer(ctx, objective, optimizer, {.epochs = 1, .batch_size = batch, .shuffle = false});
        const auto step_losses = std::make_shared<StepLosses>();
        trainer.add(step_losses);
        trainer.fit(x.view());
        const std::vector<double> losses = step_losses->losses;
        REQUIRE(losses.size() == 3 * 4);  // loss, recon, kl, kl_weight per step
        const TensorView<float> values = vae.params().values();
        std::vector<float> params(values.data(), values.data() + values.numel());
        return std::make_pair(losses, params);
    };
    for (std::int64_t batch : {std::int64_t(8), std::int64_t(20)}) {
        const auto one = run(1, batch);
        for (int threads : {2, 3}) {
            const auto many = run(threads, batch);
            INFO("batch " << batch << ", " << threads << " threads against 1");
            CHECK(many.first == one.first);
            CHECK(many.second == one.second);
        }
    }
}
