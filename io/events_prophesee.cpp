// Prophesee recordings: EVT 2.0 and EVT 3.0 `.raw` streams and DAT files (facts from the public
// OpenEB headers and format documentation), plus the EVT 2.0 writer.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI2__)
// GCC 12 reports its own AVX-512 headers' undefined-vector idiom as uninitialised (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#define EVFORMER_EVT3_AVX512 1
#endif

#include "events_internal.hpp"
#include "evformer/error.hpp"

namespace evformer::io::detail {
namespace {

std::uint32_t parse_uint(const std::string& s) {
    std::uint32_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() ? v : 0;
}

// Sensor size from Prophesee header keys: "geometry WxH", "format EVT3;height=H;width=W",
// "Width"/"Height" (DAT), or else inferred from the camera plugin name.
Geometry prophesee_geometry(const std::vector<std::string>& header) {
    Geometry g;
    std::string plugin;
    for (const auto& line : header) {
        const auto [key, value] = split_key_value(line);
        if (key == "geometry") {
            const auto xpos = value.find('x');
            if (xpos != std::string::npos) {
                g.width = parse_uint(value.substr(0, xpos));
                g.height = parse_uint(value.substr(xpos + 1));
            }
        } else if (key == "format") {
            std::size_t pos = 0;
            while ((pos = value.find(';', pos)) != std::string::npos) {
                ++pos;
                const auto end = value.find(';', pos);
                const auto item = value.substr(pos, end - pos);
                if (item.rfind("width=", 0) == 0) g.width = parse_uint(item.substr(6));
                if (item.rfind("height=", 0) == 0) g.height = parse_uint(item.substr(7));
            }
        } else if (key == "Width" || key == "width") {
            g.width = parse_uint(value);
        } else if (key == "Height" || key == "height") {
            g.height = parse_uint(value);
        } else if (key == "plugin_name") {
            plugin = value;
        }
    }
    if (!g.known() && !plugin.empty()) {
        if (plugin.find("gen4") != std::string::npos || plugin.find("imx636") != std::string::npos)
            g = {1280, 720};
        else if (plugin.find("gen3") != std::string::npos)
            g = {640, 480};
    }
    return g.known() ? g : Geometry{};
}

// Which RAW event encoding a header names: 2 (EVT 2.0), 21 (EVT 2.1) or 3 (EVT 3.0), 0 when it
// does not say, -1 for another one.
int raw_version(const std::vector<std::string>& header) {
    for (const auto& line : header) {
        const auto [key, value] = split_key_value(line);
        if (key == "evt") {
            if (value == "2.0") return 2;
            if (value == "2.1") return 21;
            if (value == "3.0") return 3;
            return -1;
        }
        if (key == "format") {
            if (value.rfind("EVT21", 0) == 0) return 21;
            if (value.rfind("EVT2", 0) == 0) return 2;
            if (value.rfind("EVT3", 0) == 0) return 3;
            return -1;
        }
    }
    return 0;
}

// EVT 2.1 word order: OpenEB's "EVT21;…;endianness=legacy" (the IMX636's order: the 32 bits
// holding type, time, x and y first, the 32 valid bits second) — also taken for the older
// `% evt 2.1` header key, which those sensors wrote — or else the plain little-endian 64-bit
// word (valid bits in the low half).
bool evt21_legacy(const std::vector<std::string>& header) {
    for (const auto& line : header) {
        const auto [key, value] = split_key_value(line);
        if (key == "format") return value.find("endianness=legacy") != std::string::npos;
        if (key == "evt") return value == "2.1";
    }
    return false;
}

bool has_raw_keys(const std::vector<std::string>& header) {
    for (const auto& line : header) {
        const auto key = split_key_value(line).first;
        if (key == "plugin_name" || key == "integrator_name" || key == "serial_number" ||
            key == "system_ID" || key == "camera_integrator_name")
            return true;
    }
    return false;
}

// Probe for RAW files: the header must name the wanted version (or, without a version key,
// carry camera keys; such files are EVT 2.0 unless the plugin is a Gen4 one).
int probe_raw(std::span<const std::uint8_t> head, int wanted) {
    if (head.empty() || head[0] != '%') return 0;
    const auto header = probe_text_header(head, '%');
    const int v = raw_version(header);
    if (v == wanted) return 90;
    if (v != 0 || !has_raw_keys(header)) return 0;
    const auto g = prophesee_geometry(header);
    const int guess = g.width == 1280 ? 3 : 2;
    return guess == wanted ? 40 : 0;
}

void apply_geometry(Geometry& g, const std::vector<std::string>& header, const ReaderOptions& opt) {
    if (!opt.geometry.known()) g = prophesee_geometry(header);
}

// ---------------------------------------------------------------------------------------------
// EVT 2.0: 32-bit little-endian words, type in bits 31..28.

class Evt2Reader final : public StreamReader {
  public:
    Evt2Reader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "evt2", opt) {
        const auto header = read_prophesee_header(*src_, 4, 0);
        const int v = raw_version(header);
        if (v != 0 && v != 2)
            throw FileError(source_, src_->offset(),
                            "header names another event encoding (expected '% evt 2.0')");
        apply_geometry(geometry_, header, opt);
    }

    std::size_t read(EventChunk& chunk) override {
        if (geometry_.known())
            return fill(chunk, 4, 1, [this](auto w, Event* out, std::size_t room) {
                return decode<true>(w, out, room);
            });
        return fill(chunk, 4, 1, [this](auto w, Event* out, std::size_t room) {
            return decode<false>(w, out, room);
        });
    }

