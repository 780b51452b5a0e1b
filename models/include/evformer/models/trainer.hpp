// The offline trainer: AdamW with cosine schedule and warm-up, data augmentation, evaluation,
// atomic per-epoch checkpoints and exact resume. Deterministic for a given seed and thread count
// (the batch order and every augmentation are derived from the seed, the epoch and the index).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "evformer/io/idx.hpp"
#include "evformer/io/samples.hpp"
#include "evformer/models/network.hpp"

namespace evformer::models {

/// Every setting of a training run (also read from and written to JSON).
struct TrainConfig {
    /// Dataset: fashion-mnist, a folder of IDX files, a CIFAR-10 / CIFAR-100 binary folder, or an
    /// event dataset folder (any layout of io::open_event_dataset); its `train` split trains.
    std::string data = "fashion-mnist";
    /// Dataset whose `test` split is evaluated after every epoch (empty: the test split of
    /// `data`; required when `data` is a one-split folder such as a flat `labels.txt` folder).
    std::string test_data;
    /// Event data: how recordings are cut into the T frames: "number", "time", or "duration"
    /// (T bins of `dt_us` from each recording's first event, as `evformer stream serve` bins a
    /// live stream; io::SplitBy).
    std::string split_by = "number";
    /// Bin length in µs of split_by "duration" (≥ 1 there, 0 otherwise).
    std::int64_t dt_us = 0;
    /// CIFAR-100: the class is the "fine" label (100 classes) or the "coarse" one (20
    /// superclasses); other datasets take "fine" only.
    std::string label = "fine";
    /// Event data: probability that an event is dropped, drawn per epoch and sample (0 = off).
    double event_drop = 0.0;
    std::size_t epochs = 10;
    std::size_t batch = 64;
    double lr = 5e-3;            ///< peak learning rate
    double min_lr = 1e-5;        ///< end of the cosine decay
    double weight_decay = 0.03;  ///< decoupled (AdamW), on conv/linear weights only
    double beta1 = 0.9;
    double beta2 = 0.999;
    double adam_eps = 1e-8;
    double warmup_epochs = 0.3;  ///< linear warm-up length, in epochs
    double label_smoothing = 0.1;
    std::size_t crop_pad = 2;  ///< random crop with this zero padding (0 = off)
    bool hflip = true;         ///< random horizontal flip (static images only)
    std::uint64_t seed = 1;
    std::size_t limit_train = 0;  ///< use only the first N training images (0 = all)
    std::size_t limit_test =
        0;  ///< per-epoch test on the first N images (0 = all; last epoch: all)
    std::size_t eval_batch = 128;
    std::filesystem::path out = "model.h5";  ///< weights file written after every epoch
    std::filesystem::path checkpoint;        ///< default: `<out>.ckpt`
    ModelSpec model;

    /// Throws ConfigError naming the setting that breaks a rule.
    void validate() const;
    /// JSON of every setting (the model spec as the object "model").
    std::string to_json() const;
    /// Parses JSON; unknown keys and wrong types are ConfigErrors naming the key. Keys not
    /// present keep their default values.
    static TrainConfig from_json(const std::string& text);
    /// The checkpoint path in use.
    std::filesystem::path checkpoint_path() const;
};

/// Accuracy and firing rates of a model on a labelled set.
struct EvalResult {
    double accuracy = 0;
    std::size_t samples = 0;
    std::vector<double> per_class;  ///< accuracy per class (0 for a class with no samples)
    std::vector<std::size_t> per_class_samples;  ///< samples of each class evaluated
    std::size_t nonfinite_samples = 0;           ///< samples with a NaN or infinite logit
    FiringCounts counts;
};

/// Images of a dataset as floats in [0, 1] (pixel/255), `[count, channels, rows, cols]`: the
/// direct-encoding input.
void images_to_float(const io::ImageDataset& data, std::size_t first, std::size_t count,
                     float* out);

/// How a dataset is opened for a model: T frames, the crop window and the output size from the
/// spec (event data), the split rule from `split_by` ("number", "time", or "duration" with bins of
/// `dt_us` µs as live streams cut them; ConfigError otherwise).
io::SampleOptions sample_options(const ModelSpec& spec, const std::string& data,
                                 const std::string& split, const std::string& split_by = "number",
                                 std::size_t limit = 0, std::int64_t dt_us = 0);

/// Checks that `samples` fit the model (channels, height, width, T of event frames, classes);
/// throws ConfigError naming `what`, the model's shape and the data's.
void check_samples_fit(const ModelSpec& spec, const io::SampleSource& samples,
                       const std::string& what);

/// The dense network's layout for a source: static images or event frames.
InputLayout input_layout(const io::SampleSource& samples);

/// Evaluates on the first `limit` samples (0 = all) in batches (dense, evaluation mode); the
/// samples must fit the model (check_samples_fit).
EvalResult evaluate(DenseSpikformer& net, const io::SampleSource& samples, std::size_t limit = 0,
                    std::size_t batch = 128);

/// Progress of a run, reported after every step and at every epoch end.
struct Progress {
    std::size_t epoch = 0, epochs = 0;  ///< epoch is 1-based
    std::size_t step = 0, steps = 0;    ///< step within the epoch, 1-based
    double loss = 0;                    ///< running mean over the epoch
    double accuracy = 0;                ///< running train accuracy over the epoch
    double samples_per_s = 0;
    double eta_s = 0;  ///< estimated seconds to the end of the run
    double lr = 0;
    bool epoch_end = false;
    const EvalResult* test = nullptr;  ///< set at epoch end
};

/// What a finished run achieved.
struct TrainSummary {
    std::size_t epochs = 0;
    double test_accuracy = -1;
    double train_accuracy = 0;
    double final_loss = 0;
    double seconds = 0;
};

/// Learning rate at a global step: linear warm-up, then cosine decay to min_lr. Never above
/// `config.lr` and continuous where the warm-up meets the cosine, also for warm-ups of a
/// fractional number of steps.
double learning_rate(const TrainConfig& config, std::size_t step, std::size_t steps_per_epoch);

/// Augments one image (random crop with zero padding, horizontal flip) deterministically from
/// (seed, epoch, index); `image` is [channels, h, w] and is rewritten in place.
void augment(float* image, std::size_t channels, std::size_t h, std::size_t w,
             const TrainConfig& config, std::size_t epoch, std::size_t index);

/// Augments one event sample `[T, C, h, w]` of counts in place, deterministically from (seed,
/// epoch, index): every event is dropped with probability config.event_drop (each count n becomes
/// a Binomial(n, 1 − p) draw, the same law as dropping events one by one before binning), then
/// all T·C planes move by one random translation of at most crop_pad pixels with zero fill. No
/// flip: mirrored digits and gestures are other classes.
void augment_events(float* frames, std::size_t planes, std::size_t h, std::size_t w,
                    const TrainConfig& config, std::size_t epoch, std::size_t index);

/// The epochs a checkpoint file has finished (its root attribute `epochs_done`); throws
/// FileError naming the file and the field if it is not a checkpoint or the count is negative.
std::size_t checkpoint_epochs(const std::filesystem::path& path);

/// Runs (or, with resume, continues) a training run; writes the weights file and a checkpoint
/// after every epoch. `command` is stored in the provenance.
TrainSummary train(const TrainConfig& config, bool resume, const std::string& command,
                   const std::function<void(const Progress&)>& on_progress = {});

}  // namespace evformer::models
