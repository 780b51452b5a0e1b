#include "evformer/models/trainer.hpp"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"

#ifndef EVFORMER_VERSION_STRING
#define EVFORMER_VERSION_STRING "0.1.0"
#endif

namespace evformer::models {
namespace {

using nlohmann::json;

// SplitMix64: a well-mixed 64-bit hash for per-(seed, epoch, index) random streams.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

std::string utc_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

bool trainable(ParameterInfo::Kind k) {
    using K = ParameterInfo::Kind;
    return k == K::weight || k == K::bias || k == K::bn_weight || k == K::bn_bias;
}

constexpr const char* kCheckpointFormat = "evformer-checkpoint";
constexpr std::int64_t kCheckpointVersion = 1;

// AdamW state for every trainable tensor.
struct Adam {
    std::map<std::string, std::vector<float>> m, v;
    std::size_t step = 0;  // global optimizer steps taken
};

void save_checkpoint(const std::filesystem::path& path, const DenseSpikformer& net,
                     const Adam& adam, const TrainConfig& config, std::size_t epochs_done) {
    io::h5::Writer w(path);
    w.attr("/", "format", std::string(kCheckpointFormat));
    w.attr("/", "format_version", kCheckpointVersion);
    w.attr("/", "spec", net.spec().to_json());
    w.attr("/", "config", config.to_json());
    w.attr("/", "epochs_done", static_cast<std::int64_t>(epochs_done));
    w.attr("/", "step", static_cast<std::int64_t>(adam.step));
    for (const auto& p : parameter_layout(net.spec())) {
        const auto& t = net.weights().at(p.name);
        w.write<float>("model/" + p.name, t.data, t.shape);
        if (trainable(p.kind)) {
            w.write<float>("adam_m/" + p.name, adam.m.at(p.name), t.shape);
            w.write<float>("adam_v/" + p.name, adam.v.at(p.name), t.shape);
        }
    }
    w.commit();
}

// The epochs a checkpoint holds, checked: a whole number >= 0, else a FileError naming the field.
std::size_t checked_epochs_done(const io::h5::Reader& r, const std::string& file) {
    if (!r.has_attr("/", "epochs_done"))
        throw FileError(file, -1, "root attribute 'epochs_done' is missing");
    const auto done = r.attr_int("/", "epochs_done");
    if (done < 0)
        throw FileError(
            file, -1,
            fmt::format("root attribute 'epochs_done' is {}; expected a count >= 0", done));
    return static_cast<std::size_t>(done);
}

void check_checkpoint_format(const io::h5::Reader& r, const std::string& file) {
    if (!r.has_attr("/", "format") || r.attr_string("/", "format") != kCheckpointFormat)
        throw FileError(file, -1, "not an evformer checkpoint (root attribute 'format')");
    if (r.attr_int("/", "format_version") != kCheckpointVersion)
        throw FileError(file, -1,
                        fmt::format("checkpoint format version {}, expected {}",
                                    r.attr_int("/", "format_version"), kCheckpointVersion));
}

// Reads one tensor of a checkpoint, refusing non-finite values (and negative ones where
// `non_negative`), naming the dataset.
std::vector<float> read_finite(const io::h5::Reader& r, const std::string& file,
                               const std::string& name, const std::vector<std::size_t>& shape,
                               bool non_negative) {
    auto values = r.read<float>(name, shape);
    std::size_t bad = 0;
    for (float v : values) bad += !std::isfinite(v) || (non_negative && v < 0);
    if (bad)
        throw FileError(
            file, -1,
            fmt::format("tensor '{}' holds {} {} value(s) of {}; the checkpoint is "
                        "corrupt",
                        name, bad, non_negative ? "negative or non-finite" : "non-finite",
                        values.size()));
    return values;
}

// Every dataset path under `group` of a checkpoint.
void checkpoint_datasets(const io::h5::Reader& r, const std::string& group,
                         std::vector<std::string>& out) {
    for (const auto& name : r.list(group.empty() ? "/" : group)) {
        const std::string path = group.empty() ? name : group + "/" + name;
        if (r.is_dataset(path))
            out.push_back(path);
        else if (r.is_group(path))
            checkpoint_datasets(r, path, out);
    }
}

// Restores weights and optimizer state; returns the epochs already done. Strict: every field is
// checked and every dataset is either used or refused by name.
std::size_t load_checkpoint(const std::filesystem::path& path, DenseSpikformer& net, Adam& adam,
                            const TrainConfig& config) {
    io::h5::Reader r(path);
    const auto file = path.string();
    check_checkpoint_format(r, file);
    const auto spec = ModelSpec::from_json(r.attr_string("/", "spec"));
    if (!(spec == net.spec()))
        throw FileError(file, -1,
                        "the checkpoint's model spec differs from the configured one (resume "
                        "with the same settings)");
    const auto saved = TrainConfig::from_json(r.attr_string("/", "config"));
    if (saved.seed != config.seed || saved.batch != config.batch ||
        saved.limit_train != config.limit_train)
        throw FileError(file, -1,
                        "the checkpoint was made with another seed, batch or --limit-train; "
                        "resume with the same settings");
    const auto epochs_done = checked_epochs_done(r, file);
    const auto step = r.attr_int("/", "step");
    if (step < 0)
        throw FileError(file, -1,
                        fmt::format("root attribute 'step' is {}; expected a count >= 0", step));
    std::set<std::string> expected;
    for (const auto& p : parameter_layout(spec)) {
        expected.insert("model/" + p.name);
        if (trainable(p.kind)) {
            expected.insert("adam_m/" + p.name);
            expected.insert("adam_v/" + p.name);
        }
    }
    std::vector<std::string> present;
    checkpoint_datasets(r, "", present);
    for (const auto& name : present)
        if (!expected.count(name))
            throw FileError(file, -1,
                            fmt::format("unexpected tensor '{}' (not part of a checkpoint of this "
                                        "model spec)",
                                        name));
    auto& w = net.mutable_weights();
    for (const auto& p : parameter_layout(spec)) {
        if (!r.is_dataset("model/" + p.name))
            throw FileError(file, -1, fmt::format("tensor 'model/{}' is missing", p.name));
        // copy in place: the network holds pointers into these buffers
        const auto values =
            read_finite(r, file, "model/" + p.name, p.shape, p.kind == ParameterInfo::Kind::bn_var);
        if (trainable(p.kind)) {
            adam.m[p.name] = read_finite(r, file, "adam_m/" + p.name, p.shape, false);
            adam.v[p.name] = read_finite(r, file, "adam_v/" + p.name, p.shape, true);
        }
        std::copy(values.begin(), values.end(), w.at(p.name).data.begin());
    }
    adam.step = static_cast<std::size_t>(step);
    return epochs_done;
}

void adamw_step(DenseSpikformer& net, Adam& adam, const TrainConfig& c, double lr) {
    ++adam.step;
    const double bc1 = 1.0 - std::pow(c.beta1, double(adam.step));
    const double bc2 = 1.0 - std::pow(c.beta2, double(adam.step));
    const auto& grads = net.gradients();
    auto& weights = net.mutable_weights();
    for (const auto& p : parameter_layout(net.spec())) {
        if (!trainable(p.kind)) continue;
        const auto& g = grads.at(p.name).data;
        auto& param = weights.at(p.name).data;
        auto& m = adam.m[p.name];
        auto& v = adam.v[p.name];
        if (m.empty()) {
            m.assign(param.size(), 0.f);
            v.assign(param.size(), 0.f);
        }
        const float decay = p.kind == ParameterInfo::Kind::weight
                                ? static_cast<float>(1.0 - lr * c.weight_decay)
                                : 1.f;
        const float b1 = static_cast<float>(c.beta1), b2 = static_cast<float>(c.beta2);
        const float step = static_cast<float>(lr / bc1);
        const float inv_bc2 = static_cast<float>(1.0 / bc2);
        const float eps = static_cast<float>(c.adam_eps);
        for (std::size_t i = 0; i < param.size(); ++i) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            param[i] = param[i] * decay - step * m[i] / (std::sqrt(v[i] * inv_bc2) + eps);
        }
    }
}

}  // namespace

