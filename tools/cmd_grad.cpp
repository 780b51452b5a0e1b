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
#include "evformer/models/builder.hpp"
#include "evformer/models/trainer.hpp"
#include "option_groups.hpp"

namespace evformer::tools {
namespace {

struct GradOptions {
    std::string model;
    DataOptions data = [] {
        DataOptions d;
        d.split = "train";
        return d;
    }();
    std::size_t first = 0;
    std::size_t batch = 16;
    double label_smoothing = 0.1;
    std::size_t threads = 0;
    std::string out;
};

void run_grad(const GradOptions& opt) {
    const std::vector<NamedPath> outputs{{"--out", opt.out}};
    const auto weights = models::load_weights(opt.model);
    const auto data_name = data_for(opt.data, weights.spec);
    check_distinct_files({{"model", opt.model}, dataset_input(data_name)}, outputs);
    prepare_outputs(outputs);
    const auto limit = limit_threads(threads_to_use(opt.threads));
    // only the samples of the batch are prepared (event recordings are decoded and binned)
    auto data_opt = opt.data;
    data_opt.limit = opt.first + opt.batch;
    const auto data = open_data(data_opt, weights.spec);
    models::check_samples_fit(weights.spec, *data, opt.model);
    if (opt.first >= data->size() || opt.batch > data->size() - opt.first)
        throw ConfigError(
            fmt::format("grad: samples [{}, {}) are outside the {} split ({} samples)", opt.first,
                        opt.first + opt.batch, opt.data.split, data->size()));
    const std::size_t per = data->dense_size();
    std::vector<float> x(opt.batch * per);
    std::vector<int> labels(opt.batch);
    for (std::size_t i = 0; i < opt.batch; ++i) {
        data->dense(opt.first + i, x.data() + i * per);
        labels[i] = static_cast<int>(data->label(opt.first + i));
    }
    models::DenseSpikformer net(weights);
    models::TrainOptions train;
    train.label_smoothing = opt.label_smoothing;
    train.update_running = false;
    const auto r =
        net.train_step(x.data(), labels.data(), opt.batch, train, models::input_layout(*data));
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
    w.attr("/", "data", data->describe());
    w.attr("/", "split", opt.data.split);
    w.attr("/", "first", static_cast<std::int64_t>(opt.first));
    w.attr("/", "batch", static_cast<std::int64_t>(opt.batch));
    w.attr("/", "label_smoothing", opt.label_smoothing);
    w.attr("/", "loss", r.loss);
    w.attr("/", "correct", static_cast<std::int64_t>(r.correct));
    for (const auto& [name, g] : net.gradients())
        w.write<float>(name, std::span<const float>(g.data), g.shape);
    w.commit();
    fmt::print("loss {:.6f} on {} {} samples from {}; {} gradients written to {}\n", r.loss,
               opt.batch, opt.data.split, opt.first, net.gradients().size(), opt.out);
}

const RegisterCommand reg("grad", [](CLI::App& app) {
    auto opt = std::make_shared<GradOptions>();
    auto* cmd = app.add_subcommand(
        "grad",
        "Loss and gradients of one training-mode batch (no augmentation), written to HDF5 "
        "by module path: for checking the backward pass against another framework");
    cmd->add_option("model", opt->model, "Weights file (HDF5)")->required();
    add_data_options(cmd, opt->data, "");
    cmd->add_option("--first", opt->first, "Index of the first sample of the batch")
        ->check(count_in());
    cmd->add_option("--batch", opt->batch, "Samples in the batch")->check(count_in(1, 4096));
    cmd->add_option("--label-smoothing", opt->label_smoothing, "Label smoothing of the loss")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--threads", opt->threads, "Worker threads (0 = all cores)")
        ->check(count_in(0, 4096));
    cmd->add_option("--out", opt->out, "Gradients file to write (HDF5)")->required();
    cmd->callback([opt] { run_grad(*opt); });
});

}  // namespace
}  // namespace evformer::tools
