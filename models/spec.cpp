#include "evformer/models/spec.hpp"

#include <fmt/format.h>

#include <type_traits>

#include <cmath>
#include <nlohmann/json.hpp>

#include "evformer/error.hpp"

namespace evformer::models {

using nlohmann::json;

std::size_t ModelSpec::stage_channels(std::size_t stage) const {
    static constexpr std::size_t divisors[4] = {8, 4, 2, 1};
    return dim / divisors[stage];
}

std::size_t ModelSpec::stage_height(std::size_t stage) const {
    std::size_t h = in_height;
    for (std::size_t s = 0; s <= stage; ++s)
        if (pool_after[s]) h = pooled_size(h);
    return h;
}

std::size_t ModelSpec::stage_width(std::size_t stage) const {
    std::size_t w = in_width;
    for (std::size_t s = 0; s <= stage; ++s)
        if (pool_after[s]) w = pooled_size(w);
    return w;
}

std::size_t ModelSpec::tokens() const {
    return stage_height(3) * stage_width(3);
}

void ModelSpec::validate() const {
    auto fail = [](const std::string& rule) { throw ConfigError("invalid model spec: " + rule); };
    if (blocks < 1) fail("blocks (L) must be at least 1");
    if (input_split_by != "number" && input_split_by != "time" && input_split_by != "duration")
        fail(fmt::format("input_split_by = '{}' must be 'number', 'time' or 'duration'",
                         input_split_by));
    if (input_split_by == "duration" && (input_dt_us < 1 || input_dt_us > (std::int64_t{1} << 40)))
        fail(fmt::format("input_split_by 'duration' needs input_dt_us in [1, 2^40] us, got {}",
                         input_dt_us));
    if (input_split_by != "duration" && input_dt_us != 0)
        fail(
            fmt::format("input_dt_us = {} belongs to input_split_by 'duration' only", input_dt_us));
    if (dim < 8 || dim % 8 != 0)
        fail(
            fmt::format("dim (D) = {} must be a positive multiple of 8 (the stem has D/8 "
                        "channels)",
                        dim));
    if (heads < 1 || dim % heads != 0)
        fail(fmt::format("dim (D) = {} must be divisible by heads = {}", dim, heads));
    if (mlp_ratio < 1) fail("mlp_ratio must be at least 1");
    if (time_steps < 1) fail("time_steps (T) must be at least 1");
    if (in_channels < 1) fail("in_channels must be at least 1");
    if (in_height < 1 || in_width < 1) fail("input height and width must be at least 1");
    if (tokens() < 1) fail("the pooling stages leave no tokens");
    if (classes < 2) fail(fmt::format("classes = {} must be at least 2", classes));
    if (!(bn_eps > 0)) fail("bn_eps must be > 0");
    if (!(lif.tau >= 1.0) || !std::isfinite(lif.tau))
        fail(fmt::format("lif.tau = {} must be >= 1 (the membrane decays by 1/tau)", lif.tau));
    if (!(lif.v_threshold > lif.v_reset)) fail("lif.v_threshold must be greater than lif.v_reset");
    if (!(lif.attn_v_threshold > lif.v_reset))
        fail("lif.attn_v_threshold must be greater than lif.v_reset");
    if (!(lif.surrogate_alpha > 0)) fail("lif.surrogate_alpha must be > 0");
    if (!(attention.scale > 0) || !std::isfinite(attention.scale))
        fail("attention.scale must be a finite number > 0");
    if (!(attention.kappa > 0) || !std::isfinite(attention.kappa))
        fail("attention.kappa must be a finite number > 0");
    if (!(attention.lambda >= 0) || !std::isfinite(attention.lambda))
        fail("attention.lambda must be a finite number >= 0");
    if (!(attention.momentum >= 0 && attention.momentum < 1))
        fail("attention.momentum must lie in [0, 1)");
}

std::string_view train_shift_name(TrainShift s) {
    return s == TrainShift::batch ? "batch" : "running";
}

TrainShift parse_train_shift(std::string_view name) {
    if (name == "batch") return TrainShift::batch;
    if (name == "running") return TrainShift::running;
    throw ConfigError("attention.train_shift must be 'batch' or 'running', not '" +
                      std::string(name) + "'");
}

std::string ModelSpec::to_json() const {
    json j;
    j["blocks"] = blocks;
    j["dim"] = dim;
    j["heads"] = heads;
    j["mlp_ratio"] = mlp_ratio;
    j["time_steps"] = time_steps;
    j["in_channels"] = in_channels;
    j["in_height"] = in_height;
    j["in_width"] = in_width;
    j["pool_after"] = pool_after;
    j["input_crop"] = input_crop;
    if (input_split_by != "number") {  // written only when not the default (older readers)
        j["input_split_by"] = input_split_by;
        j["input_dt_us"] = input_dt_us;
    }
    j["classes"] = classes;
    j["bn_eps"] = bn_eps;
    j["lif"] = {{"tau", lif.tau},
                {"v_threshold", lif.v_threshold},
                {"v_reset", lif.v_reset},
                {"attn_v_threshold", lif.attn_v_threshold},
                {"surrogate_alpha", lif.surrogate_alpha}};
    j["attention"] = {{"variant", std::string(models::info(attention.variant).name)},
                      {"scale", attention.scale},
                      {"kappa", attention.kappa},
                      {"lambda", attention.lambda},
                      {"momentum", attention.momentum},
                      {"train_shift", std::string(train_shift_name(attention.train_shift))}};
    return j.dump(2);
}

namespace {

template <class T>
void take(const json& obj, const char* key, T& out, const std::string& prefix) {
    auto it = obj.find(key);
    if (it == obj.end()) return;
    // a count must be a whole number >= 0: nlohmann would wrap -1 round to 2^64 - 1
    if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && !std::is_same_v<T, bool>)
        if (it->is_number() && !it->is_number_unsigned())
            throw ConfigError(
                fmt::format("model spec key '{}{}' is {}; expected a whole number >= 0", prefix,
                            key, it->dump()));
    try {
        out = it->get<T>();
    } catch (const json::exception&) {
        throw ConfigError(
            fmt::format("model spec key '{}{}': wrong type ({})", prefix, key, it->type_name()));
    }
}

void reject_unknown(const json& obj, std::initializer_list<const char*> known,
                    const std::string& prefix) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        bool ok = false;
        for (const char* k : known) ok = ok || it.key() == k;
        if (!ok) throw ConfigError(fmt::format("model spec: unknown key '{}{}'", prefix, it.key()));
    }
}

}  // namespace