void TrainConfig::validate() const {
    auto fail = [](const std::string& m) { throw ConfigError("invalid training setting: " + m); };
    model.validate();
    if (epochs < 1) fail("epochs must be at least 1");
    if (batch < 1 || batch > 4096) fail(fmt::format("batch = {} must lie in [1, 4096]", batch));
    if (!(lr > 0) || !std::isfinite(lr)) fail("lr must be a finite number > 0");
    if (!(min_lr >= 0) || min_lr > lr) fail("min_lr must lie in [0, lr]");
    if (!(weight_decay >= 0)) fail("weight_decay must be >= 0");
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        fail("beta1 and beta2 must lie in [0, 1)");
    if (!(adam_eps > 0)) fail("adam_eps must be > 0");
    if (!(warmup_epochs >= 0) || warmup_epochs > double(epochs))
        fail(
            fmt::format("warmup_epochs = {} must lie in [0, epochs = {}] (with fewer --epochs than "
                        "a recipe's warm-up, give --warmup-epochs too)",
                        warmup_epochs, epochs));
    if (!(label_smoothing >= 0 && label_smoothing < 1)) fail("label_smoothing must lie in [0, 1)");
    if (crop_pad > 8) fail("crop_pad must be at most 8");
    if (eval_batch < 1) fail("eval_batch must be at least 1");
    if (out.empty()) fail("out (the weights file) must be set");
    if (split_by != "number" && split_by != "time" && split_by != "duration")
        fail(fmt::format("split_by = '{}' must be 'number', 'time' or 'duration'", split_by));
    if (split_by == "duration" && (dt_us < 1 || dt_us > (std::int64_t{1} << 40)))
        fail(
            fmt::format("split_by = 'duration' needs the bin length dt_us in [1, 2^40] us (--dt "
                        "US); got {}",
                        dt_us));
    if (split_by != "duration" && dt_us != 0)
        fail(fmt::format(
            "dt_us = {} is the bin length of split_by 'duration'; give both or neither", dt_us));
    if (!(event_drop >= 0 && event_drop < 1)) fail("event_drop must lie in [0, 1)");
    if (label != "fine" && label != "coarse")
        fail(fmt::format("label = '{}' must be 'fine' or 'coarse'", label));
}

