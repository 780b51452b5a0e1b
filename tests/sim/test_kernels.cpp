// The fast paths of the engine (fixed-width conv kernels, token linear fused with its LIF, the
// stream grouped by token, LIF longer than one vector) against the plain per-event rules, bit
// for bit: the same spikes, membranes and SOPs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "evformer/sim/layers.hpp"

namespace sim = evformer::sim;

namespace {

std::vector<float> random_floats(std::size_t n, std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> out(n);
    for (auto& x : out) x = u(rng);
    return out;
}

// Random events over `neurons` in ascending order, counts 1..max_count.
sim::EventList random_events(std::size_t neurons, double rate, std::uint16_t max_count,
                             std::mt19937& rng) {
    std::bernoulli_distribution fire(rate);
    sim::EventList ev;
    for (std::size_t n = 0; n < neurons; ++n)
        if (fire(rng))
            ev.push(static_cast<std::uint32_t>(n),
                    static_cast<std::uint16_t>(1 + rng() % max_count));
    return ev;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The scalar LIF rule, the reference of lif_step.
void reference_lif(const sim::LifParams& p, std::vector<float>& v, const float* x,
                   sim::EventList& out) {
    for (std::size_t i = 0; i < v.size(); ++i) {
        const float u = v[i] + (x[i] - (v[i] - p.v_reset)) / p.tau;
        if (u >= p.v_threshold) {
            out.push(static_cast<std::uint32_t>(i));
            v[i] = p.v_reset;
        } else {
            v[i] = u;
        }
    }
}

}  // namespace

TEST_CASE("lif_step matches the scalar rule over many steps, including a ragged tail") {
    std::mt19937 rng(11);
    const sim::LifParams p{2.f, 1.f, 0.f};
    for (std::size_t n : {1u, 15u, 16u, 17u, 100u, 3136u}) {
        std::vector<float> v(n, 0.f), v_ref(n, 0.f);
        for (int step = 0; step < 4; ++step) {
            const auto x = random_floats(n, rng, -1.f, 3.f);
            sim::EventList out, ref;
            sim::lif_step(p, v.data(), x.data(), n, out);
            reference_lif(p, v_ref, x.data(), ref);
            CHECK(out.neuron == ref.neuron);
            CHECK(out.count == ref.count);
            CHECK(same_bits(v, v_ref));
        }
    }
}

TEST_CASE("the fused token linear + LIF equals init, propagate and lif_step bit for bit") {
    std::mt19937 rng(12);
    const sim::LifParams p{2.f, 1.f, 0.f};
    for (std::size_t fo : {16u, 48u, 64u, 256u}) {  // 48: no fixed-width kernel, fallback
        sim::TokenLinear lin{49, 64, fo, random_floats(64 * fo, rng, -0.3f, 0.5f),
                             random_floats(fo, rng, -0.2f, 0.4f)};
        std::vector<float> v(lin.outputs(), 0.f), v_ref(lin.outputs(), 0.f);
        std::vector<float> acc(lin.outputs()), acc_ref(lin.outputs());
        for (int step = 0; step < 3; ++step) {
            auto in = random_events(lin.inputs(), 0.3, step == 0 ? 1 : 3, rng);
            if (step == 2) std::reverse(in.neuron.begin(), in.neuron.end());  // not grouped
            sim::EventList out, ref;
            const auto sops = lin.propagate_lif(in, p, v.data(), out, acc.data());
            lin.init(acc_ref.data());
            const auto sops_ref = lin.propagate(in, acc_ref.data());
            sim::lif_step(p, v_ref.data(), acc_ref.data(), lin.outputs(), ref);
            CHECK(sops == sops_ref);
            CHECK(out.neuron == ref.neuron);
            CHECK(out.count == ref.count);
            CHECK(same_bits(v, v_ref));
        }
    }
}

TEST_CASE("fixed-width conv kernels equal the per-event tap loop bit for bit, with SOPs") {
    std::mt19937 rng(13);
    for (std::size_t co : {16u, 32u, 64u, 24u}) {  // 24: generic loop
        for (std::size_t side : {1u, 2u, 7u, 14u}) {
            sim::Conv3x3 conv{8,
                              co,
                              side,
                              side,
                              random_floats(8 * 9 * co, rng, -0.5f, 0.5f),
                              random_floats(co, rng, -0.1f, 0.1f)};
            const auto in = random_events(conv.inputs(), 0.4, 3, rng);
            std::vector<float> acc(conv.outputs()), ref(conv.outputs());
            conv.init(acc.data());
            const auto sops = conv.propagate(in, acc.data());
            // Reference: event by event, tap by tap, m·row added in list order.
            conv.init(ref.data());
            std::uint64_t sops_ref = 0;
            for (std::size_t e = 0; e < in.size(); ++e) {
                const std::size_t c = in.neuron[e] % 8, pos = in.neuron[e] / 8;
                const std::size_t y = pos / side, x = pos % side;
                const float m = float(in.count[e]);
                for (std::size_t ky = 0; ky < 3; ++ky)
                    for (std::size_t kx = 0; kx < 3; ++kx) {
                        const auto oy = std::ptrdiff_t(y) + 1 - std::ptrdiff_t(ky);
                        const auto ox = std::ptrdiff_t(x) + 1 - std::ptrdiff_t(kx);
                        if (oy < 0 || ox < 0 || oy >= std::ptrdiff_t(side) ||
                            ox >= std::ptrdiff_t(side))
                            continue;
                        float* out = ref.data() + (std::size_t(oy) * side + std::size_t(ox)) * co;
                        const float* row = conv.weight_t.data() + (c * 9 + ky * 3 + kx) * co;
                        for (std::size_t k = 0; k < co; ++k)
                            out[k] = in.count[e] == 1 ? out[k] + row[k] : out[k] + m * row[k];
                        sops_ref += in.count[e] * co;
                    }
            }
            CHECK(sops == sops_ref);
            CHECK(same_bits(acc, ref));
        }
    }
}

TEST_CASE("the stream grouped by token keeps the first-touched order within each token") {
    sim::ResidualStream s(12);
    sim::EventList a, b, grouped;
    for (std::uint32_t n : {9u, 2u, 5u}) a.push(n, 1);
    for (std::uint32_t n : {0u, 5u, 10u, 3u}) b.push(n, 1);
    s.add(a);
    s.add(b);
    s.to_events_by_token(grouped, 4);  // tokens of 4: {2, 0, 3}, {5}, {9, 10}
    CHECK(grouped.neuron == std::vector<std::uint32_t>{2, 0, 3, 5, 9, 10});
    CHECK(grouped.count == std::vector<std::uint16_t>{1, 1, 1, 2, 1, 1});
    s.to_events_by_token(grouped, 3);  // width 3 (not a power of two): {2, 0}, {5, 3}, {9, 10}
    CHECK(grouped.neuron == std::vector<std::uint32_t>{2, 0, 5, 3, 9, 10});
}
