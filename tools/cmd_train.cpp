// `evformer train`: trains a Spikformer offline with surrogate gradients (settings from flags
// and/or a JSON config file; flags win), with a progress bar, per-epoch test accuracy and firing
// rates, atomic per-epoch checkpoints and exact --resume.
#include <fmt/format.h>
#include <tbb/global_control.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/cifar.hpp"
#include "evformer/io/events_dataset.hpp"
#include "evformer/io/samples.hpp"
#include "evformer/models/presets.hpp"
#include "evformer/models/trainer.hpp"

namespace evformer::tools {
namespace {

struct TrainCli {
    std::string config_file;
    std::string model;  ///< preset name (--model)
    models::TrainConfig cfg;
    std::string out, checkpoint, variant, train_shift;
    std::size_t threads = 0;
    std::string input_size;
    std::string crop;
    std::string pool_after;
    bool resume = false;
    bool no_flip = false;
    CLI::App* app = nullptr;
};

std::string clock_text(double s) {
    const auto t = static_cast<long>(s);
    return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
                     : fmt::format("{:02}:{:02}", t / 60, t % 60);
}

void run_train(TrainCli& cli) {
    models::TrainConfig cfg;
    const bool preset = !cli.model.empty();
    if (!cli.config_file.empty()) {
        std::ifstream in(cli.config_file);
        if (!in) throw FileError(cli.config_file, -1, "cannot open the config file");
        std::stringstream ss;
        ss << in.rdbuf();
        cfg = models::TrainConfig::from_json(ss.str());
    } else if (preset) {
        cfg = models::preset_config(models::find_model_preset(cli.model));
    }
    // flags given on the command line override the file
    auto given = [&](const char* name) { return cli.app->count(name) > 0; };
    const auto& f = cli.cfg;
    if (given("--data")) cfg.data = f.data;
    if (given("--test-data")) cfg.test_data = f.test_data;
    if (given("--split-by")) cfg.split_by = f.split_by;
    if (given("--dt")) cfg.dt_us = f.dt_us;
    if (given("--label")) cfg.label = f.label;
    if (given("--event-drop")) cfg.event_drop = f.event_drop;
    if (given("--epochs")) cfg.epochs = f.epochs;
    if (given("--batch")) cfg.batch = f.batch;
    if (given("--lr")) cfg.lr = f.lr;
    if (given("--min-lr")) cfg.min_lr = f.min_lr;
    if (given("--weight-decay")) cfg.weight_decay = f.weight_decay;
    if (given("--warmup-epochs")) cfg.warmup_epochs = f.warmup_epochs;
    if (given("--label-smoothing")) cfg.label_smoothing = f.label_smoothing;
    if (given("--crop-pad")) cfg.crop_pad = f.crop_pad;
    if (cli.no_flip) cfg.hflip = false;
    if (given("--seed")) cfg.seed = f.seed;
    if (given("--limit-train")) cfg.limit_train = f.limit_train;
    if (given("--limit-test")) cfg.limit_test = f.limit_test;
    if (given("--eval-batch")) cfg.eval_batch = f.eval_batch;
    if (given("--out")) cfg.out = cli.out;
    if (given("--checkpoint")) cfg.checkpoint = cli.checkpoint;
    if (given("--variant"))
        cfg.model.attention.variant = models::parse_attention_variant(cli.variant);
    if (given("--train-shift"))
        cfg.model.attention.train_shift = models::parse_train_shift(cli.train_shift);
    if (given("--blocks")) cfg.model.blocks = f.model.blocks;
    if (given("--dim")) cfg.model.dim = f.model.dim;
    if (given("--heads")) cfg.model.heads = f.model.heads;
    if (given("--time-steps")) cfg.model.time_steps = f.model.time_steps;
    if (given("--lambda")) cfg.model.attention.lambda = f.model.attention.lambda;
    if (given("--scale")) cfg.model.attention.scale = f.model.attention.scale;
    if (const auto cifar = io::find_cifar(io::resolve_dataset_dir(cfg.data));
        cifar && cli.config_file.empty()) {
        // CIFAR: 3x32x32 colour images (a preset keeps its input) and the classes of the labels
        if (!preset) {
            cfg.model.in_channels = io::kCifarChannels;
            cfg.model.in_height = cfg.model.in_width = io::kCifarSide;
        }
        cfg.model.classes = io::cifar_classes(cifar->version, io::parse_cifar_label(cfg.label));
    }
    if (cli.config_file.empty() && !io::is_image_dataset(cfg.data)) {
        // Event data: two polarity channels at the sensor size (or --input-size), T = 16, and
        // as many classes as the dataset has; pooling after all four SPS stages for inputs
        // larger than 64 pixels (the Spikformer's 128x128 DVS setting: 8x8 tokens), else after
        // stages 2-4 (34x34 N-MNIST: 5x5 tokens). A preset keeps its input size (unless
        // --input-size), T and pooling, and takes the class count.
        const auto ds = io::open_event_dataset(io::resolve_dataset_dir(cfg.data));
        auto& m = cfg.model;
        if (!preset) {
            m.in_channels = 2;
            m.in_width = ds.sensor.width;
            m.in_height = ds.sensor.height;
        }
        if (!cli.crop.empty()) {
            unsigned v[4] = {};
            char c[3] = {};
            char extra = 0;
            if (std::sscanf(cli.crop.c_str(), "%u%c%u%c%u%c%u%c", &v[0], &c[0], &v[1], &c[1], &v[2],
                            &c[2], &v[3], &extra) != 7 ||
                c[0] != ',' || c[1] != ',' || c[2] != ',' || v[2] == 0 || v[3] == 0)
                throw ConfigError("--crop '" + cli.crop +
                                  "': expected X,Y,WIDTH,HEIGHT in sensor pixels, e.g. 0,0,64,64");
            m.input_crop = {v[0], v[1], v[2], v[3]};
            if (!preset) {
                m.in_width = v[2];
                m.in_height = v[3];
            }
        }
        if (!cli.input_size.empty()) {
            unsigned w = 0, h = 0;
            char x = 0, extra = 0;
            if (std::sscanf(cli.input_size.c_str(), "%u%c%u%c", &w, &x, &h, &extra) != 3 ||
                x != 'x' || w == 0 || h == 0)
                throw ConfigError("--input-size '" + cli.input_size +
                                  "': expected WxH, e.g. 64x64");
            m.in_width = w;
            m.in_height = h;
        }
        m.classes = ds.classes.size();
        if (!preset) {
            if (!given("--time-steps")) m.time_steps = 16;
            m.pool_after = {std::min(m.in_width, m.in_height) > 64, true, true, true};
        }
    }
    if (given("--pool-after")) {
        const auto& p = cli.pool_after;
        if (p.size() != 4 || p.find_first_not_of("01") != std::string::npos)
            throw ConfigError("--pool-after '" + p +
                              "': expected four 0/1 flags, one per SPS stage, e.g. 0011");
        for (std::size_t i = 0; i < 4; ++i) cfg.model.pool_after[i] = p[i] == '1';
    }
    cfg.validate();
    const std::vector<NamedPath> outputs{{"--out", cfg.out.string()},
                                         {"--checkpoint", cfg.checkpoint_path().string()}};
    check_distinct_files(
        {{"--config", cli.config_file},
         dataset_input(cfg.data),
         {"--test-data", cfg.test_data.empty() ? "" : dataset_input(cfg.test_data).path}},
        outputs);
    prepare_outputs(outputs);
    if (cli.resume && std::filesystem::exists(cfg.checkpoint_path())) {
        const auto done = models::checkpoint_epochs(cfg.checkpoint_path());
        if (done >= cfg.epochs) {
            fmt::print(
                "nothing to do: {} has finished {} of {} epochs; the weights are in {} (raise "
                "--epochs to train further)\n",
                cfg.checkpoint_path().string(), done, cfg.epochs, cfg.out.string());
            return;
        }
    }
    const auto limit = limit_threads(threads_to_use(cli.threads));
    const bool tty = ::isatty(STDERR_FILENO) != 0;
    auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
    // Event data's binning, when not the default (images ignore it).
    const std::string binning =
        cfg.split_by == "duration"
            ? fmt::format(" (recordings split by duration, dt {} us)", cfg.dt_us)
        : cfg.split_by == "time" ? std::string(" (recordings split by time)")
                                 : std::string();
    fmt::print(
        "training Spikformer-{}-{} ({} heads, T = {}, variant {}, {} parameters) on {}{}: {} "
        "epochs, batch {}, lr {}, wd {}, seed {}\n",
        cfg.model.blocks, cfg.model.dim, cfg.model.heads, cfg.model.time_steps,
        models::info(cfg.model.attention.variant).name,
        models::trainable_parameter_count(cfg.model), cfg.data, binning, cfg.epochs, cfg.batch,
        cfg.lr, cfg.weight_decay, cfg.seed);
    std::fflush(stdout);
    const auto summary =
        models::train(cfg, cli.resume, command_line(), [&](const models::Progress& p) {
            if (p.epoch_end) {
                if (tty) std::fprintf(stderr, "\n");
                std::string rates;
                for (std::size_t l = 0; l < cfg.model.blocks; ++l)
                    rates += fmt::format(" block{}: fr_attn {:.4f} fr_out {:.4f};", l,
                                         p.test->counts.fr_attn(l), p.test->counts.fr_out(l));
                fmt::print(
                    "epoch {}/{}: train loss {:.4f} acc {:.2f}%, test acc {:.2f}% ({} images), "
                    "{:.1f} samples/s;{}\n",
                    p.epoch, p.epochs, p.loss, 100 * p.accuracy, 100 * p.test->accuracy,
                    p.test->samples, p.samples_per_s, rates);
                std::fflush(stdout);
                return;
            }
            const auto now = std::chrono::steady_clock::now();
            const double since = std::chrono::duration<double>(now - last).count();
            if (since < (tty ? 0.5 : 30.0) && p.step != p.steps) return;
            last = now;
            const int width = 24;
            const int filled = static_cast<int>(double(width) * double(p.step) / double(p.steps));
            const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                                    std::string(static_cast<std::size_t>(width - filled), '.');
            const auto line = fmt::format(
                "epoch {}/{} [{}] step {}/{} loss {:.4f} acc {:.2f}% {:.1f} samples/s lr {:.2e} "
                "ETA {}",
                p.epoch, p.epochs, bar, p.step, p.steps, p.loss, 100 * p.accuracy, p.samples_per_s,
                p.lr, clock_text(p.eta_s));
            std::fprintf(stderr, tty ? "\r%s" : "%s\n", line.c_str());
            std::fflush(stderr);
        });
    fmt::print("done: {} epochs, test accuracy {:.2f}%, {} wall time; weights {}, checkpoint {}\n",
               summary.epochs, 100 * summary.test_accuracy, clock_text(summary.seconds),
               cfg.out.string(), cfg.checkpoint_path().string());
}

const RegisterCommand reg("train", [](CLI::App& app) {
    auto cli = std::make_shared<TrainCli>();
    auto* cmd = app.add_subcommand(
        "train",
        "Train a Spikformer with surrogate gradients (BPTT over T) on Fashion-MNIST or an event "
        "dataset");
    cli->app = cmd;
    auto& c = cli->cfg;
    auto* config = cmd->add_option("--config", cli->config_file,
                                   "JSON file with any training setting (keys as in "
                                   "docs/training.md); flags override it");
    cmd->add_option(
           "--model", cli->model,
           "Model preset with its recipe (docs/training.md): " + models::model_preset_names() +
               "; the classes come from the data, flags override the rest")
        ->excludes(config);
    cmd->add_option("--data", c.data,
                    "Dataset: fashion-mnist, a folder of IDX files, a CIFAR-10/100 binary folder, "
                    "or an event dataset folder (N-MNIST, labels.txt folder, CIFAR10-DVS, "
                    "N-Caltech101, DVS128 Gesture, HDF5 events)");
    cmd->add_option("--label", c.label,
                    "CIFAR-100: classes from the fine labels (100, default) or the coarse ones "
                    "(20 superclasses)")
        ->check(CLI::IsMember({"fine", "coarse"}));
    cmd->add_option("--test-data", c.test_data,
                    "Dataset whose test split is evaluated each epoch (default: that of --data; "
                    "needed for a one-split labels.txt folder)");
    cmd->add_option("--split-by", c.split_by,
                    "Event data: frames of equal event count (number, default), equal duration "
                    "(time), or T bins of --dt us from each recording's first event (duration: "
                    "the bins of `evformer stream serve`)")
        ->check(CLI::IsMember({"number", "time", "duration"}));
    cmd->add_option("--dt", c.dt_us, "Event data, --split-by duration: bin length in us")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    cmd->add_option("--event-drop", c.event_drop,
                    "Event data: probability of dropping each event in augmentation (default 0)");
    cmd->add_option("--crop", cli->crop,
                    "Event data: crop window X,Y,WIDTH,HEIGHT in sensor pixels, stored in the "
                    "model (default: the whole sensor)");
    cmd->add_option("--input-size", cli->input_size,
                    "Event data: frame size WxH the sensor (or crop) is down-sampled to (default: "
                    "the sensor or crop size)");
    cmd->add_option("--epochs", c.epochs, "Epochs")->check(count_in(1, 100000));
    cmd->add_option("--batch", c.batch, "Batch size")->check(count_in(1, 4096));
    cmd->add_option("--lr", c.lr, "Peak learning rate (AdamW)");
    cmd->add_option("--min-lr", c.min_lr, "Learning rate at the end of the cosine decay");
    cmd->add_option("--weight-decay", c.weight_decay, "Decoupled weight decay");
    cmd->add_option("--warmup-epochs", c.warmup_epochs, "Linear warm-up length in epochs");
    cmd->add_option("--label-smoothing", c.label_smoothing, "Label smoothing of the loss");
    cmd->add_option("--crop-pad", c.crop_pad, "Random crop padding in pixels (0 = off)")
        ->check(count_in(0, 8));
    cmd->add_flag("--no-flip", cli->no_flip, "No random horizontal flips");
    cmd->add_option("--seed", c.seed, "Random seed (initialisation, order, augmentation)")
        ->check(count_in(0, std::numeric_limits<std::uint64_t>::max()));
    cmd->add_option("--limit-train", c.limit_train, "Use the first N training images (0 = all)")
        ->check(count_in());
    cmd->add_option("--limit-test", c.limit_test, "Evaluate on the first N test images (0 = all)")
        ->check(count_in());
    cmd->add_option("--eval-batch", c.eval_batch, "Batch size of the per-epoch evaluation")
        ->check(count_in(1, 4096));
    cmd->add_option("--out,-o", cli->out, "Weights file written after every epoch (HDF5)");
    cmd->add_option("--checkpoint", cli->checkpoint, "Checkpoint file (default <out>.ckpt)");
    cmd->add_flag("--resume", cli->resume, "Continue from the checkpoint");
    cmd->add_option("--threads", cli->threads, "Worker threads (0 = all cores)")
        ->check(count_in(0, 4096));
    cmd->add_option("--variant", cli->variant,
                    "Attention variant: " + models::attention_variant_names());
    cmd->add_option("--train-shift", cli->train_shift,
                    "Shift subtracted in training: batch or running")
        ->check(CLI::IsMember({"batch", "running"}));
    cmd->add_option("--blocks", c.model.blocks, "Transformer blocks L")->check(count_in(1, 64));
    cmd->add_option("--dim", c.model.dim, "Embedding dimension D")->check(count_in(1, 4096));
    cmd->add_option("--heads", c.model.heads, "Attention heads H")->check(count_in(1, 256));
    cmd->add_option("--pool-after", cli->pool_after,
                    "Max-pool after SPS stages 1-4 as four 0/1 flags (images: 0011; event data: "
                    "0111, or 1111 above 64 pixels)");
    cmd->add_option("--time-steps", c.model.time_steps,
                    "Time steps T (default 4 for images, 16 for event data)")
        ->check(count_in(1, 256));
    cmd->add_option("--lambda", c.model.attention.lambda, "Δ = λ · running mean of C");
    cmd->add_option("--scale", c.model.attention.scale, "Attention scale s");
    cmd->callback([cli, &app] {
        (void)app;
        run_train(*cli);
    });
});

}  // namespace
}  // namespace evformer::tools