std::string TrainConfig::to_json() const {
    json j;
    j["data"] = data;
    j["test_data"] = test_data;
    j["split_by"] = split_by;
    j["dt_us"] = dt_us;
    j["label"] = label;
    j["event_drop"] = event_drop;
    j["epochs"] = epochs;
    j["batch"] = batch;
    j["lr"] = lr;
    j["min_lr"] = min_lr;
    j["weight_decay"] = weight_decay;
    j["beta1"] = beta1;
    j["beta2"] = beta2;
    j["adam_eps"] = adam_eps;
    j["warmup_epochs"] = warmup_epochs;
    j["label_smoothing"] = label_smoothing;
    j["crop_pad"] = crop_pad;
    j["hflip"] = hflip;
    j["seed"] = seed;
    j["limit_train"] = limit_train;
    j["limit_test"] = limit_test;
    j["eval_batch"] = eval_batch;
    j["out"] = out.string();
    j["checkpoint"] = checkpoint.string();
    j["model"] = json::parse(model.to_json());
    return j.dump();
}

namespace {

// A count from JSON: a whole number >= 0, never a negative one wrapped round to 2^64 - n (other
// types fail in get() as a wrong type).
std::uint64_t json_count(const json& v, const std::string& key) {
    if (v.is_number() && !v.is_number_unsigned())
        throw ConfigError(fmt::format(
            "training config: key '{}' is {}; expected a whole number >= 0", key, v.dump()));
    return v.get<std::uint64_t>();
}

}  // namespace

