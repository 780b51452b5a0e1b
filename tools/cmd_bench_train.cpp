// `evformer bench train`: training throughput of the dense trainer (samples/s, ms/step, peak
// RSS) for a model spec at a batch size, and the GEMM against a naive triple loop on the same
// shapes in the same process.
#include <fmt/format.h>
#include <sys/resource.h>
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/models/kernels.hpp"
#include "evformer/models/network.hpp"

namespace evformer::tools {
namespace {

struct BenchTrainOptions {
    std::size_t batch = 64;
    std::size_t steps = 10;
    std::size_t warmup = 2;
    std::size_t threads = 0;
    std::string variant = "ssa-bin";
    std::string json;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// GFLOP/s of one gemm shape, blocked kernel and naive loop.
void bench_gemm(std::size_t m, std::size_t n, std::size_t k, const char* what) {
    std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
    auto run = [&](auto&& f) {
        std::size_t reps = 0;
        const auto t0 = std::chrono::steady_clock::now();
        do {
            f();
            ++reps;
        } while (seconds_since(t0) < 0.3);
        return 2.0 * double(m * n * k) * double(reps) / seconds_since(t0) / 1e9;
    };
    const double fast =
        run([&] { models::kernels::gemm(m, n, k, a.data(), k, b.data(), n, c.data(), n, false); });
    const double naive = run([&] {
        models::kernels::gemm_naive(m, n, k, a.data(), k, b.data(), n, c.data(), n, false);
    });
    fmt::print(
        "  gemm {:>4}x{:>4}x{:>4} ({:<22}) blocked {:7.1f} GFLOP/s, naive {:6.1f}, "
        "ratio {:5.1f}x\n",
        m, n, k, what, fast, naive, fast / naive);
}

void run_bench(const BenchTrainOptions& opt) {
    // with the JSON on stdout, the text report goes to stderr so stdout holds JSON only
    std::FILE* text = opt.json == "-" ? stderr : stdout;
    const std::vector<NamedPath> outputs{{"--json", opt.json}};
    check_distinct_files({}, outputs);
    prepare_outputs(outputs);
    const std::size_t requested = threads_to_use(opt.threads);
    const auto limit = limit_threads(requested);
    const std::size_t threads =
        requested > 0 ? requested : static_cast<std::size_t>(tbb::info::default_concurrency());
    models::ModelSpec spec;
    spec.attention.variant = models::parse_attention_variant(opt.variant);
    models::DenseSpikformer net(models::init_weights(spec, 1));
    const std::size_t plane = spec.in_channels * spec.in_height * spec.in_width;
    std::vector<float> x(opt.batch * plane);
    std::vector<int> labels(opt.batch);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (auto& v : x) v = u(rng);
    for (std::size_t i = 0; i < opt.batch; ++i) labels[i] = static_cast<int>(i % spec.classes);
    fmt::print(text,
               "bench train: Spikformer-{}-{} ({} heads, T = {}, {}x{}x{}, variant {}), batch {}, "
               "{} threads\n",
               spec.blocks, spec.dim, spec.heads, spec.time_steps, spec.in_channels, spec.in_height,
               spec.in_width, opt.variant, opt.batch, threads);
    for (std::size_t i = 0; i < opt.warmup; ++i) net.train_step(x.data(), labels.data(), opt.batch);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < opt.steps; ++i) net.train_step(x.data(), labels.data(), opt.batch);
    const double train_s = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < opt.steps; ++i) net.forward_eval(x.data(), opt.batch);
    const double eval_s = seconds_since(t1);
    const double sps = double(opt.steps * opt.batch) / train_s;
    fmt::print(text, "  train: {:.1f} samples/s, {:.1f} ms/step (forward + backward, {} steps)\n",
               sps, 1000.0 * train_s / double(opt.steps), opt.steps);
    fmt::print(text, "  eval:  {:.1f} samples/s, {:.1f} ms/batch\n",
               double(opt.steps * opt.batch) / eval_s, 1000.0 * eval_s / double(opt.steps));
    fmt::print(text,
               "  anchor: PyTorch 1.13 CPU (OpenBLAS) trains this model at ~80 samples/s "
               "(batch 64): ratio {:.2f}x\n",
               sps / 80.0);
    fmt::print(text, "  peak RSS: {:.0f} MiB\n", peak_rss_mib());
    if (!opt.json.empty()) {
        // one line, last on stdout, for scripts (scripts/bench/compare.sh)
        const nlohmann::json j{{"benchmark", "train"},
                               {"variant", opt.variant},
                               {"batch", opt.batch},
                               {"threads", threads},
                               {"steps", opt.steps},
                               {"samples_per_s", sps},
                               {"ms_per_step", 1000.0 * train_s / double(opt.steps)},
                               {"eval_samples_per_s", double(opt.steps * opt.batch) / eval_s},
                               {"peak_rss_mib", peak_rss_mib()}};
        write_text(opt.json, j.dump() + "\n");
        return;
    }
    fmt::print(text, "GEMM vs naive triple loop, one thread, shapes of this model:\n");
    bench_gemm(spec.dim / 2, spec.in_height * spec.in_width, spec.dim / 4 * 9, "conv2 forward");
    bench_gemm(96, spec.mlp_hidden(), spec.dim, "fc1 forward, row block");
    bench_gemm(spec.dim, spec.dim, 96 * 4, "linear weight gradient");
}

const RegisterCommand reg("bench.train", [](CLI::App& app) {
    auto opt = std::make_shared<BenchTrainOptions>();
    auto* cmd = bench_group(app)->add_subcommand(
        "train", "Training throughput (samples/s, ms/step, peak RSS) of the default model");
    cmd->add_option("--batch", opt->batch, "Batch size")->check(count_in(1, 4096));
    cmd->add_option("--steps", opt->steps, "Timed training steps")->check(count_in(1, 100000));
    cmd->add_option("--warmup", opt->warmup, "Untimed steps first")->check(count_in(0, 100000));
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)")
        ->check(count_in(0, 4096));
    cmd->add_option("--variant", opt->variant,
                    "Attention variant: " + models::attention_variant_names());
    cmd->add_option("--json", opt->json,
                    "Write the figures as one JSON line to FILE ('-' = stdout, the text then "
                    "goes to stderr) and skip the GEMM comparison");
    cmd->callback([opt] { run_bench(*opt); });
});

}  // namespace
}  // namespace evformer::tools
