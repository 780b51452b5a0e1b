#include "evformer/models/ops/attention.hpp"

#include <algorithm>
#include <cmath>

#include "fast_math.hpp"
#include "parallel.hpp"

namespace evformer::models::ops {
namespace {

using Buf = std::vector<float>;

// M = C (ssa), κ·[C > Δ] (binary) or κ·softmax(C row) (smooth) for one head of one group.
// Also returns p = softmax rows of C in `p` when not null, Σ C in c_sum and the non-zero
// entries of M in nonzero when not null.
void attention_map(const AttentionOpParams& a, const float* q, const float* k, float delta,
                   float* m, double* c_sum, double* nonzero, float* p = nullptr) {
    const std::size_t n_tok = a.tokens, d = a.dim, dh = a.dim / a.heads;
    const float kappa = a.kappa;
    double cs = 0, nz = 0;
    for (std::size_t i = 0; i < n_tok; ++i) {
        const float* qi = q + i * d;
        float* mrow = m + i * n_tok;
        for (std::size_t j = 0; j < n_tok; ++j) {
            const float* kj = k + j * d;
            float c = 0;
            for (std::size_t e = 0; e < dh; ++e) c += qi[e] * kj[e];
            mrow[j] = c;
            cs += c;
        }
        if (p || (a.binary && a.smooth)) {
            float mx = mrow[0];
            for (std::size_t j = 1; j < n_tok; ++j) mx = std::max(mx, mrow[j]);
            thread_local Buf e;
            e.resize(n_tok);
            float z = 0;
            if (a.smooth) {  // exact exponentials for the finite-difference checks
                for (std::size_t j = 0; j < n_tok; ++j) e[j] = std::exp(mrow[j] - mx);
            } else {
                for (std::size_t j = 0; j < n_tok; ++j) e[j] = exp_fast(mrow[j] - mx);
            }
            for (std::size_t j = 0; j < n_tok; ++j) z += e[j];
            const float inv_z = 1.f / z;
            float* prow = p ? p + i * n_tok : nullptr;
            for (std::size_t j = 0; j < n_tok; ++j) {
                const float pj = e[j] * inv_z;
                if (prow) prow[j] = pj;
                if (a.binary && a.smooth) mrow[j] = kappa * pj;
            }
        }
        if (a.binary && !a.smooth)
            for (std::size_t j = 0; j < n_tok; ++j) mrow[j] = mrow[j] > delta ? kappa : 0.f;
        for (std::size_t j = 0; j < n_tok; ++j) nz += mrow[j] != 0.f ? 1 : 0;
    }
    if (c_sum) *c_sum = cs;
    if (nonzero) *nonzero = nz;
}

}  // namespace

void attention_forward(const AttentionOpParams& a, const float* q, const float* k, const float* v,
                       std::size_t groups, const float* delta, AttentionShift shift,
                       const float* given_shift, float* out, AttentionStats& stats) {
    const std::size_t n_tok = a.tokens, d = a.dim, heads = a.heads;
    const std::size_t dh = d / heads, rows = groups * n_tok;
    const float scale = a.scale;
    std::vector<double> c_sum(groups * heads, 0.0), nz(groups * heads, 0.0);
    parallel_items(groups * heads, 4, [&](std::size_t task) {
        const std::size_t g = task / heads, hd = task % heads;
        thread_local Buf m, acc;
        m.resize(n_tok * n_tok);
        acc.resize(dh);  // D/H has no upper bound in the spec
        const std::size_t off = g * n_tok * d + hd * dh;
        attention_map(a, q + off, k + off, delta[hd], m.data(), &c_sum[task], &nz[task]);
        const float* vg = v + off;
        float* o = out + off;
        for (std::size_t i = 0; i < n_tok; ++i) {
            std::fill(acc.begin(), acc.end(), 0.f);
            for (std::size_t j = 0; j < n_tok; ++j) {
                const float mij = m[i * n_tok + j];
                if (mij == 0.f) continue;
                const float* vr = vg + j * d;
                for (std::size_t c = 0; c < dh; ++c) acc[c] += mij * vr[c];
            }
            for (std::size_t c = 0; c < dh; ++c) o[i * d + c] = scale * acc[c];
        }
    });
    stats.c_mean.assign(heads, 0.0);
    stats.nonzero = 0;
    for (std::size_t task = 0; task < groups * heads; ++task) {
        stats.c_mean[task % heads] += c_sum[task];
        stats.nonzero += nz[task];
    }
    for (auto& c : stats.c_mean) c /= double(groups * n_tok * n_tok);
    std::vector<double> ch(d, 0.0);
    chunked_reduce(rows, d, ch.data(), [&](std::size_t r0, std::size_t r1, double* part) {
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t c = 0; c < d; ++c) part[c] += out[r * d + c];
    });
    stats.out_mean.assign(d, 0.f);
    for (std::size_t c = 0; c < d; ++c)
        stats.out_mean[c] = static_cast<float>(ch[c] / double(rows));
    if (shift == AttentionShift::none) return;
    const float* sub = shift == AttentionShift::batch_mean ? stats.out_mean.data() : given_shift;
    parallel_items(rows, 256, [&](std::size_t r) {
        for (std::size_t c = 0; c < d; ++c) out[r * d + c] -= sub[c];
    });
}