TrainConfig TrainConfig::from_json(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw ConfigError(std::string("training config: not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw ConfigError("training config: expected a JSON object");
    TrainConfig c;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const auto& key = it.key();
        const auto& v = it.value();
        try {
            if (key == "data")
                c.data = v.get<std::string>();
            else if (key == "test_data")
                c.test_data = v.get<std::string>();
            else if (key == "split_by")
                c.split_by = v.get<std::string>();
            else if (key == "dt_us")
                c.dt_us = static_cast<std::int64_t>(
                    std::min<std::uint64_t>(json_count(v, key), std::uint64_t{1} << 62));
            else if (key == "label")
                c.label = v.get<std::string>();
            else if (key == "event_drop")
                c.event_drop = v.get<double>();
            else if (key == "epochs")
                c.epochs = json_count(v, key);
            else if (key == "batch")
                c.batch = json_count(v, key);
            else if (key == "lr")
                c.lr = v.get<double>();
            else if (key == "min_lr")
                c.min_lr = v.get<double>();
            else if (key == "weight_decay")
                c.weight_decay = v.get<double>();
            else if (key == "beta1")
                c.beta1 = v.get<double>();
            else if (key == "beta2")
                c.beta2 = v.get<double>();
            else if (key == "adam_eps")
                c.adam_eps = v.get<double>();
            else if (key == "warmup_epochs")
                c.warmup_epochs = v.get<double>();
            else if (key == "label_smoothing")
                c.label_smoothing = v.get<double>();
            else if (key == "crop_pad")
                c.crop_pad = json_count(v, key);
            else if (key == "hflip")
                c.hflip = v.get<bool>();
            else if (key == "seed")
                c.seed = json_count(v, key);
            else if (key == "limit_train")
                c.limit_train = json_count(v, key);
            else if (key == "limit_test")
                c.limit_test = json_count(v, key);
            else if (key == "eval_batch")
                c.eval_batch = json_count(v, key);
            else if (key == "out")
                c.out = v.get<std::string>();
            else if (key == "checkpoint")
                c.checkpoint = v.get<std::string>();
            else if (key == "model")
                c.model = ModelSpec::from_json(v.dump());
            else
                throw ConfigError(fmt::format("training config: unknown key '{}'", key));
        } catch (const json::exception& e) {
            throw ConfigError(
                fmt::format("training config: key '{}' has the wrong type ({})", key, e.what()));
        }
    }
    return c;
}

std::filesystem::path TrainConfig::checkpoint_path() const {
    if (!checkpoint.empty()) return checkpoint;
    auto p = out;
    p += ".ckpt";
    return p;
}

void images_to_float(const io::ImageDataset& data, std::size_t first, std::size_t count,
                     float* out) {
    const std::size_t plane = data.image_size();
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint8_t* src = data.image(first + i);
        for (std::size_t p = 0; p < plane; ++p)
            out[i * plane + p] = static_cast<float>(src[p]) / 255.f;
    }
}

io::SampleOptions sample_options(const ModelSpec& spec, const std::string& data,
                                 const std::string& split, const std::string& split_by,
                                 std::size_t limit, std::int64_t dt_us) {
    io::SampleOptions o;
    o.data = data;
    o.split = split;
    o.limit = limit;
    o.frames.frames = spec.time_steps;
    o.frames.out_width = static_cast<std::uint32_t>(spec.in_width);
    o.frames.out_height = static_cast<std::uint32_t>(spec.in_height);
    o.frames.crop_x = spec.input_crop[0];
    o.frames.crop_y = spec.input_crop[1];
    o.frames.crop_width = spec.input_crop[2];
    o.frames.crop_height = spec.input_crop[3];
    if (split_by == "number")
        o.frames.split_by = io::SplitBy::number;
    else if (split_by == "time")
        o.frames.split_by = io::SplitBy::time;
    else if (split_by == "duration")
        o.frames.split_by = io::SplitBy::duration;
    else
        throw ConfigError(
            fmt::format("split-by '{}': expected 'number', 'time' or 'duration'", split_by));
    o.frames.dt_us = dt_us;
    return o;
}

void check_samples_fit(const ModelSpec& spec, const io::SampleSource& samples,
                       const std::string& what) {
    const auto s = samples.shape();
    if (s.channels != spec.in_channels || s.height != spec.in_height || s.width != spec.in_width)
        throw ConfigError(fmt::format(
            "{}: the model expects inputs of {}x{}x{} (channels x height x width) but the data "
            "has {}x{}x{}",
            what, spec.in_channels, spec.in_height, spec.in_width, s.channels, s.height, s.width));
    if (s.frames != 0 && s.frames != spec.time_steps)
        throw ConfigError(fmt::format("{}: the model runs T = {} steps but the data has {} frames",
                                      what, spec.time_steps, s.frames));
    if (samples.classes() > spec.classes)
        throw ConfigError(fmt::format("{}: the model has {} classes but the data has {}", what,
                                      spec.classes, samples.classes()));
}