  private:
    std::string record_name() const override { return "EVT 2.0 word (4 bytes)"; }

    // Words are taken in blocks of 64. A bit mask marks the words that are not a CD event inside
    // the geometry (TIME_HIGH, other types, out-of-range coordinates); the CD events before the
    // first marked word are decoded by one vectorised loop, and only the marked word goes through
    // the exact per-word path, which counts skips and violations at their offsets.
    static constexpr std::size_t block = 64;

    template <bool CheckXY>
    std::pair<std::size_t, std::size_t> decode(std::span<const std::uint8_t> w, Event* out,
                                               std::size_t room) {
        const std::size_t words = std::min(w.size() / 4, room);
        const std::uint8_t* p = w.data();
        std::size_t i = 0;
        std::size_t n = 0;  // n <= i: a word makes at most one event, so a block of slots is free
        while (words - i >= block) {
            if (!has_time_) [[unlikely]] {
                n += decode_exact<CheckXY>(p, i, i + 1, out + n);
                ++i;
                continue;
            }
            const std::uint64_t marked = marked_words<CheckXY>(p + 4 * i);
            decode_cd(p + 4 * i, out + n);
            const std::size_t clean =
                marked == 0 ? block : static_cast<std::size_t>(__builtin_ctzll(marked));
            n += clean;
            i += clean;
            if (clean < block) {
                n += decode_exact<CheckXY>(p, i, i + 1, out + n);
                ++i;
            }
        }
        n += decode_exact<CheckXY>(p, i, words, out + n);
        return {words * 4, n};
    }

    // Bit j set: word j of the block is not a CD event (type 0/1) with x, y inside the geometry.
    template <bool CheckXY>
    std::uint64_t marked_words(const std::uint8_t* q) const noexcept {
        const std::uint32_t width = geometry_.width;
        const std::uint32_t height = geometry_.height;
        std::uint64_t marked = 0;
        for (std::size_t j = 0; j < block; ++j) {
            const std::uint32_t word = load_le32(q + 4 * j);
            std::uint64_t bad = (word >> 29) != 0;
            if constexpr (CheckXY)
                bad |= (((word >> 11) & 2047) >= width) | ((word & 2047) >= height);
            marked |= bad << j;
        }
        return marked;
    }

    // All words of a block as CD events at the current TIME_HIGH (the caller counts the valid
    // prefix).
    void decode_cd(const std::uint8_t* __restrict q, Event* __restrict out) const noexcept {
        const auto high = static_cast<std::uint64_t>(time_high_);
        EventWord* o = event_words(out);
        for (std::size_t j = 0; j < block; ++j) {
            const std::uint64_t a = load_le32(q + 4 * j);
            o[2 * j] = high | ((a >> 22) & 63);
            o[2 * j + 1] = ((a >> 11) & 2047) | ((a & 2047) << 16) | ((a >> 28) << 32);
        }
    }

    // Words [begin, end) one at a time, with every check; returns the events written.
    template <bool CheckXY>
    std::size_t decode_exact(const std::uint8_t* p, std::size_t begin, std::size_t end,
                             Event* out) {
        const std::uint32_t width = geometry_.width;
        const std::uint32_t height = geometry_.height;
        std::int64_t time_high = time_high_;
        bool has_time = has_time_;
        std::size_t n = 0;
        for (std::size_t i = begin; i < end; ++i) {
            const std::uint32_t word = load_le32(p + 4 * i);
            const std::uint32_t type = word >> 28;
            if (type < 2) [[likely]] {
                const Event e{time_high | ((word >> 22) & 63),
                              static_cast<std::uint16_t>((word >> 11) & 2047),
                              static_cast<std::uint16_t>(word & 2047),
                              static_cast<std::uint8_t>(type)};
                out[n] = e;
                bool ok = has_time;
                if constexpr (CheckXY) ok = ok && e.x < width && e.y < height;
                if (ok) [[likely]] {
                    ++n;
                } else {
                    reject(has_time, i);
                }
            } else if (type == 8) {
                const std::int64_t next = static_cast<std::int64_t>(word & 0x0FFFFFFF) << 6;
                if (next < time_high && has_time) [[unlikely]]
                    violation(Violation::time_backwards, src_->offset() + std::int64_t(4 * i));
                time_high = next;
                has_time = true;
            } else {
                other(type, i);
            }
        }
        time_high_ = time_high;
        has_time_ = has_time;
        return n;
    }

    [[gnu::noinline, gnu::cold]] void reject(bool has_time, std::size_t i) {
        if (!has_time)
            skip("events before the first TIME_HIGH");
        else
            violation(Violation::coordinate_out_of_range, src_->offset() + std::int64_t(4 * i));
    }

    [[gnu::noinline]] void other(std::uint32_t type, std::size_t i) {
        switch (type) {
            case 0xA:
                skip("EXT_TRIGGER words");
                break;
            case 0xE:
                skip("OTHERS words");
                break;
            case 0xF:
                skip("CONTINUED words");
                break;
            default:
                violation(Violation::unknown_word, src_->offset() + std::int64_t(4 * i));
        }
    }

