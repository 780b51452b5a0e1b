// The engine's building blocks: LIF populations, event-driven projections (3×3 convolution,
// token-wise linear), max-pool over spikes and the additive residual stream. Projections
// accumulate weight rows into an input-current buffer for each event they receive and return
// the number of synaptic operations (SOPs) they performed.
//
// Neuron order everywhere is channel-last: a feature map of C channels over H×W positions has
// neuron (y·W + x)·C + c; a token sequence of N tokens × D channels has neuron n·D + c (the token
// of position (y, x) is n = y·W + x, so the stem's last map and the token sequence coincide).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "evformer/sim/events.hpp"
#include "evformer/sim/neuron_rules.hpp"

namespace evformer::sim {

/// Advances `n` LIF neurons one step with input currents `input`, appending a count-1 event for
/// each neuron that fires. Returns the number of spikes.
std::size_t lif_step(const LifParams& p, float* v, const float* input, std::size_t n,
                     EventList& out);

/// A 3×3 convolution, stride 1, padding 1, over a channel-last H×W map, with its weights stored
/// transposed ([in channel][ky][kx][out channel]) so one tap of an event is a contiguous row.
struct Conv3x3 {
    std::size_t in_channels = 0;
    std::size_t out_channels = 0;
    std::size_t height = 0;
    std::size_t width = 0;
    std::vector<float> weight_t;  ///< [in][3][3][out]
    std::vector<float> bias;      ///< [out]: conv bias and folded BN shift

    /// Checks that the sizes agree; throws ConfigError naming `what` otherwise.
    void validate(const char* what) const;
    /// Input neurons (H·W·in) and output neurons (H·W·out).
    std::size_t inputs() const { return height * width * in_channels; }
    std::size_t outputs() const { return height * width * out_channels; }
    /// Dense operations of one step: H·W·out·in·9 (the paper's FLOPs, borders ignored).
    double flops() const { return double(height * width * out_channels * in_channels * 9); }

    /// Fills `acc` ([H][W][out]) with the bias.
    void init(float* acc) const;
    /// Adds each event's weight rows (count times) to the output positions it reaches, fewer at
    /// the borders. Returns the SOPs: Σ count × reached positions × out channels.
    std::uint64_t propagate(const EventList& in, float* acc) const;
    /// Real-valued input ([H][W][in], channel-last): adds value × row for every non-zero input
    /// and returns the multiply-accumulates performed (zero inputs cost nothing).
    std::uint64_t propagate_dense(const float* in, float* acc) const;
    /// Number of output positions × out channels an input at (y, x) reaches.
    std::uint64_t fan_out(std::size_t y, std::size_t x) const;
};

/// A linear layer applied to every token alike (in → out features), weights stored transposed.
struct TokenLinear {
    std::size_t tokens = 0;
    std::size_t in_features = 0;
    std::size_t out_features = 0;
    std::vector<float> weight_t;  ///< [in][out]
    std::vector<float> bias;      ///< [out]: linear bias and folded BN shift

    /// Checks that the sizes agree; throws ConfigError naming `what` otherwise.
    void validate(const char* what) const;
    std::size_t inputs() const { return tokens * in_features; }
    std::size_t outputs() const { return tokens * out_features; }
    /// Dense operations of one step: N·in·out.
    double flops() const { return double(tokens * in_features * out_features); }