InputLayout input_layout(const io::SampleSource& samples) {
    return samples.encoding() == io::SampleEncoding::static_image ? InputLayout::static_image
                                                                  : InputLayout::event_frames;
}

EvalResult evaluate(DenseSpikformer& net, const io::SampleSource& samples, std::size_t limit,
                    std::size_t batch) {
    const auto& spec = net.spec();
    check_samples_fit(spec, samples, "evaluate");
    const std::size_t n = limit == 0 ? samples.size() : std::min(limit, samples.size());
    const std::size_t plane = samples.dense_size();
    const auto layout = input_layout(samples);
    EvalResult r;
    r.samples = n;
    std::vector<std::size_t> right(spec.classes, 0), total(spec.classes, 0);
    std::vector<float> x(batch * plane);
    std::size_t correct = 0;
    for (std::size_t b0 = 0; b0 < n; b0 += batch) {
        const std::size_t bn = std::min(batch, n - b0);
        tbb::parallel_for(std::size_t{0}, bn,
                          [&](std::size_t i) { samples.dense(b0 + i, x.data() + i * plane); });
        const auto logits = net.forward_eval(x.data(), bn, nullptr, layout, &r.counts);
        for (std::size_t i = 0; i < bn; ++i) {
            const float* l = logits.data() + i * spec.classes;
            const auto arg = static_cast<std::size_t>(std::max_element(l, l + spec.classes) - l);
            const std::size_t label = samples.label(b0 + i);
            r.nonfinite_samples +=
                std::any_of(l, l + spec.classes, [](float v) { return !std::isfinite(v); });
            if (label < spec.classes) {
                ++total[label];
                if (arg == label) {
                    ++right[label];
                    ++correct;
                }
            }
        }
    }
    r.accuracy = n ? double(correct) / double(n) : 0;
    for (std::size_t c = 0; c < spec.classes; ++c)
        r.per_class.push_back(total[c] ? double(right[c]) / double(total[c]) : 0);
    r.per_class_samples = total;
    return r;
}

double learning_rate(const TrainConfig& c, std::size_t step, std::size_t steps_per_epoch) {
    const double total = double(c.epochs * steps_per_epoch);
    const double warm = c.warmup_epochs * double(steps_per_epoch);
    const double s = double(step);
    // Step s trains at the rate reached at its end, capped at lr: with a fractional warm-up the
    // last warm-up step would otherwise run above lr (3.3x with 0.3 steps). The cap also makes
    // the joint continuous, since the cosine starts at lr.
    if (s < warm) return c.lr * std::min(1.0, (s + 1) / warm);
    const double progress = total > warm ? std::min(1.0, (s - warm) / (total - warm)) : 1.0;
    return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + std::cos(M_PI * progress));
}

namespace {

// Moves every plane by (dy, dx) (source pixel = destination + offset), mirrored first when
// `flip`; pixels from outside are zero.
void shift_planes(float* image, std::size_t planes, std::size_t h, std::size_t w, long dy, long dx,
                  bool flip) {
    if (dy == 0 && dx == 0 && !flip) return;
    std::vector<float> src(image, image + planes * h * w);
    const long hh = static_cast<long>(h), ww = static_cast<long>(w);
    for (std::size_t ch = 0; ch < planes; ++ch)
        for (long y = 0; y < hh; ++y)
            for (long x = 0; x < ww; ++x) {
                const long sy = y + dy;
                long sx = x + dx;
                if (flip) sx = ww - 1 - sx;
                float v = 0.f;
                if (sy >= 0 && sy < hh && sx >= 0 && sx < ww)
                    v = src[(ch * h + static_cast<std::size_t>(sy)) * w +
                            static_cast<std::size_t>(sx)];
                image[(ch * h + static_cast<std::size_t>(y)) * w + static_cast<std::size_t>(x)] = v;
            }
}

// The random translation of one sample and the state of its random stream after it, derived
// from (seed, epoch, index) only.
struct Translation {
    long dy = 0, dx = 0;
    std::uint64_t next = 0;
};

Translation random_translation(const TrainConfig& c, std::size_t epoch, std::size_t index) {
    std::uint64_t r = mix(mix(c.seed ^ 0x5bd1e995ULL) + mix(epoch) * 31 + index);
    const auto pad = static_cast<long>(c.crop_pad);
    Translation t;
    t.dy = pad ? static_cast<long>(r % (2 * c.crop_pad + 1)) - pad : 0;
    r = mix(r);
    t.dx = pad ? static_cast<long>(r % (2 * c.crop_pad + 1)) - pad : 0;
    t.next = mix(r);
    return t;
}

}  // namespace