    std::int64_t time_high_ = 0;
    bool has_time_ = false;
};

// ---------------------------------------------------------------------------------------------
// EVT 2.1: 64-bit words, type in bits 63..60. EVT_NEG/EVT_POS (0/1): 6 time bits 59..54, x
// 53..43, y 42..32 and 32 valid bits 31..0, one event at (x + k, y) per set bit k; TIME_HIGH
// (8): time bits 33..6 in bits 59..32; EXT_TRIGGER (0xA), OTHERS (0xE), CONTINUED (0xF).

class Evt21Reader final : public StreamReader {
  public:
    Evt21Reader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "evt21", opt) {
        const auto header = read_prophesee_header(*src_, 8, 0);
        const int v = raw_version(header);
        if (v != 0 && v != 21)
            throw FileError(source_, src_->offset(),
                            "header names another event encoding (expected '% evt 2.1' or "
                            "'% format EVT21')");
        legacy_ = evt21_legacy(header);
        apply_geometry(geometry_, header, opt);
    }

    std::size_t read(EventChunk& chunk) override {
        if (geometry_.known())
            return fill(chunk, 8, 32, [this](auto w, Event* out, std::size_t room) {
                return decode<true>(w, out, room);
            });
        return fill(chunk, 8, 32, [this](auto w, Event* out, std::size_t room) {
            return decode<false>(w, out, room);
        });
    }

  private:
    std::string record_name() const override { return "EVT 2.1 word (8 bytes)"; }

    template <bool CheckXY>
    std::pair<std::size_t, std::size_t> decode(std::span<const std::uint8_t> w, Event* out,
                                               std::size_t room) {
        const std::size_t words = std::min(w.size() / 8, room / 32);
        const std::uint8_t* p = w.data();
        const std::uint32_t width = geometry_.width;
        const std::uint32_t height = geometry_.height;
        const int rotate = legacy_ ? 32 : 0;
        std::size_t n = 0;
        for (std::size_t i = 0; i < words; ++i) {
            const std::uint64_t raw = load_le64(p + 8 * i);
            const std::uint64_t word = rotate ? (raw >> 32) | (raw << 32) : raw;
            const auto type = static_cast<std::uint32_t>(word >> 60);
            if (type < 2) [[likely]] {
                auto valid = static_cast<std::uint32_t>(word);
                const auto x = static_cast<std::uint32_t>((word >> 43) & 2047);
                const auto y = static_cast<std::uint32_t>((word >> 32) & 2047);
                if (!has_time_) [[unlikely]] {
                    skip("events before the first TIME_HIGH",
                         static_cast<std::uint64_t>(__builtin_popcount(valid)));
                    continue;
                }
                const std::int64_t t = time_high_ | static_cast<std::int64_t>((word >> 54) & 63);
                const std::uint64_t yp = pack_xyp(0, y, type);
                if (CheckXY && (y >= height || x + 32 > width)) [[unlikely]] {
                    n += decode_edge(t, x, y, type, valid, i, out + n);
                    continue;
                }
                // Most vectors hold one or two events: both slots are written without a branch
                // (a word has 32 free slots; an unset bit writes a slot that is not counted),
                // and only fuller vectors loop over the rest.
                const auto count = static_cast<std::size_t>(__builtin_popcount(valid));
                const std::uint32_t rest = valid & (valid - 1);
                store_event(out + n, t, yp | (x + first_bit(valid)));
                store_event(out + n + 1, t, yp | (x + first_bit(rest)));
                if (count > 2) [[unlikely]] {
                    std::uint32_t more = rest & (rest - 1);
                    for (std::size_t k = n + 2; more != 0; ++k, more &= more - 1)
                        store_event(out + k, t, yp | (x + first_bit(more)));
                }
                n += count;
            } else if (type == 8) {
                const std::int64_t next = static_cast<std::int64_t>((word >> 32) & 0x0FFFFFFF) << 6;
                if (next < time_high_ && has_time_) [[unlikely]]
                    violation(Violation::time_backwards, src_->offset() + std::int64_t(8 * i));
                time_high_ = next;
                has_time_ = true;
            } else {
                other(type, i);
            }
        }
        return {words * 8, n};
    }

    // A vector at the border of the geometry: each event checked on its own.
    [[gnu::noinline]] std::size_t decode_edge(std::int64_t t, std::uint32_t x, std::uint32_t y,
                                              std::uint32_t p, std::uint32_t valid, std::size_t i,
                                              Event* out) {
        std::size_t n = 0;
        while (valid != 0) {
            const std::uint32_t xk = x + static_cast<std::uint32_t>(__builtin_ctz(valid));
            valid &= valid - 1;
            if (xk < geometry_.width && y < geometry_.height)
                store_event(out + n++, t, pack_xyp(xk, y, p));
            else
                violation(Violation::coordinate_out_of_range, src_->offset() + std::int64_t(8 * i));
        }
        return n;
    }

    // Index of the lowest set bit; 31 for no bit (the caller does not count that slot).
    static std::uint32_t first_bit(std::uint32_t bits) noexcept {
        return static_cast<std::uint32_t>(__builtin_ctz(bits | 0x80000000u));
    }

    [[gnu::noinline]] void other(std::uint32_t type, std::size_t i) {
        switch (type) {
            case 0xA:
                skip("EXT_TRIGGER words");
                break;
            case 0xE:
                skip("OTHERS words");
                break;
            case 0xF:
                skip("CONTINUED words");
                break;
            default:
                violation(Violation::unknown_word, src_->offset() + std::int64_t(8 * i));
        }
    }

    bool legacy_ = false;
    std::int64_t time_high_ = 0;
    bool has_time_ = false;
};

