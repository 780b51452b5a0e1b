// `evformer data info PATH`: what an image dataset holds.
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "command.hpp"
#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/io/idx.hpp"

namespace evformer::tools {
namespace {

struct DataInfoOptions {
    std::string path;
    std::string split = "all";
    std::string export_path;
    std::string json;
};

// Per-class mean images as a [classes, rows, cols] tensor.
std::vector<float> class_means(const io::ImageDataset& ds) {
    const std::size_t pixels = ds.rows * ds.cols;
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
        w.write<float>(g + "/class_mean_image", means.back(), {ds.classes, ds.rows, ds.cols});
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
        if (r.read<float>(g + "/class_mean_image", {ds.classes, ds.rows, ds.cols}) != means[i] ||
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
    return {{"name", ds.name},       {"count", ds.count},          {"shape", {ds.rows, ds.cols}},
            {"classes", ds.classes}, {"per_class", per_class},     {"pixel_min", lo},
            {"pixel_max", hi},       {"pixel_mean", mean / 255.0}, {"pixel_std", stddev / 255.0}};
}

void print(const nlohmann::json& d) {
    fmt::print("{}: {} images of {}x{}, {} classes\n", d["name"].get<std::string>(),
               d["count"].get<std::size_t>(), d["shape"][0].get<std::size_t>(),
               d["shape"][1].get<std::size_t>(), d["classes"].get<std::size_t>());
    fmt::print("  per class:");
    for (const auto& c : d["per_class"]) fmt::print(" {}", c.get<std::size_t>());
    fmt::print("\n  pixels: min {} max {}, mean {:.4f} std {:.4f} (scaled to [0, 1])\n",
               d["pixel_min"].get<int>(), d["pixel_max"].get<int>(), d["pixel_mean"].get<double>(),
               d["pixel_std"].get<double>());
}

void run_info(const DataInfoOptions& opt) {
    const std::vector<NamedPath> outputs{{"--json", opt.json}, {"--export", opt.export_path}};
    check_distinct_files({{"path", io::resolve_dataset_dir(opt.path).string()}}, outputs);
    prepare_outputs(outputs);
    const std::filesystem::path p = io::resolve_dataset_dir(opt.path);
    nlohmann::json out = nlohmann::json::array();
    std::vector<io::ImageDataset> sets;
    if (std::filesystem::is_directory(p)) {
        std::vector<std::string> splits;
        if (opt.split == "all")
            splits = {"train", "test"};
        else
            splits = {opt.split};
        for (const auto& s : splits) sets.push_back(io::load_mnist_like(p, s));
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
    auto* data = app.add_subcommand("data", "Inspect image datasets (Fashion-MNIST IDX files)");
    data->require_subcommand(1);
    auto opt = std::make_shared<DataInfoOptions>();
    auto* info = data->add_subcommand(
        "info", "Print count, shape, classes, per-class counts and pixel statistics");
    info->add_option("path", opt->path,
                     "A dataset name (fashion-mnist), a folder of IDX files, or one IDX file "
                     "(.gz or plain)")
        ->required();
    info->add_option("--split", opt->split, "Which split of a folder: train, test or all")
        ->check(CLI::IsMember({"train", "test", "all"}));
    info->add_option("--json", opt->json,
                     "Write the description as JSON to FILE ('-' = stdout instead of the text)");
    info->add_option("--export", opt->export_path,
                     "Write per-class mean images and counts to this HDF5 file");
    info->callback([opt] { run_info(*opt); });
});

}  // namespace
}  // namespace evformer::tools