    /// Fills `acc` ([N][out]) with the bias.
    void init(float* acc) const;
    /// Adds count × row for each event into its token's outputs. Returns count × out per event.
    std::uint64_t propagate(const EventList& in, float* acc) const;
    /// Real-valued input ([N][in]): value × row for every non-zero input; returns the MACs.
    std::uint64_t propagate_dense(const float* in, float* acc) const;
    /// init + propagate + lif_step in one pass, token by token, without an input-current buffer:
    /// each token's output row is built in registers (bias, then the event rows in list order,
    /// so the sums are bit-identical to propagate) and fed straight to the LIF of `v` ([N][out]),
    /// appending the spikes to `out` in neuron order. `in` must be grouped by token in ascending
    /// order (LIF output and ResidualStream::to_events_by_token are); otherwise, or for widths
    /// without a fixed-width kernel, it falls back to init/propagate/lif_step through `acc`.
    /// Returns the SOPs (as propagate).
    std::uint64_t propagate_lif(const EventList& in, const LifParams& p, float* v, EventList& out,
                                float* acc) const;
};

/// Pooling over events of a channel-last map: square windows of `kernel` cells with `stride`
/// and `padding` (padded cells hold no events). Max-pool: an output fires (count 1) when any
/// input in its window fired. Sum-pool: an output's count is the sum of its window's counts.
/// Neither is a synaptic operation. The default is the Spikformer's 3×3 / stride 2 / padding 1.
class SpikeMaxPool {
  public:
    /// A pool over a `height`×`width` map of `channels` channels (square windows).
    SpikeMaxPool(std::size_t channels, std::size_t height, std::size_t width,
                 std::size_t kernel = 3, std::size_t stride = 2, std::size_t padding = 1);
    /// A pool with windows of kernel_h×kernel_w, strides and paddings per axis.
    SpikeMaxPool(std::size_t channels, std::size_t height, std::size_t width, std::size_t kernel_h,
                 std::size_t kernel_w, std::size_t stride_h, std::size_t stride_w,
                 std::size_t padding_h, std::size_t padding_w);
    SpikeMaxPool() = default;
    std::size_t out_height() const { return out_h_; }
    std::size_t out_width() const { return out_w_; }
    std::size_t outputs() const { return out_h_ * out_w_ * c_; }
    /// Max-pool: emits one count-1 event per output whose window holds an input event, in
    /// first-reached order; `seen` is scratch of outputs() bytes, all zero on entry and on return.
    void apply(const EventList& in, EventList& out, std::vector<std::uint8_t>& seen) const;
    /// Sum-pool: one event per output whose window holds input events, count = Σ counts (capped
    /// at 65535), in first-reached order; `sums` is scratch of outputs() entries, all zero on
    /// entry and on return.
    void apply_sum(const EventList& in, EventList& out, std::vector<std::uint32_t>& sums) const;

  private:
    /// Calls f(output neuron, event index) for every output each event's position reaches.
    template <class F>
    void for_each_reach(const EventList& in, F&& f) const;

    std::size_t c_ = 0, h_ = 0, w_ = 0, k_ = 3, s_ = 2, p_ = 1, out_h_ = 0, out_w_ = 0;
    std::size_t kw_ = 3, sw_ = 2, pw_ = 1;  ///< the width's window
};

/// A 2-D convolution of any kernel, stride, padding, dilation and groups over a channel-last map
/// (PyTorch's Conv2d semantics, each per axis: a Conv1d is the H = 1 case), weights stored
/// transposed per input channel ([in][ky][kx][out/groups]) so one tap of an event is a contiguous
/// row. The general path; the 3×3 / stride 1 / padding 1 convolutions of the Spikformer run on
/// Conv3x3's fixed-width kernels.
struct Conv2d {
    std::size_t in_channels = 0, out_channels = 0;
    std::size_t in_height = 0, in_width = 0, out_height = 0, out_width = 0;
    std::size_t kernel = 1, stride = 1, padding = 0, dilation = 1, groups = 1;  ///< height's
    std::size_t kernel_w = 1, stride_w = 1, padding_w = 0, dilation_w = 1;      ///< width's
    std::vector<float> weight_t;  ///< [in][kh][kw][out/groups]
    std::vector<float> bias;      ///< [out]

    std::size_t inputs() const { return in_height * in_width * in_channels; }
    std::size_t outputs() const { return out_height * out_width * out_channels; }
    /// Dense operations of one step: out positions · out · (in/groups) · kh·kw.
    double flops() const {
        return double(out_height * out_width * out_channels * (in_channels / groups) * kernel *
                      kernel_w);
    }
    /// Fills `acc` ([out H][out W][out]) with the bias.
    void init(float* acc) const;
    /// Adds count × the weight row of every tap an event reaches. Returns the SOPs:
    /// Σ count × reached output positions × out/groups.
    std::uint64_t propagate(const EventList& in, float* acc) const;
    /// Real-valued input ([H][W][in]): value × row for every non-zero input; returns the MACs.
    std::uint64_t propagate_dense(const float* in, float* acc) const;
};

/// An additive residual stream: small non-negative integers per neuron, built by summing event
/// lists and read back as graded events.
class ResidualStream {
  public:
    /// A stream of `neurons` entries, all zero.
    explicit ResidualStream(std::size_t neurons = 0) : value_(neurons, 0) {}
    /// Adds the events' counts.
    void add(const EventList& events);
    /// The non-zero entries as events (count = value), in first-touched order.
    void to_events(EventList& out) const;
    /// The same events grouped by token (neuron / width) in ascending token order, keeping the
    /// first-touched order within a token (so per-token sums downstream are unchanged).
    void to_events_by_token(EventList& out, std::size_t width);
    /// Sets every entry back to zero (cost proportional to the touched entries).
    void clear();
    std::size_t size() const { return value_.size(); }

  private:
    std::vector<std::uint16_t> value_;
    std::vector<std::uint32_t> touched_;
    std::vector<std::uint32_t> bucket_;  ///< scratch of to_events_by_token
};

}  // namespace evformer::sim