// ---------------------------------------------------------------------------------------------
// EVT 3.0: 16-bit little-endian words, type in bits 15..12, stateful (y, base x, time).

class Evt3Reader final : public StreamReader {
  public:
    Evt3Reader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "evt3", opt) {
        const auto header = read_prophesee_header(*src_, 2, 0);
        const int v = raw_version(header);
        if (v != 0 && v != 3)
            throw FileError(source_, src_->offset(),
                            "header names another event encoding (expected '% evt 3.0')");
        apply_geometry(geometry_, header, opt);
    }

    std::size_t read(EventChunk& chunk) override {
        if (geometry_.known())
            return fill(chunk, 2, 12, [this](auto w, Event* out, std::size_t room) {
                return decode<true>(w, out, room);
            });
        return fill(chunk, 2, 12, [this](auto w, Event* out, std::size_t room) {
            return decode<false>(w, out, room);
        });
    }

  private:
    std::string record_name() const override { return "EVT 3.0 word (2 bytes)"; }

#ifdef EVFORMER_EVT3_AVX512
    // Words are taken in groups of 16 with AVX-512: the y and TIME_LOW each word sees are prefix
    // scans of the ADDR_Y and TIME_LOW words, the ADDR_X events are compressed and widened to
    // 16-byte events in registers, and only VECT_BASE_X and vector words are walked one by one.
    // A group with a TIME_HIGH, a skipped or unknown word, a coordinate outside the geometry, or
    // before the first TIME_HIGH goes through the exact per-word path, which counts skips and
    // violations at their offsets.
    static constexpr std::size_t group = 16;
    static constexpr std::size_t faulty = ~std::size_t{0};

    template <bool CheckXY>
    std::pair<std::size_t, std::size_t> decode(std::span<const std::uint8_t> w, Event* out,
                                               std::size_t room) {
        const std::size_t words = w.size() / 2;
        const std::uint8_t* p = w.data();
        std::size_t i = 0;
        std::size_t n = 0;
        // Each word emits at most 12 events (and a group writes 16 slots past its ADDR_X events).
        while (words - i >= group && room - n >= 12 * group + 16) {
            const std::size_t made = state_.has_time && !state_.em_row && state_.t >= state_.t_last
                                         ? decode_group<CheckXY>(p + 2 * i, out + n)
                                         : faulty;
            n += made != faulty ? made : decode_exact<CheckXY>(p, i, i + group, out + n);
            i += group;
        }
        const std::size_t tail = std::min(words - i, (room - n) / 12);
        n += decode_exact<CheckXY>(p, i, i + tail, out + n);
        return {(i + tail) * 2, n};
    }

    // For each lane, the value of the last lane at or before it whose bit is set in `set`, or
    // `carry` when there is none (a log-step scan).
    static __m512i last_set(__m512i value, __mmask16 set, std::uint32_t carry) {
        const __m512i fill = _mm512_set1_epi32(static_cast<int>(carry));
        __m512i v = _mm512_mask_blend_epi32(set, fill, value);
        __mmask16 m = set;
        // Lanes below the shift read `fill`; they count as set (the carry is known).
        v = _mm512_mask_blend_epi32(m, _mm512_alignr_epi32(v, fill, 15), v);
        m = static_cast<__mmask16>(m | (m << 1) | 0x1);
        v = _mm512_mask_blend_epi32(m, _mm512_alignr_epi32(v, fill, 14), v);
        m = static_cast<__mmask16>(m | (m << 2) | 0x3);
        v = _mm512_mask_blend_epi32(m, _mm512_alignr_epi32(v, fill, 12), v);
        m = static_cast<__mmask16>(m | (m << 4) | 0xF);
        v = _mm512_mask_blend_epi32(m, _mm512_alignr_epi32(v, fill, 8), v);
        return v;
    }

    static std::uint32_t lane(__m512i v, int k) {
        return static_cast<std::uint32_t>(_mm_cvtsi128_si32(
            _mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_set1_epi32(k), v))));
    }

    // One group of 16 words from state_ (which must have a time): returns the events written and
    // commits the state, or returns `faulty` and leaves state_ untouched.
    template <bool CheckXY>
    std::size_t decode_group(const std::uint8_t* q, Event* out) {
        const __m512i word =
            _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
        const __m512i type = _mm512_srli_epi32(word, 12);
        const auto is = [&](int t) { return _mm512_cmpeq_epi32_mask(type, _mm512_set1_epi32(t)); };
        const __mmask16 m_y = is(0), m_x = is(2), m_base = is(3), m_v12 = is(4), m_v8 = is(5),
                        m_low = is(6);
        const __mmask16 known = static_cast<__mmask16>(m_y | m_x | m_base | m_v12 | m_v8 | m_low);
        if (known != 0xFFFF) return faulty;  // TIME_HIGH, EM row, skipped or unknown words

        const __m512i v11 = _mm512_and_si512(word, _mm512_set1_epi32(0x7FF));
        const __m512i ys = last_set(v11, m_y, state_.y);
        const __m512i v12 = _mm512_and_si512(word, _mm512_set1_epi32(0xFFF));
        const __m512i lows = last_set(v12, m_low, state_.time_low);
        // A TIME_LOW below the one before it runs time backwards: the per-word path counts it.
        const __m512i before =
            _mm512_alignr_epi32(lows, _mm512_set1_epi32(int(state_.time_low)), 15);
        if (_mm512_mask_cmplt_epu32_mask(m_low, v12, before) != 0) return faulty;
        if constexpr (CheckXY) {
            const __mmask16 out_of_range = static_cast<__mmask16>(
                _mm512_mask_cmpge_epu32_mask(m_x, v11, _mm512_set1_epi32(int(geometry_.width))) |
                _mm512_mask_cmpge_epu32_mask(m_x, ys, _mm512_set1_epi32(int(geometry_.height))));
            if (out_of_range != 0) return faulty;
        }

        // ADDR_X events: xy = x | y << 16; lp = TIME_LOW | p << 16 (p = bit 11).
        const __m512i xy = _mm512_or_si512(v11, _mm512_slli_epi32(ys, 16));
        const __m512i lp = _mm512_or_si512(
            lows, _mm512_and_si512(_mm512_slli_epi32(word, 5), _mm512_set1_epi32(0x10000)));
        const __m512i base = _mm512_set1_epi64(state_.high_base);
        const __m512i lo_idx = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
        const __m512i hi_idx = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
        // Writes the ADDR_X events of the lanes in `lanes`, in order, as 16 slots at dst.
        const auto widen = [&](__m256i xy8, __m256i lp8, Event* dst) {  // 8 events
            const __m512i lp64 = _mm512_cvtepu32_epi64(lp8);
            const __m512i hi = _mm512_or_si512(_mm512_cvtepu32_epi64(xy8),
                                               _mm512_slli_epi64(_mm512_srli_epi64(lp64, 16), 32));
            const __m512i t =
                _mm512_add_epi64(base, _mm512_and_si512(lp64, _mm512_set1_epi64(0xFFF)));
            _mm512_storeu_si512(dst, _mm512_permutex2var_epi64(t, lo_idx, hi));
            _mm512_storeu_si512(dst + 4, _mm512_permutex2var_epi64(t, hi_idx, hi));
        };
        const auto emit_x = [&](__mmask16 lanes, Event* dst) {
            const __m512i cxy = _mm512_maskz_compress_epi32(lanes, xy);
            const __m512i clp = _mm512_maskz_compress_epi32(lanes, lp);
            widen(_mm512_castsi512_si256(cxy), _mm512_castsi512_si256(clp), dst);
            widen(_mm512_extracti64x4_epi64(cxy, 1), _mm512_extracti64x4_epi64(clp, 1), dst + 8);
        };
        emit_x(m_x, out);

        // VECT_BASE_X and vector words in order; VECT_BASE_X alone sets the vector polarity. A
        // vector with events is placed after the ADDR_X events before it, and the ADDR_X events
        // after it are written again behind its events.
        const std::uint32_t width = geometry_.width;
        const std::uint32_t height = geometry_.height;
        const std::uint32_t m_pol = m_base;
        std::uint32_t walk = static_cast<std::uint32_t>(m_base | m_v12 | m_v8);
        std::uint32_t pending = m_x;  // ADDR_X lanes not yet placed for good
        std::uint32_t base_x = state_.base_x;
        std::size_t n = 0;
        std::uint32_t bad = 0;
        while (walk != 0) {
            const int k = __builtin_ctz(walk);
            walk &= walk - 1;
            const std::uint32_t wk = load_le16(q + 2 * k);
            if ((wk >> 12) == 3) {
                base_x = wk & 0x7FF;
                continue;
            }
            std::uint32_t mask = wk & ((wk >> 12) == 4 ? 0xFFFu : 0xFFu);
            if (mask != 0) {
                const std::uint32_t below = (1u << k) - 1;
                n += static_cast<std::size_t>(__builtin_popcount(pending & below));
                pending &= ~below;
                const std::uint32_t pol_from = m_pol & below;
                const std::uint32_t p =
                    pol_from != 0 ? (load_le16(q + 2 * (31 - __builtin_clz(pol_from))) >> 11) & 1
                                  : state_.vect_pol;
                const std::uint32_t y = lane(ys, k);
                const std::int64_t t = state_.high_base + lane(lows, k);
                const std::uint64_t yp = pack_xyp(0, y, p);
                while (mask != 0) {
                    const std::uint32_t x =
                        base_x + static_cast<std::uint32_t>(__builtin_ctz(mask));
                    store_event(out + n, t, yp | (x & 0xFFFF));
                    if constexpr (CheckXY) bad |= (x >= width) | (y >= height);
                    ++n;
                    mask &= mask - 1;
                }
                if (pending != 0) emit_x(static_cast<__mmask16>(pending), out + n);
            }
            base_x += (wk >> 12) == 4 ? 12 : 8;
        }
        if (bad != 0) return faulty;
        n += static_cast<std::size_t>(__builtin_popcount(pending));
        state_.y = static_cast<std::uint16_t>(lane(ys, 15));
        state_.time_low = lane(lows, 15);
        state_.t = state_.high_base + state_.time_low;
        if (n > 0) state_.t_last = out[n - 1].t;
        state_.base_x = base_x;
        if (m_pol != 0)
            state_.vect_pol = static_cast<std::uint8_t>(
                (load_le16(q + 2 * (31 - __builtin_clz(m_pol))) >> 11) & 1);
        return n;
    }