void attention_backward(const AttentionOpParams& a, const float* q_all, const float* k_all,
                        const float* v_all, std::size_t groups, const float* delta,
                        bool batch_shift, const float* dout, float* dq, float* dk, float* dv) {
    const std::size_t n_tok = a.tokens, d = a.dim, heads = a.heads;
    const std::size_t dh = d / heads, rows = groups * n_tok;
    const float scale = a.scale, kappa = a.kappa;
    thread_local Buf dout_centred;
    const float* dout_ptr = dout;
    if (batch_shift) {  // out = pre − mean(pre): centre the gradient
        dout_centred.assign(dout, dout + rows * d);
        dout_ptr = dout_centred.data();
        Buf& dc = dout_centred;
        std::vector<double> ch(d, 0.0);
        chunked_reduce(rows, d, ch.data(), [&](std::size_t r0, std::size_t r1, double* part) {
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t c = 0; c < d; ++c) part[c] += dout[r * d + c];
        });
        Buf mean(d);
        for (std::size_t c = 0; c < d; ++c) mean[c] = static_cast<float>(ch[c] / double(rows));
        parallel_items(rows, 256, [&](std::size_t r) {
            for (std::size_t c = 0; c < d; ++c) dc[r * d + c] -= mean[c];
        });
    }
    std::fill(dq, dq + rows * d, 0.f);
    std::fill(dk, dk + rows * d, 0.f);
    std::fill(dv, dv + rows * d, 0.f);
    parallel_items(groups * heads, 4, [&](std::size_t task) {
        const std::size_t grp = task / heads, hd = task % heads;
        const std::size_t off = grp * n_tok * d + hd * dh;
        const float* q = q_all + off;
        const float* k = k_all + off;
        const float* v = v_all + off;
        const float* go = dout_ptr + off;
        thread_local Buf m, p, dm;
        m.resize(n_tok * n_tok);
        dm.resize(n_tok * n_tok);
        if (a.binary) p.resize(n_tok * n_tok);
        attention_map(a, q, k, delta[hd], m.data(), nullptr, nullptr,
                      a.binary ? p.data() : nullptr);
        float* gv = dv + off;
        for (std::size_t i = 0; i < n_tok; ++i)
            for (std::size_t j = 0; j < n_tok; ++j) {
                const float mij = m[i * n_tok + j];
                float acc = 0;
                for (std::size_t c = 0; c < dh; ++c) {
                    acc += go[i * d + c] * v[j * d + c];
                    gv[j * d + c] += scale * mij * go[i * d + c];
                }
                dm[i * n_tok + j] = scale * acc;
            }
        // dm → dC
        if (a.binary) {
            for (std::size_t i = 0; i < n_tok; ++i) {
                float* row = dm.data() + i * n_tok;
                const float* prow = p.data() + i * n_tok;
                if (a.smooth) {
                    float dot = 0;
                    for (std::size_t j = 0; j < n_tok; ++j) dot += prow[j] * row[j];
                    for (std::size_t j = 0; j < n_tok; ++j)
                        row[j] = kappa * prow[j] * (row[j] - dot);
                } else {
                    for (std::size_t j = 0; j < n_tok; ++j) row[j] *= prow[j] * (1.f - prow[j]);
                }
            }
        }
        float* gq = dq + off;
        float* gk = dk + off;
        for (std::size_t i = 0; i < n_tok; ++i)
            for (std::size_t j = 0; j < n_tok; ++j) {
                const float g = dm[i * n_tok + j];
                if (g == 0.f) continue;
                for (std::size_t c = 0; c < dh; ++c) {
                    gq[i * d + c] += g * k[j * d + c];
                    gk[j * d + c] += g * q[i * d + c];
                }
            }
    });
}

}  // namespace evformer::models::ops
