// `evformer data info PATH`: what an image dataset holds (IDX or CIFAR binary files).
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/cifar.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/io/idx.hpp"

namespace evformer::tools {
namespace {

struct DataInfoOptions {
    std::string path;
    std::string split = "all";
    std::string label = "fine";
    std::string export_path;
    std::string json;
};

// The shape of the per-class mean images: [classes, rows, cols] for grey images (as before
// colour datasets existed), [classes, channels, rows, cols] otherwise.
std::vector<std::size_t> means_shape(const io::ImageDataset& ds) {
    if (ds.channels == 1) return {ds.classes, ds.rows, ds.cols};
    return {ds.classes, ds.channels, ds.rows, ds.cols};
}

// Per-class mean images (pixel/255), one image of ds.image_size() values per class.
std::vector<float> class_means(const io::ImageDataset& ds) {
    const std::size_t pixels = ds.image_size();
    std::vector<double> sum(ds.classes * pixels, 0.0);
    std::vector<std::size_t> count(ds.classes, 0);
    for (std::size_t i = 0; i < ds.count; ++i) {
        const auto c = ds.labels[i];
        ++count[c];
        const auto* img = ds.image(i);
        for (std::size_t p = 0; p < pixels; ++p) sum[c * pixels + p] += img[p];
    }
    std::vector<float> mean(sum.size());
    for (std::size_t c = 0; c < ds.classes; ++c)
        for (std::size_t p = 0; p < pixels; ++p)
            mean[c * pixels + p] =
                count[c] ? static_cast<float>(sum[c * pixels + p] / (255.0 * double(count[c])))
                         : 0.f;
    return mean;
}

// Writes the statistics of each split to HDF5, then re-reads the file to check it.
void export_stats(const std::string& path, const std::vector<io::ImageDataset>& sets,
                  const nlohmann::json& described) {
    io::h5::Writer w(path);
    w.attr("/", "format", std::string("evformer-dataset-stats"));
    w.attr("/", "format_version", std::int64_t{1});
    std::vector<std::vector<float>> means;
    for (std::size_t i = 0; i < sets.size(); ++i) {
        const auto& ds = sets[i];
        const std::string g = "split" + std::to_string(i);
        std::vector<std::int64_t> per_class;
        for (const auto& c : described[i]["per_class"]) per_class.push_back(c.get<std::int64_t>());
        means.push_back(class_means(ds));
        w.write<float>(g + "/class_mean_image", means.back(), means_shape(ds));
        w.write<std::int64_t>(g + "/per_class", per_class, {ds.classes});
        w.attr(g, "name", ds.name);
        w.attr(g, "count", static_cast<std::int64_t>(ds.count));
        w.attr(g, "pixel_mean", described[i]["pixel_mean"].get<double>());
        w.attr(g, "pixel_std", described[i]["pixel_std"].get<double>());
    }
    w.commit();
    io::h5::Reader r(path);
    for (std::size_t i = 0; i < sets.size(); ++i) {
        const std::string g = "split" + std::to_string(i);
        const auto& ds = sets[i];
        if (r.read<float>(g + "/class_mean_image", means_shape(ds)) != means[i] ||
            r.attr_int(g, "count") != static_cast<std::int64_t>(ds.count))
            throw Error(path + ": re-read statistics differ from those written");
    }
}

nlohmann::json describe(const io::ImageDataset& ds) {
    std::vector<std::size_t> per_class(ds.classes, 0);
    for (auto l : ds.labels) ++per_class[l];
    double sum = 0, sum_sq = 0;
    std::uint8_t lo = 255, hi = 0;
    for (auto p : ds.pixels) {
        sum += p;
        sum_sq += double(p) * p;
        lo = std::min(lo, p);
        hi = std::max(hi, p);
    }
    const double n = static_cast<double>(ds.pixels.size());
    const double mean = sum / n;
    const double stddev = std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
    // per channel, as the normalisation constants of colour datasets are quoted
    const std::size_t plane = ds.rows * ds.cols;
    std::vector<double> channel_mean(ds.channels), channel_std(ds.channels);
    for (std::size_t c = 0; c < ds.channels; ++c) {
        double s = 0, s2 = 0;
        for (std::size_t i = 0; i < ds.count; ++i) {
            const std::uint8_t* px = ds.image(i) + c * plane;
            for (std::size_t p = 0; p < plane; ++p) {
                s += px[p];
                s2 += double(px[p]) * px[p];
            }
        }
        const double m = s / double(ds.count * plane);
        channel_mean[c] = m / 255.0;
        channel_std[c] = std::sqrt(std::max(0.0, s2 / double(ds.count * plane) - m * m)) / 255.0;
    }
    return {{"name", ds.name},
            {"count", ds.count},
            {"channels", ds.channels},
            {"shape", {ds.rows, ds.cols}},
            {"classes", ds.classes},
            {"per_class", per_class},
            {"pixel_min", lo},
            {"pixel_max", hi},
            {"pixel_mean", mean / 255.0},
            {"pixel_std", stddev / 255.0},
            {"channel_mean", channel_mean},
            {"channel_std", channel_std}};
}

void print(const nlohmann::json& d) {
    const auto channels = d["channels"].get<std::size_t>();
    fmt::print("{}: {} images of {}{}x{}, {} classes\n", d["name"].get<std::string>(),
               d["count"].get<std::size_t>(), channels == 1 ? "" : fmt::format("{}x", channels),
               d["shape"][0].get<std::size_t>(), d["shape"][1].get<std::size_t>(),
               d["classes"].get<std::size_t>());
    fmt::print("  per class:");
    for (const auto& c : d["per_class"]) fmt::print(" {}", c.get<std::size_t>());
    fmt::print("\n  pixels: min {} max {}, mean {:.4f} std {:.4f} (scaled to [0, 1])\n",
               d["pixel_min"].get<int>(), d["pixel_max"].get<int>(), d["pixel_mean"].get<double>(),
               d["pixel_std"].get<double>());
    if (channels > 1)
        fmt::print("  per channel: mean {:.4f}, std {:.4f}\n",
                   fmt::join(d["channel_mean"].get<std::vector<double>>(), " "),
                   fmt::join(d["channel_std"].get<std::vector<double>>(), " "));
}

void run_info(const DataInfoOptions& opt) {
    const std::vector<NamedPath> outputs{{"--json", opt.json}, {"--export", opt.export_path}};
    check_distinct_files({{"path", io::resolve_dataset_dir(opt.path).string()}}, outputs);
    prepare_outputs(outputs);
    const std::filesystem::path p = io::resolve_dataset_dir(opt.path);
    const auto label = io::parse_cifar_label(opt.label);
    nlohmann::json out = nlohmann::json::array();
    std::vector<io::ImageDataset> sets;
    const auto cifar = io::find_cifar(p);
    // one CIFAR file is known by its upstream name
    bool cifar_file = false;
    auto version = cifar ? cifar->version : io::CifarVersion::cifar10;
    if (!std::filesystem::is_directory(p))
        if (const auto v = io::cifar_file_version(p)) {
            cifar_file = true;
            version = *v;
        }
    if (label != io::CifarLabel::fine && version != io::CifarVersion::cifar100)
        throw ConfigError(
            fmt::format("--label {}: {} is not CIFAR-100 (coarse labels exist in "
                        "CIFAR-100 only)",
                        opt.label, p.string()));
    if (std::filesystem::is_directory(p)) {
        std::vector<std::string> splits;
        if (opt.split == "all")
            splits = {"train", "test"};
        else
            splits = {opt.split};
        for (const auto& s : splits)
            sets.push_back(cifar ? io::load_cifar(*cifar, s, label) : io::load_mnist_like(p, s));
    } else if (cifar_file) {
        sets.push_back(io::read_cifar_file(p, version, label));
    } else {
        // A single IDX file: an image file with its label file beside it, or any IDX array.
        auto name = p.filename().string();
        auto pos = name.find("-images-");
        if (pos == std::string::npos) {
            const auto arr = io::read_idx(p);
            nlohmann::json d{{"name", name}, {"dims", arr.dims}, {"bytes", arr.data.size()}};
            if (!opt.json.empty()) write_text(opt.json, d.dump(2) + "\n");
            if (opt.json != "-")
                fmt::print("{}: IDX array of dims {}, {} bytes\n", name, fmt::join(arr.dims, "x"),
                           arr.data.size());
            return;
        }
        auto labels = name;
        labels.replace(pos, 8, "-labels-");
        auto idx3 = labels.find("idx3");
        if (idx3 != std::string::npos) labels.replace(idx3, 4, "idx1");
        auto ds = io::read_idx_dataset(p, p.parent_path() / labels, 10);
        ds.name = name;
        sets.push_back(std::move(ds));
    }
    for (const auto& ds : sets) out.push_back(describe(ds));
    if (!opt.json.empty())
        write_text(opt.json, (out.size() == 1 ? out[0].dump(2) : out.dump(2)) + "\n");
    if (opt.json != "-")
        for (const auto& d : out) print(d);
    if (!opt.export_path.empty()) {
        export_stats(opt.export_path, sets, out);
        if (opt.json != "-")
            fmt::print("wrote {} (per-class mean images and counts; re-read and checked)\n",
                       opt.export_path);
    }
}

const RegisterCommand reg("data", [](CLI::App& app) {
    auto* data = app.add_subcommand(
        "data", "Inspect image datasets (Fashion-MNIST IDX files, CIFAR-10/100 binary files)");
    data->require_subcommand(1);
    auto opt = std::make_shared<DataInfoOptions>();
    auto* info = data->add_subcommand(
        "info", "Print count, shape, classes, per-class counts and pixel statistics");
    info->add_option("path", opt->path,
                     "A dataset name (fashion-mnist), a folder of IDX files or of CIFAR-10/100 "
                     "binary files, one IDX file (.gz or plain), or one CIFAR file named as "
                     "upstream (data_batch_N.bin, test_batch.bin, train.bin, test.bin)")
        ->required();
    info->add_option("--split", opt->split, "Which split of a folder: train, test or all")
        ->check(CLI::IsMember({"train", "test", "all"}));
    info->add_option("--label", opt->label,
                     "CIFAR-100: count the fine labels (100 classes, default) or the coarse ones "
                     "(20 superclasses)")
        ->check(CLI::IsMember({"fine", "coarse"}));
    info->add_option("--json", opt->json,
                     "Write the description as JSON to FILE ('-' = stdout instead of the text)");
    info->add_option("--export", opt->export_path,
                     "Write per-class mean images and counts to this HDF5 file");
    info->callback([opt] { run_info(*opt); });
});

}  // namespace
}  // namespace evformer::tools