#else
    template <bool CheckXY>
    std::pair<std::size_t, std::size_t> decode(std::span<const std::uint8_t> w, Event* out,
                                               std::size_t room) {
        // Each word emits at most 12 events, so this many words always fit.
        const std::size_t words = std::min(w.size() / 2, room / 12);
        return {words * 2, decode_exact<CheckXY>(w.data(), 0, words, out)};
    }
#endif

    // Words [begin, end) one at a time, with every check; returns the events written.
    template <bool CheckXY>
    std::size_t decode_exact(const std::uint8_t* p, std::size_t begin, std::size_t end,
                             Event* out) {
        const std::uint32_t width = geometry_.width;
        const std::uint32_t height = geometry_.height;
        State s = state_;
        std::size_t n = 0;
        auto emit = [&](std::uint32_t x, std::uint32_t pol, std::size_t i) {
            if (s.has_time) {
                if (s.t < s.t_last) [[unlikely]]
                    violation(Violation::time_backwards, src_->offset() + std::int64_t(2 * i));
                s.t_last = s.t;
            }
            const Event e{s.t, static_cast<std::uint16_t>(x), s.y, static_cast<std::uint8_t>(pol)};
            out[n] = e;
            bool ok = s.has_time;
            if constexpr (CheckXY) ok = ok && x < width && s.y < height;
            if (ok) [[likely]] {
                ++n;
            } else {
                reject(s.has_time, i);
            }
        };
        for (std::size_t i = begin; i < end; ++i) {
            const std::uint32_t word = load_le16(p + 2 * i);
            const std::uint32_t type = word >> 12;
            // Address words of an EM row (opened by type 0x1) are not CD events.
            if (s.em_row && type >= 0x2 && type <= 0x5) [[unlikely]] {
                skip("address words of EM rows");
                continue;
            }
            switch (type) {
                case 0x0:
                    s.y = static_cast<std::uint16_t>(word & 0x7FF);
                    s.em_row = false;
                    break;
                case 0x1:
                    s.em_row = true;
                    skip("EM rows (type 0x1 words)");
                    break;
                case 0x2:
                    emit(word & 0x7FF, (word >> 11) & 1, i);
                    break;
                case 0x3:
                    s.vect_pol = static_cast<std::uint8_t>((word >> 11) & 1);
                    s.base_x = word & 0x7FF;
                    break;
                case 0x4:
                case 0x5: {
                    const bool v12 = type == 0x4;
                    std::uint32_t mask = word & (v12 ? 0xFFFu : 0xFFu);
                    while (mask != 0) {
                        emit(s.base_x + static_cast<std::uint32_t>(__builtin_ctz(mask)), s.vect_pol,
                             i);
                        mask &= mask - 1;
                    }
                    s.base_x += v12 ? 12 : 8;
                    break;
                }
                case 0x6:
                    time_low(s, word & 0xFFF);
                    break;
                case 0x8:
                    time_high(s, word & 0xFFF);
                    break;
                default:
                    other(type, i);
            }
        }
        state_ = s;
        return n;
    }

    struct State {
        std::int64_t t = 0;
        std::int64_t high_base = 0;  // loops·2²⁴ + time_high·2¹²
        std::int64_t loops = 0;
        std::uint32_t time_high = 0;
        std::uint32_t time_low = 0;
        std::uint32_t base_x = 0;
        std::uint16_t y = 0;
        std::uint8_t vect_pol = 0;  // polarity of vector words, set by VECT_BASE_X only
        // Time of the last event stamped: an event below it is a time_backwards violation
        // (time words alone may fall and rise again — real streams repeat a TIME_HIGH and then
        // restore the time with a TIME_LOW — without any event seeing it).
        std::int64_t t_last = std::numeric_limits<std::int64_t>::min();
        bool has_time = false;
        bool em_row = false;  // inside a row opened by a type 0x1 (EM) word
    };

    // TIME_LOW: the low 12 bits within the current TIME_HIGH period (used as sent).
    static void time_low(State& s, std::uint32_t value) {
        s.time_low = value;
        s.t = s.high_base + value;
    }

    // TIME_HIGH: 12 bits of time above TIME_LOW, starting its period at TIME_LOW 0 (as OpenEB's
    // decoders do). The 24-bit counter loops when TIME_HIGH falls by at least half its range
    // (2048); any other fall of the time (a smaller fall, or the same TIME_HIGH again after a
    // TIME_LOW above 0) is a violation at the first event stamped with it.
    static void time_high(State& s, std::uint32_t value) {
        if (s.has_time && value < s.time_high && s.time_high - value >= 2048) [[unlikely]]
            s.loops += std::int64_t{1} << 24;
        s.time_high = value;
        s.high_base = s.loops + (std::int64_t{value} << 12);
        s.time_low = 0;
        s.t = s.high_base;
        s.has_time = true;
    }

    [[gnu::noinline, gnu::cold]] void reject(bool has_time, std::size_t i) {
        if (!has_time)
            skip("events before the first TIME_HIGH");
        else
            violation(Violation::coordinate_out_of_range, src_->offset() + std::int64_t(2 * i));
    }

    [[gnu::noinline]] void other(std::uint32_t type, std::size_t i) {
        switch (type) {
            case 0xA:
                skip("EXT_TRIGGER words");
                break;
            case 0xE:
                skip("OTHERS words");
                break;
            case 0x7:
            case 0xF:
                skip("CONTINUED words");
                break;
            default:
                violation(Violation::unknown_word, src_->offset() + std::int64_t(2 * i));
        }
    }

    State state_;
};

