#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "evformer/sim/attention.hpp"
#include "sim/attention_flags.hpp"

namespace sim = evformer::sim;
namespace testing = evformer::testing;

namespace {

constexpr std::size_t N = 3, D = 4, H = 2;  // head 0: channels 0, 1; head 1: channels 2, 3

sim::EventList spikes(std::initializer_list<std::pair<std::uint32_t, std::uint32_t>> tc) {
    sim::EventList e;
    for (auto [token, channel] : tc) e.push(std::uint32_t(token * D + channel));
    return e;
}

// q, k, v of the hand-worked example. Head 0: C = [[1, 2, 0], [1, 1, 0], [0, 0, 0]];
// head 1: q and k never share a channel, C = 0.
const sim::EventList kQ = spikes({{0, 0}, {0, 1}, {1, 0}, {2, 2}});
const sim::EventList kK = spikes({{0, 0}, {1, 0}, {1, 1}, {2, 3}});
const sim::EventList kV = spikes({{0, 0}, {0, 2}, {1, 1}, {2, 0}});

sim::SpikingAttention make(const testing::VariantFlags& info, float delta) {
    sim::SpikingAttention a;
    a.tokens = N;
    a.dim = D;
    a.heads = H;
    a.binary = info.binary;
    a.threshold.assign(H, info.adaptive_threshold ? delta : 0.f);
    if (info.shift) a.shift = {0.25f, 0.5f, 0.75f, 1.0f};
    return a;
}

struct Outcome {
    sim::AttentionCounts counts;
    std::vector<float> out;
};

Outcome run(const sim::SpikingAttention& a, const sim::EventList& q, const sim::EventList& k,
            const sim::EventList& v) {
    sim::AttentionScratch scratch(a);
    Outcome o{{}, std::vector<float>(a.tokens * a.dim, -7.f)};
    o.counts = sim::attend(a, q, k, v, o.out.data(), scratch);
    return o;
}

float at(const Outcome& o, std::size_t token, std::size_t channel) {
    return o.out[token * D + channel];
}

}  // namespace

TEST_CASE("ssa: C counts coincident q/k spikes and s·C·V propagates v through C ≠ 0") {
    const auto o = run(make(testing::variant_flags(0), 0), kQ, kK, kV);
    CHECK(o.counts.sops_qk == 5);  // Σ C: 1 + 2 + 1 + 1
    CHECK(o.counts.nonzero == 4);
    CHECK(o.counts.sops_av == 4);  // v(0,0) meets rows 0, 1 of column 0; v(1,1) rows 0, 1
    CHECK(at(o, 0, 0) == 0.125f * 1);
    CHECK(at(o, 1, 0) == 0.125f * 1);
    CHECK(at(o, 0, 1) == 0.125f * 2);
    CHECK(at(o, 1, 1) == 0.125f * 1);
    CHECK(at(o, 2, 0) == 0.f);
    CHECK(at(o, 0, 2) == 0.f);  // head 1 has no attention entry
}

TEST_CASE("bin: B(C, 0) keeps every coincidence as a 1") {
    const auto o = run(make(testing::variant_flags(1), 0), kQ, kK, kV);
    CHECK(o.counts.sops_qk == 5);
    CHECK(o.counts.nonzero == 4);
    CHECK(o.counts.sops_av == 4);
    CHECK(at(o, 0, 1) == 0.125f);  // C = 2 becomes 1
    CHECK(at(o, 1, 0) == 0.125f);
}

TEST_CASE("bin-shift subtracts V̄ from every output, which is a bias and costs no SOP") {
    const auto o = run(make(testing::variant_flags(2), 0), kQ, kK, kV);
    CHECK(o.counts.sops_av == 4);
    CHECK(at(o, 0, 1) == 0.125f - 0.5f);
    CHECK(at(o, 2, 3) == -1.0f);
}

TEST_CASE("bin-mean keeps only entries above Δ, and v spikes go only through those") {
    const auto o = run(make(testing::variant_flags(3), 1.5f), kQ, kK, kV);
    CHECK(o.counts.sops_qk == 5);  // C is still computed in full
    CHECK(o.counts.nonzero == 1);  // only C[0][1] = 2 > 1.5
    CHECK(o.counts.sops_av == 1);  // v(1, 1) → row 0
    CHECK(at(o, 0, 1) == 0.125f);
    CHECK(at(o, 0, 0) == 0.f);
}

TEST_CASE("ssa-bin thresholds at Δ and subtracts V̄") {
    const auto o = run(make(testing::variant_flags(4), 1.5f), kQ, kK, kV);
    CHECK(o.counts.nonzero == 1);
    CHECK(o.counts.sops_av == 1);
    CHECK(at(o, 0, 1) == 0.125f - 0.5f);
    CHECK(at(o, 1, 1) == -0.5f);
}

TEST_CASE("every variant agrees with a dense reference on random spikes, counts included") {
    std::mt19937 rng(3);
    const std::size_t n = 7, d = 8, h = 2, hd = d / h;
    for (const auto& vinfo : testing::kVariantFlags) {
        for (int trial = 0; trial < 5; ++trial) {
            sim::SpikingAttention a;
            a.tokens = n;
            a.dim = d;
            a.heads = h;
            a.binary = vinfo.binary;
            a.threshold = {vinfo.adaptive_threshold ? 0.7f : 0.f,
                           vinfo.adaptive_threshold ? 1.2f : 0.f};
            if (vinfo.shift)
                for (std::size_t c = 0; c < d; ++c) a.shift.push_back(0.1f * float(c));
            std::vector<int> q(n * d), k(n * d), v(n * d);
            sim::EventList qe, ke, ve;
            for (std::uint32_t x = 0; x < n * d; ++x) {
                if ((q[x] = rng() % 3 == 0)) qe.push(x);
                if ((k[x] = rng() % 3 == 0)) ke.push(x);
                if ((v[x] = rng() % 2 == 0)) ve.push(x);
            }
            std::uint64_t sops_qk = 0, sops_av = 0, nonzero = 0;
            std::vector<float> ref(n * d, 0.f);
            for (std::size_t hh = 0; hh < h; ++hh)
                for (std::size_t i = 0; i < n; ++i)
                    for (std::size_t j = 0; j < n; ++j) {
                        int c_ij = 0;
                        for (std::size_t c = hh * hd; c < (hh + 1) * hd; ++c)
                            c_ij += q[i * d + c] * k[j * d + c];
                        sops_qk += std::uint64_t(c_ij);
                        const float entry =
                            a.binary ? (float(c_ij) > a.threshold[hh] ? 1.f : 0.f) : float(c_ij);
                        if (entry == 0.f) continue;
                        ++nonzero;
                        for (std::size_t c = hh * hd; c < (hh + 1) * hd; ++c) {
                            ref[i * d + c] += 0.125f * entry * float(v[j * d + c]);
                            sops_av += std::uint64_t(v[j * d + c]);
                        }
                    }
            if (!a.shift.empty())
                for (std::size_t x = 0; x < n * d; ++x) ref[x] -= a.shift[x % d];
            sim::AttentionScratch scratch(a);
            std::vector<float> out(n * d);
            // Twice with the same scratch: the scratch must come back clean.
            for (int rep = 0; rep < 2; ++rep) {
                const auto counts = sim::attend(a, qe, ke, ve, out.data(), scratch);
                CAPTURE(vinfo.name);
                CHECK(counts.sops_qk == sops_qk);
                CHECK(counts.sops_av == sops_av);
                CHECK(counts.nonzero == nonzero);
                CHECK(out == ref);
            }
        }
    }
}