ModelSpec ModelSpec::from_json(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw ConfigError(std::string("model spec is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw ConfigError("model spec must be a JSON object");
    reject_unknown(j,
                   {"blocks", "dim", "heads", "mlp_ratio", "time_steps", "in_channels", "in_height",
                    "in_width", "pool_after", "input_crop", "input_split_by", "input_dt_us",
                    "classes", "bn_eps", "lif", "attention"},
                   "");
    ModelSpec s;
    take(j, "blocks", s.blocks, "");
    take(j, "dim", s.dim, "");
    take(j, "heads", s.heads, "");
    take(j, "mlp_ratio", s.mlp_ratio, "");
    take(j, "time_steps", s.time_steps, "");
    take(j, "in_channels", s.in_channels, "");
    take(j, "in_height", s.in_height, "");
    take(j, "in_width", s.in_width, "");
    take(j, "pool_after", s.pool_after, "");
    take(j, "input_crop", s.input_crop, "");          // absent in files written before it existed
    take(j, "input_split_by", s.input_split_by, "");  // absent: "number"
    take(j, "input_dt_us", s.input_dt_us, "");
    take(j, "classes", s.classes, "");
    take(j, "bn_eps", s.bn_eps, "");
    if (auto it = j.find("lif"); it != j.end()) {
        if (!it->is_object()) throw ConfigError("model spec key 'lif' must be an object");
        reject_unknown(
            *it, {"tau", "v_threshold", "v_reset", "attn_v_threshold", "surrogate_alpha"}, "lif.");
        take(*it, "tau", s.lif.tau, "lif.");
        take(*it, "v_threshold", s.lif.v_threshold, "lif.");
        take(*it, "v_reset", s.lif.v_reset, "lif.");
        take(*it, "attn_v_threshold", s.lif.attn_v_threshold, "lif.");
        take(*it, "surrogate_alpha", s.lif.surrogate_alpha, "lif.");
    }
    if (auto it = j.find("attention"); it != j.end()) {
        if (!it->is_object()) throw ConfigError("model spec key 'attention' must be an object");
        reject_unknown(*it, {"variant", "scale", "kappa", "lambda", "momentum", "train_shift"},
                       "attention.");
        std::string variant(models::info(s.attention.variant).name);
        take(*it, "variant", variant, "attention.");
        s.attention.variant = models::parse_attention_variant(variant);
        take(*it, "scale", s.attention.scale, "attention.");
        take(*it, "kappa", s.attention.kappa, "attention.");
        take(*it, "lambda", s.attention.lambda, "attention.");
        take(*it, "momentum", s.attention.momentum, "attention.");
        std::string shift(train_shift_name(s.attention.train_shift));
        take(*it, "train_shift", shift, "attention.");
        s.attention.train_shift = parse_train_shift(shift);
    }
    s.validate();
    return s;
}

}  // namespace evformer::models