// What a DAT event type other than CD holds, for messages.
const char* dat_type_name(std::uint8_t type) {
    return type == 0x0E ? " (external-trigger events)" : "";
}

// ---------------------------------------------------------------------------------------------
// DAT: '%' header, then event type and size bytes, then 8-byte records (u32 t, u32 address).

class DatReader final : public StreamReader {
  public:
    DatReader(std::unique_ptr<ByteSource> src, const ReaderOptions& opt)
        : StreamReader(std::move(src), "dat", opt) {
        const auto header = read_prophesee_header(*src_, 8, 2);
        apply_geometry(geometry_, header, opt);
        if (!src_->ensure(2)) throw_truncated(*src_, "DAT event type/size bytes");
        const auto type = src_->window()[0];
        const auto size = src_->window()[1];
        if (type != 0x00 && type != 0x0C)
            throw FileError(source_, src_->offset(),
                            fmt::format("DAT event type 0x{:02x}{} is not read (only CD events, "
                                        "type 0x00 or 0x0c)",
                                        int(type), dat_type_name(type)));
        if (size != 8)
            throw FileError(source_, src_->offset() + 1,
                            fmt::format("DAT event size {} (expected 8)", int(size)));
        src_->consume(2);
    }

    std::size_t read(EventChunk& chunk) override {
        if (geometry_.known())
            return fill(chunk, 8, 1, [this](auto w, Event* out, std::size_t room) {
                return decode<true>(w, out, room);
            });
        return fill(chunk, 8, 1, [this](auto w, Event* out, std::size_t room) {
            return decode<false>(w, out, room);
        });
    }

