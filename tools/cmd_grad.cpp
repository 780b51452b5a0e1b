// `evformer grad MODEL.h5`: one training-mode forward and backward pass on a fixed batch (no
// augmentation, running statistics untouched), writing the loss and the gradient of every
// trainable tensor to HDF5 under the tensor's module path. This is the hook that checks the
// hand-written backward pass against another framework's autograd
// (scripts/bench/crosscheck_grads.py does it with the PyTorch reference).
#include <fmt/format.h>
#include <tbb/global_control.h>

#include <cmath>
#include <span>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/io/idx.hpp"
#include "evformer/models/builder.hpp"
#include "evformer/models/trainer.hpp"

namespace evformer::tools {
namespace {

struct GradOptions {
    std::string model;
    std::string data = "fashion-mnist";
    std::string split = "train";
    std::size_t first = 0;
    std::size_t batch = 16;
    double label_smoothing = 0.1;
    std::size_t threads = 0;
    std::string out;
};

void run_grad(const GradOptions& opt) {
    const std::vector<NamedPath> outputs{{"--out", opt.out}};
    check_distinct_files({{"model", opt.model}, dataset_input(opt.data)}, outputs);
    prepare_outputs(outputs);
    const auto limit = limit_threads(threads_to_use(opt.threads));
    const auto weights = models::load_weights(opt.model);
    const auto data = io::load_mnist_like(io::resolve_dataset_dir(opt.data), opt.split);
    models::check_model_fits(weights.spec, opt.model, 1, data.rows, data.cols, data.classes);
    if (opt.first >= data.count || opt.batch > data.count - opt.first)
        throw ConfigError(fmt::format("grad: images [{}, {}) are outside the {} split ({} images)",
                                      opt.first, opt.first + opt.batch, opt.split, data.count));
    std::vector<float> x(opt.batch * data.rows * data.cols);
    models::images_to_float(data, opt.first, opt.batch, x.data());
    std::vector<int> labels(opt.batch);
    for (std::size_t i = 0; i < opt.batch; ++i) labels[i] = data.labels[opt.first + i];
    models::DenseSpikformer net(weights);
    models::TrainOptions train;
    train.label_smoothing = opt.label_smoothing;
    train.update_running = false;
    const auto r = net.train_step(x.data(), labels.data(), opt.batch, train);
    std::size_t bad_values = 0;
    for (const auto& [name, g] : net.gradients())
        for (float v : g.data) bad_values += !std::isfinite(v);
    if (!std::isfinite(r.loss) || r.nonfinite_samples || bad_values)
        throw Error(fmt::format(
            "grad: {}: {} of {} samples gave NaN or infinite logits, the loss is {} and {} "
            "gradient values are not finite; no gradients written to {}",
            opt.model, r.nonfinite_samples, opt.batch, r.loss, bad_values, opt.out));

    io::h5::Writer w(opt.out);
    w.attr("/", "format", std::string("evformer-gradients"));
    w.attr("/", "format_version", std::int64_t{1});
    w.attr("/", "model", opt.model);
    w.attr("/", "spec", weights.spec.to_json());
    w.attr("/", "split", opt.split);
    w.attr("/", "first", static_cast<std::int64_t>(opt.first));
    w.attr("/", "batch", static_cast<std::int64_t>(opt.batch));
    w.attr("/", "label_smoothing", opt.label_smoothing);
    w.attr("/", "loss", r.loss);
    w.attr("/", "correct", static_cast<std::int64_t>(r.correct));
    for (const auto& [name, g] : net.gradients())
        w.write<float>(name, std::span<const float>(g.data), g.shape);
    w.commit();
    fmt::print("loss {:.6f} on {} {} images from {}; {} gradients written to {}\n", r.loss,
               opt.batch, opt.split, opt.first, net.gradients().size(), opt.out);
}

const RegisterCommand reg("grad", [](CLI::App& app) {
    auto opt = std::make_shared<GradOptions>();
    auto* cmd = app.add_subcommand(
        "grad",
        "Loss and gradients of one training-mode batch (no augmentation), written to HDF5 "
        "by module path: for checking the backward pass against another framework");
    cmd->add_option("model", opt->model, "Weights file (HDF5)")->required();
    cmd->add_option("--data", opt->data, "Dataset name (fashion-mnist) or folder of IDX files");
    cmd->add_option("--split", opt->split, "train or test")
        ->check(CLI::IsMember({"train", "test"}));
    cmd->add_option("--first", opt->first, "Index of the first image of the batch")
        ->check(count_in());
    cmd->add_option("--batch", opt->batch, "Images in the batch")->check(count_in(1, 4096));
    cmd->add_option("--label-smoothing", opt->label_smoothing, "Label smoothing of the loss")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)")
        ->check(count_in(0, 4096));
    cmd->add_option("--out", opt->out, "Gradients file to write (HDF5)")->required();
    cmd->callback([opt] { run_grad(*opt); });
});

}  // namespace
}  // namespace evformer::tools
