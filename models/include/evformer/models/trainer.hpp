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
#include "evformer/models/network.hpp"

namespace evformer::models {

/// Every setting of a training run (also read from and written to JSON).
struct TrainConfig {
    std::string data = "fashion-mnist";  ///< dataset name or folder of IDX files
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
    bool hflip = true;         ///< random horizontal flip
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
    std::vector<double> per_class;  ///< accuracy per class
    FiringCounts counts;
};

/// Images of a dataset as floats in [0, 1] (pixel/255): the direct-encoding input.
void images_to_float(const io::ImageDataset& data, std::size_t first, std::size_t count,
                     float* out);

/// Evaluates on the first `limit` samples (0 = all) in batches.
EvalResult evaluate(DenseSpikformer& net, const io::ImageDataset& data, std::size_t limit = 0,
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

/// Learning rate at a global step: linear warm-up, then cosine decay to min_lr.
double learning_rate(const TrainConfig& config, std::size_t step, std::size_t steps_per_epoch);

/// Augments one image (random crop with zero padding, horizontal flip) deterministically from
/// (seed, epoch, index); `image` is [channels, h, w] and is rewritten in place.
void augment(float* image, std::size_t channels, std::size_t h, std::size_t w,
             const TrainConfig& config, std::size_t epoch, std::size_t index);

/// Runs (or, with resume, continues) a training run; writes the weights file and a checkpoint
/// after every epoch. `command` is stored in the provenance.
TrainSummary train(const TrainConfig& config, bool resume, const std::string& command,
                   const std::function<void(const Progress&)>& on_progress = {});

}  // namespace evformer::models