  private:
    std::string record_name() const override { return "DAT event (8 bytes)"; }

    // Records are decoded in blocks: a block whose times do not fall and whose polarities and
    // coordinates are all valid (the common case) is one straight, vectorisable loop; any other
    // block goes through the exact per-record path, which counts each fault at its offset.
    static constexpr std::size_t block = 64;

    template <bool CheckXY>
    std::pair<std::size_t, std::size_t> decode(std::span<const std::uint8_t> w, Event* out,
                                               std::size_t room) {
        const std::size_t records = std::min(w.size() / 8, room);
        const std::uint8_t* p = w.data();
        std::size_t i = 0;
        std::size_t n = 0;
        for (; records - i >= block; i += block) {
            if (block_is_clean<CheckXY>(p + 8 * i)) [[likely]] {
                decode_clean(p + 8 * i, out + n);
                n += block;
            } else {
                n += decode_exact<CheckXY>(p, i, i + block, out + n);
            }
        }
        n += decode_exact<CheckXY>(p, i, records, out + n);
        return {records * 8, n};
    }

    // True when the block's times never fall (so no wrap or violation), every polarity is 0/1
    // and every coordinate lies inside the geometry: a branch-free reduction over the block.
    template <bool CheckXY>
    bool block_is_clean(const std::uint8_t* q) const noexcept {
        const std::uint32_t width = geometry_.width;
        const std::uint32_t height = geometry_.height;
        std::uint32_t bad = load_le32(q) < last_;
        for (std::size_t j = 1; j < block; ++j)
            bad |= load_le32(q + 8 * j) < load_le32(q + 8 * j - 8);
        for (std::size_t j = 0; j < block; ++j) {
            const std::uint32_t a = load_le32(q + 8 * j + 4);
            bad |= (a >> 28) > 1;
            if constexpr (CheckXY)
                bad |= ((a & 0x3FFF) >= width) | (((a >> 14) & 0x3FFF) >= height);
        }
        return bad == 0;
    }

    void decode_clean(const std::uint8_t* __restrict q, Event* __restrict out) noexcept {
        // Word pairs: t = epoch + ts; x | y << 16 | p << 32 moved out of the packed address.
        const auto epoch = static_cast<std::uint64_t>(epoch_);
        EventWord* o = event_words(out);
        for (std::size_t j = 0; j < block; ++j) {
            const std::uint64_t ts = load_le32(q + 8 * j);
            const std::uint64_t a = load_le32(q + 8 * j + 4);
            o[2 * j] = epoch + ts;
            o[2 * j + 1] = (a & 0x3FFF) | ((a << 2) & 0x3FFF0000) | ((a << 4) & 0xF00000000);
        }
        last_ = load_le32(q + 8 * (block - 1));
    }

    // Records [begin, end) one at a time, with every check; returns the events written.
    template <bool CheckXY>
    std::size_t decode_exact(const std::uint8_t* p, std::size_t begin, std::size_t end,
                             Event* out) {
        const std::uint32_t width = geometry_.width;
        const std::uint32_t height = geometry_.height;
        std::uint32_t last = last_;
        std::int64_t epoch = epoch_;
        std::size_t n = 0;
        for (std::size_t i = begin; i < end; ++i) {
            const std::uint32_t ts = load_le32(p + 8 * i);
            const std::uint32_t a = load_le32(p + 8 * i + 4);
            if (ts < last) [[unlikely]]
                epoch = backwards(ts, last, epoch, i);
            last = ts;
            const std::uint32_t pv = a >> 28;
            const Event e{epoch + ts, static_cast<std::uint16_t>(a & 0x3FFF),
                          static_cast<std::uint16_t>((a >> 14) & 0x3FFF),
                          static_cast<std::uint8_t>(pv != 0)};
            out[n] = e;
            bool ok = pv <= 1;
            if constexpr (CheckXY) ok = ok && e.x < width && e.y < height;
            if (ok) [[likely]] {
                ++n;
            } else {
                n += reject(e, pv, i);
            }
        }
        last_ = last;
        epoch_ = epoch;
        return n;
    }