void augment(float* image, std::size_t channels, std::size_t h, std::size_t w, const TrainConfig& c,
             std::size_t epoch, std::size_t index) {
    const auto t = random_translation(c, epoch, index);
    const bool flip = c.hflip && (t.next & 1);
    shift_planes(image, channels, h, w, t.dy, t.dx, flip);
}

void augment_events(float* frames, std::size_t planes, std::size_t h, std::size_t w,
                    const TrainConfig& c, std::size_t epoch, std::size_t index) {
    const auto t = random_translation(c, epoch, index);
    if (c.event_drop > 0) {
        // one uniform draw per event from a SplitMix64 stream: the same on every machine
        const double keep = 1.0 - c.event_drop;
        std::uint64_t state = mix(t.next ^ 0x2545f4914f6cdd1dULL);
        for (std::size_t i = 0; i < planes * h * w; ++i) {
            const auto n = static_cast<std::uint32_t>(frames[i]);
            std::uint32_t kept = 0;
            for (std::uint32_t e = 0; e < n; ++e) {
                state = mix(state);
                kept += double(state >> 11) * 0x1.0p-53 < keep ? 1 : 0;
            }
            frames[i] = static_cast<float>(kept);
        }
    }
    shift_planes(frames, planes, h, w, t.dy, t.dx, false);
}

std::size_t checkpoint_epochs(const std::filesystem::path& path) {
    io::h5::Reader r(path);
    check_checkpoint_format(r, path.string());
    return checked_epochs_done(r, path.string());
}

TrainSummary train(const TrainConfig& config, bool resume, const std::string& command,
                   const std::function<void(const Progress&)>& on_progress) {
    config.validate();
    ModelSpec spec = config.model;
    auto train_options = sample_options(spec, config.data, "train", config.split_by,
                                        config.limit_train, config.dt_us);
    auto test_options =
        sample_options(spec, config.test_data.empty() ? config.data : config.test_data, "test",
                       config.split_by, 0, config.dt_us);
    train_options.label = test_options.label = io::parse_cifar_label(config.label);
    const auto train_set = io::open_samples(train_options);
    if (config.test_data.empty() && !train_set->split_given())
        throw ConfigError(fmt::format(
            "{} holds one split only (a labels.txt folder); pass the test folder (--test-data)",
            config.data));
    const auto test_set = io::open_samples(test_options);
    check_samples_fit(spec, *train_set, "training data");
    check_samples_fit(spec, *test_set, "test data");
    if (train_set->encoding() != test_set->encoding())
        throw ConfigError("the training and test data must both be images or both be events");
    const bool events = train_set->encoding() == io::SampleEncoding::event_frames;
    if (events) {  // the weights remember how recordings were binned (run, eval, stream serve)
        spec.input_split_by = config.split_by;
        spec.input_dt_us = config.dt_us;
    }
    const auto layout = input_layout(*train_set);
    const std::size_t n_train = train_set->size();
    const std::size_t steps_per_epoch = n_train / config.batch;
    if (steps_per_epoch == 0)
        throw ConfigError(
            fmt::format("batch = {} is larger than the {} training images", config.batch, n_train));
    DenseSpikformer net(init_weights(spec, config.seed));
    Adam adam;
    std::size_t first_epoch = 0;
    if (resume) {
        const auto ck = config.checkpoint_path();
        if (!std::filesystem::exists(ck))
            throw FileError(ck.string(), -1, "no checkpoint to resume from");
        first_epoch = load_checkpoint(ck, net, adam, config);
    }
    const std::size_t plane = train_set->dense_size();
    std::vector<float> x(config.batch * plane);
    std::vector<int> labels(config.batch);
    TrainSummary summary;
    summary.epochs = first_epoch;  // a finished run resumed trains nothing
    const auto t_start = std::chrono::steady_clock::now();
    std::size_t samples_done = 0;
    for (std::size_t epoch = first_epoch; epoch < config.epochs; ++epoch) {
        std::vector<std::size_t> order(n_train);
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::mt19937_64 shuffle_rng(mix(config.seed) ^ mix(epoch + 1));
        std::shuffle(order.begin(), order.end(), shuffle_rng);
        double loss_sum = 0;
        std::size_t correct = 0, seen = 0;
        const auto t_epoch = std::chrono::steady_clock::now();
        for (std::size_t step = 0; step < steps_per_epoch; ++step) {
            tbb::parallel_for(std::size_t{0}, config.batch, [&](std::size_t i) {
                const std::size_t idx = order[step * config.batch + i];
                float* xi = x.data() + i * plane;
                train_set->dense(idx, xi);
                if (events)
                    augment_events(xi, spec.time_steps * spec.in_channels, spec.in_height,
                                   spec.in_width, config, epoch, idx);
                else
                    augment(xi, spec.in_channels, spec.in_height, spec.in_width, config, epoch,
                            idx);
                labels[i] = static_cast<int>(train_set->label(idx));
            });
            const double lr = learning_rate(config, adam.step, steps_per_epoch);
            TrainOptions opt;
            opt.label_smoothing = config.label_smoothing;
            const auto r = net.train_step(x.data(), labels.data(), config.batch, opt, layout);
            if (!std::isfinite(r.loss))
                throw Error(fmt::format("training diverged at epoch {} step {} (loss {})",
                                        epoch + 1, step + 1, r.loss));
            adamw_step(net, adam, config, lr);
            loss_sum += r.loss * double(config.batch);
            correct += r.correct;
            seen += config.batch;
            samples_done += config.batch;
            if (on_progress) {
                const double el =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch)
                        .count();
                Progress p;
                p.epoch = epoch + 1;
                p.epochs = config.epochs;
                p.step = step + 1;
                p.steps = steps_per_epoch;
                p.loss = loss_sum / double(seen);
                p.accuracy = double(correct) / double(seen);
                p.samples_per_s = double(seen) / std::max(el, 1e-9);
                const double left = double((config.epochs - epoch) * steps_per_epoch - (step + 1)) *
                                    double(config.batch);
                // test evaluation costs about a third of a training epoch's samples
                p.eta_s = left / std::max(p.samples_per_s, 1e-9) * 1.1;
                p.lr = lr;
                on_progress(p);
            }
        }
        // the last epoch is always evaluated on the whole test set (the provenance accuracy)
        const bool last = epoch + 1 == config.epochs;
        const auto test = evaluate(net, *test_set, last ? 0 : config.limit_test, config.eval_batch);
        summary.epochs = epoch + 1;
        summary.test_accuracy = test.accuracy;
        summary.train_accuracy = double(correct) / double(seen);
        summary.final_loss = loss_sum / double(seen);
        // weights first, then the checkpoint: a crash in between resumes this epoch's weights
        ModelWeights out = net.weights();
        out.provenance.dataset = config.data;
        out.provenance.epochs = epoch + 1;
        out.provenance.seed = config.seed;
        out.provenance.accuracy = test.accuracy;
        out.provenance.command = command;
        out.provenance.created = utc_now();
        out.provenance.tool_version = EVFORMER_VERSION_STRING;
        if (config.out.has_parent_path())
            std::filesystem::create_directories(config.out.parent_path());
        save_weights(out, config.out);
        save_checkpoint(config.checkpoint_path(), net, adam, config, epoch + 1);
        if (on_progress) {
            Progress p;
            p.epoch = epoch + 1;
            p.epochs = config.epochs;
            p.step = p.steps = steps_per_epoch;
            p.loss = summary.final_loss;
            p.accuracy = summary.train_accuracy;
            p.epoch_end = true;
            p.test = &test;
            p.samples_per_s =
                double(seen) /
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
            on_progress(p);
        }
    }
    summary.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    (void)samples_done;
    return summary;
}

}  // namespace evformer::models