    // A 32-bit timestamp that falls by more than half its range has wrapped; a smaller fall is a
    // violation (the event is kept).
    [[gnu::noinline]] std::int64_t backwards(std::uint32_t ts, std::uint32_t last,
                                             std::int64_t epoch, std::size_t i) {
        if (last - ts > 0x80000000u) return epoch + (std::int64_t{1} << 32);
        violation(Violation::time_backwards, src_->offset() + std::int64_t(8 * i));
        return epoch;
    }

    [[gnu::noinline, gnu::cold]] std::size_t reject(const Event& e, std::uint32_t pv,
                                                    std::size_t i) {
        const auto at = src_->offset() + std::int64_t(8 * i);
        if (geometry_.known() && (e.x >= geometry_.width || e.y >= geometry_.height)) {
            violation(Violation::coordinate_out_of_range, at);
            return 0;
        }
        if (pv > 1) violation(Violation::bad_polarity, at);
        return 1;
    }

    std::uint32_t last_ = 0;
    std::int64_t epoch_ = 0;
};

// A `%` header without RAW keys, then an event type byte and the event size 8. Types other
// than CD are recognised too, so that the reader names them.
int probe_dat(std::span<const std::uint8_t> head) {
    if (head.empty() || head[0] != '%') return 0;
    bool ambiguous = false, unterminated = false;
    const auto h = scan_prophesee_header(head, false, -1, 8, 2, &ambiguous, &unterminated);
    if (unterminated || raw_version(h.lines) != 0 || has_raw_keys(h.lines)) return 0;
    const std::size_t end = h.bytes;
    if (end + 2 > head.size() || head[end + 1] != 8) return 0;
    return head[end] == 0 || head[end] == 0x0C ? 80 : 60;
}

// ---------------------------------------------------------------------------------------------
// EVT 2.0 writer

class Evt2Writer final : public EventWriter {
  public:
    Evt2Writer(const std::filesystem::path& path, const WriterOptions& opt)
        : file_(path), path_(path.string()), geometry_(opt.geometry) {
        std::string header = "% evt 2.0\n";
        if (geometry_.known())
            header +=
                fmt::format("% format EVT2;height={};width={}\n% geometry {}x{}\n",
                            geometry_.height, geometry_.width, geometry_.width, geometry_.height);
        header += "% end\n";
        file_.write(header.data(), header.size());
        words_.reserve(1 << 16);
    }

    void write(std::span<const Event> events) override {
        for (const auto& e : events) {
            if (e.t < last_t_ || e.t >= (std::int64_t{1} << 34))
                throw ConfigError(
                    fmt::format("{}: event time {} µs cannot be written as EVT 2.0 (times must not "
                                "decrease and must lie in 0..2^34)",
                                path_, e.t));
            const std::uint32_t limit_x = geometry_.known() ? geometry_.width : 2048;
            const std::uint32_t limit_y = geometry_.known() ? geometry_.height : 2048;
            if (e.x >= limit_x || e.y >= limit_y || e.p > 1)
                throw ConfigError(
                    fmt::format("{}: event (x {}, y {}, p {}) does not fit EVT 2.0 within {}x{}",
                                path_, e.x, e.y, int(e.p), limit_x, limit_y));
            last_t_ = e.t;
            const auto high = static_cast<std::uint32_t>(e.t >> 6);
            if (!has_high_ || high != high_) {
                words_.push_back((0x8u << 28) | high);
                high_ = high;
                has_high_ = true;
            }
            words_.push_back((std::uint32_t{e.p} << 28) |
                             (static_cast<std::uint32_t>(e.t & 63) << 22) |
                             (std::uint32_t{e.x} << 11) | e.y);
            if (words_.size() >= (1 << 16)) flush();
        }
    }

    void finish() override {
        flush();
        file_.commit();
    }

  private:
    void flush() {
        file_.write(words_.data(), words_.size() * 4);
        words_.clear();
    }

    AtomicFile file_;
    std::string path_;
    Geometry geometry_;
    std::vector<std::uint32_t> words_;
    std::int64_t last_t_ = 0;
    std::uint32_t high_ = 0;
    bool has_high_ = false;
};

}  // namespace

EventFormat evt2_format() {
    return stream_format<Evt2Reader>(
        "evt2", "Prophesee RAW, EVT 2.0 (32-bit words)",
        [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
            return probe_raw(head, 2);
        });
}

EventFormat evt21_format() {
    return stream_format<Evt21Reader>(
        "evt21", "Prophesee RAW, EVT 2.1 (64-bit vectorised words)",
        [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
            return probe_raw(head, 21);
        });
}

EventFormat evt3_format() {
    return stream_format<Evt3Reader>(
        "evt3", "Prophesee RAW, EVT 3.0 (16-bit vectorised words)",
        [](std::span<const std::uint8_t> head, const std::filesystem::path&) {
            return probe_raw(head, 3);
        });
}

EventFormat dat_format() {
    return stream_format<DatReader>("dat", "Prophesee DAT (8-byte CD events)",
                                    [](std::span<const std::uint8_t> head,
                                       const std::filesystem::path&) { return probe_dat(head); });
}

EventWriterFormat evt2_writer_format() {
    EventWriterFormat f;
    f.name = "evt2";
    f.extensions = {".raw"};
    f.description = "Prophesee RAW, EVT 2.0";
    f.create = [](const std::filesystem::path& path, const WriterOptions& opt) {
        return std::unique_ptr<EventWriter>(new Evt2Writer(path, opt));
    };
    return f;
}

}  // namespace evformer::io::detail
