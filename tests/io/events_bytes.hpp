// Hand-built byte sequences of every event format, shared by the format and corruption tests.
#pragma once

#include <lz4frame.h>
#include <zstd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace evformer::test {

using Bytes = std::vector<std::uint8_t>;

inline void put_text(Bytes& b, const std::string& s) {
    for (char c : s) b.push_back(static_cast<std::uint8_t>(c));
}
inline void append(Bytes& b, const Bytes& more) {
    for (auto c : more) b.push_back(c);
}
inline void put_le16(Bytes& b, std::uint32_t v) {
    b.push_back(std::uint8_t(v));
    b.push_back(std::uint8_t(v >> 8));
}
inline void put_le32(Bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}
inline void put_le64(Bytes& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}
inline void put_be32(Bytes& b, std::uint32_t v) {
    for (int i = 3; i >= 0; --i) b.push_back(std::uint8_t(v >> (8 * i)));
}

/// EVT 2.0 word: type, 6 low time bits, x, y.
inline std::uint32_t evt2_cd(std::uint32_t type, std::uint32_t t6, std::uint32_t x,
                             std::uint32_t y) {
    return (type << 28) | (t6 << 22) | (x << 11) | y;
}

/// EVT 2.1 CD word: type, 6 low time bits, x, y, 32 valid bits (one event at x + k per bit k).
inline std::uint64_t evt21_cd(std::uint64_t type, std::uint64_t t6, std::uint64_t x,
                              std::uint64_t y, std::uint32_t valid) {
    return (type << 60) | (t6 << 54) | (x << 43) | (y << 32) | valid;
}

/// EVT 2.1 TIME_HIGH word: time bits 33..6.
inline std::uint64_t evt21_time_high(std::uint64_t t28) {
    return (std::uint64_t{8} << 60) | (t28 << 32);
}

/// An EVT 2.1 file: `header`, then 64-bit words in the plain order (little-endian 64-bit) or the
/// legacy order (the upper 32 bits first).
inline Bytes evt21_file(const std::string& header, const std::vector<std::uint64_t>& words,
                        bool legacy) {
    Bytes b;
    put_text(b, header);
    for (auto w : words) {
        if (legacy) {
            put_le32(b, std::uint32_t(w >> 32));
            put_le32(b, std::uint32_t(w));
        } else {
            put_le64(b, w);
        }
    }
    return b;
}

/// An EVT 2.0 file exercising every word type: events before the first TIME_HIGH (skipped),
/// CD ON/OFF, trigger/others/continued (skipped), an unknown type and a backwards TIME_HIGH
/// (violations), and an out-of-range x (violation, dropped). Decodes to 3 events.
inline Bytes evt2_sample() {
    Bytes b;
    put_text(b, "% evt 2.0\n% geometry 640x480\n% end\n");
    put_le32(b, evt2_cd(1, 0, 1, 1));       // before TIME_HIGH: skipped
    put_le32(b, (8u << 28) | 1);            // TIME_HIGH: t = 64
    put_le32(b, evt2_cd(1, 5, 10, 20));     // ON  t 69
    put_le32(b, evt2_cd(0, 63, 639, 479));  // OFF t 127
    put_le32(b, (0xAu << 28) | 7);          // EXT_TRIGGER
    put_le32(b, (0xEu << 28));              // OTHERS
    put_le32(b, (0xFu << 28));              // CONTINUED
    put_le32(b, (0x3u << 28));              // unknown: violation
    put_le32(b, evt2_cd(1, 0, 700, 0));     // x outside 640: violation, dropped
    put_le32(b, (8u << 28) | 0x0FFFFFFF);   // TIME_HIGH max
    put_le32(b, (8u << 28) | 2);            // backwards: violation
    put_le32(b, evt2_cd(0, 1, 3, 4));       // OFF t 129
    return b;
}

/// An EVT 3.0 file exercising every word type, vectors, TIME_HIGH loops (each TIME_HIGH starts
/// its period at TIME_LOW 0), skipped and unknown words.
inline Bytes evt3_sample() {
    Bytes b;
    put_text(b, "% evt 3.0\n% format EVT3;height=720;width=1280\n% end\n");
    put_le16(b, 0x2000 | 5);            // ADDR_X before TIME_HIGH: skipped
    put_le16(b, 0x8000 | 5);            // TIME_HIGH 5
    put_le16(b, 0x6000 | 7);            // TIME_LOW 7: t = 5·4096 + 7 = 20487
    put_le16(b, 0x0000 | 3);            // ADDR_Y 3
    put_le16(b, 0x2000 | 0x800 | 100);  // ADDR_X ON x 100                    → event 1
    put_le16(b, 0x3000 | 200);          // VECT_BASE_X x 200, OFF
    put_le16(b, 0x4000 | 0x805);        // VECT_12: x 200, 202, 211            → events 2–4
    put_le16(b, 0x5000 | 0x01);         // VECT_8 at base 212: x 212           → event 5
    put_le16(b, 0xA000);                // EXT_TRIGGER (skipped)
    put_le16(b, 0xE000);                // OTHERS (skipped)
    put_le16(b, 0x7000);                // CONTINUED_4 (skipped)
    put_le16(b, 0xF000);                // CONTINUED_12 (skipped)
    put_le16(b, 0x9000);                // reserved type: violation
    put_le16(b, 0x8000 | 4095);         // TIME_HIGH 4095
    put_le16(b, 0x8000 | 1);            // falls by 4094: loop, t = 2^24 + 4096 (TIME_LOW 0)
    put_le16(b, 0x2000 | 50);           // OFF x 50                            → event 6
    put_le16(b, 0x6000 | 3);            // TIME_LOW 3: t = 2^24 + 4096 + 3
    put_le16(b, 0x2000 | 51);           //                                     → event 7
    put_le16(b, 0x8000 | 0);            // falls by 1: violation
    put_le16(b, 0x2000 | 1300);         // x beyond 1280: violation, dropped
    return b;
}

/// A DAT file with a 32-bit timestamp wrap, a polarity of 2 (violation, kept as ON) and an
/// out-of-range x (violation, dropped).
inline Bytes dat_sample() {
    Bytes b;
    put_text(b, "% Data file containing CD events.\n% Version 2\n% Width 100\n% Height 50\n");
    b.push_back(0x00);
    b.push_back(0x08);
    auto ev = [&](std::uint32_t t, std::uint32_t x, std::uint32_t y, std::uint32_t p) {
        put_le32(b, t);
        put_le32(b, x | (y << 14) | (p << 28));
    };
    ev(10, 1, 2, 0);
    ev(0xFFFFFF00u, 99, 49, 1);
    ev(0x10, 5, 6, 1);    // wrapped: 2^32 + 16
    ev(0x20, 7, 8, 2);    // bad polarity
    ev(0x30, 100, 8, 0);  // x outside 100
    return b;
}

/// N-MNIST records with one overflow event.
inline Bytes nmnist_sample() {
    Bytes b;
    auto ev = [&](std::uint8_t x, std::uint8_t y, std::uint32_t p, std::uint32_t ts) {
        b.push_back(x);
        b.push_back(y);
        b.push_back(std::uint8_t((p << 7) | (ts >> 16)));
        b.push_back(std::uint8_t(ts >> 8));
        b.push_back(std::uint8_t(ts));
    };
    ev(1, 2, 1, 100);
    ev(33, 33, 0, 0x7FFFFF);
    ev(0, 240, 0, 0);  // overflow
    ev(4, 5, 1, 3);    // t = 2^23 + 3
    return b;
}

/// AEDAT 2.0 with two DVS128 events and one external event.
inline Bytes aedat2_sample() {
    Bytes b;
    put_text(b, "#!AER-DAT2.0\r\n# This is a raw AE data file created by hand\r\n");
    put_be32(b, (5u << 8) | (10u << 1) | 0);  // raw x 10, raw y 5, bit0 0
    put_be32(b, 1000);
    put_be32(b, 0x8000);  // external event
    put_be32(b, 1001);
    put_be32(b, (127u << 8) | (0u << 1) | 1);  // raw x 0, raw y 127, bit0 1
    put_be32(b, 1002);
    return b;
}

/// AEDAT 3.1: a polarity packet (ts overflow 1, one cleared event) and a skipped packet.
inline Bytes aedat3_sample() {
    Bytes b;
    put_text(b, "#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n");
    auto header = [&](std::uint32_t type, std::uint32_t size, std::uint32_t overflow,
                      std::uint32_t n) {
        put_le16(b, type);
        put_le16(b, 1);
        put_le32(b, size);
        put_le32(b, 4);
        put_le32(b, overflow);
        put_le32(b, n);
        put_le32(b, n);
        put_le32(b, n);
    };
    header(1, 8, 1, 3);
    auto pol = [&](std::uint32_t x, std::uint32_t y, std::uint32_t p, std::uint32_t valid,
                   std::uint32_t ts) {
        put_le32(b, (x << 17) | (y << 2) | (p << 1) | valid);
        put_le32(b, ts);
    };
    pol(3, 4, 1, 1, 10);
    pol(5, 6, 0, 0, 11);  // cleared: skipped
    pol(127, 127, 0, 1, 12);
    header(2, 4, 0, 2);  // another type: skipped
    put_le32(b, 0);
    put_le32(b, 0);
    return b;
}

/// One AEDAT 4.0 event for the builder.
struct A4Event {
    std::int64_t t;
    std::int16_t x, y;
    std::uint8_t on;
};

/// An AEDAT 4.0 file with an EVTS stream (id 0) and a skipped IMUS stream (id 1), one EVTS
/// packet per event list, compressed as `compression` (0 none, 1 LZ4, 3 zstd). With `stream1`
/// (and an `xml` declaring stream 1 as EVTS), stream 1 gets EVTS packets of those events instead.
inline Bytes aedat4_sample(int compression, const std::vector<std::vector<A4Event>>& packets,
                           const std::vector<std::vector<A4Event>>* stream1 = nullptr,
                           std::string xml = "") {
    if (xml.empty())
        xml =
            "<dv version=\"2.0\"><node name=\"outInfo\" path=\"/mainloop/Recorder/outInfo/\">"
            "<node name=\"0\" path=\"/mainloop/Recorder/outInfo/0/\">"
            "<attr key=\"typeIdentifier\" type=\"string\">EVTS</attr>"
            "<node name=\"info\" path=\"/mainloop/Recorder/outInfo/0/info/\">"
            "<attr key=\"sizeX\" type=\"int\">64</attr><attr key=\"sizeY\" type=\"int\">48</attr>"
            "</node></node><node name=\"1\" path=\"/mainloop/Recorder/outInfo/1/\">"
            "<attr key=\"typeIdentifier\" type=\"string\">IMUS</attr></node></node></dv>";
    Bytes fb;
    put_le32(fb, 20);  // root table at 20
    put_text(fb, "IOHE");
    put_le16(fb, 10);  // vtable at 8: size 10, table 20, fields at +16, +8, +4
    put_le16(fb, 20);
    put_le16(fb, 16);
    put_le16(fb, 8);
    put_le16(fb, 4);
    fb.resize(20, 0);
    put_le32(fb, 12);                 // soffset: vtable at 20 − 12 = 8
    put_le32(fb, 16);                 // infoNode string at 24 + 16 = 40
    put_le64(fb, ~std::uint64_t{0});  // dataTablePosition −1
    put_le32(fb, std::uint32_t(compression));
    put_le32(fb, std::uint32_t(xml.size()));
    put_text(fb, xml);
    fb.push_back(0);
    Bytes b;
    put_text(b, "#!AER-DAT4.0\r\n");
    put_le32(b, std::uint32_t(fb.size()));
    append(b, fb);
    auto packet = [&](std::int32_t stream, const Bytes& plain) {
        Bytes body;
        if (compression == 0) {
            body = plain;
        } else if (compression == 1) {
            body.resize(LZ4F_compressFrameBound(plain.size(), nullptr));
            body.resize(
                LZ4F_compressFrame(body.data(), body.size(), plain.data(), plain.size(), nullptr));
        } else {
            body.resize(ZSTD_compressBound(plain.size()));
            body.resize(ZSTD_compress(body.data(), body.size(), plain.data(), plain.size(), 3));
        }
        put_le32(b, std::uint32_t(stream));
        put_le32(b, std::uint32_t(body.size()));
        append(b, body);
    };
    auto evts_packet = [&](const std::vector<A4Event>& events) {
        Bytes p;
        put_le32(p, 16);  // root table at 16
        put_text(p, "EVTS");
        put_le16(p, 6);  // vtable at 8: size 6, table 8, field 0 at +4
        put_le16(p, 8);
        put_le16(p, 4);
        p.resize(16, 0);
        put_le32(p, 8);  // soffset: vtable at 16 − 8 = 8
        put_le32(p, 4);  // vector at 20 + 4 = 24
        put_le32(p, std::uint32_t(events.size()));
        for (const auto& e : events) {
            put_le64(p, std::uint64_t(e.t));
            put_le16(p, std::uint16_t(e.x));
            put_le16(p, std::uint16_t(e.y));
            p.push_back(e.on);
            for (int k = 0; k < 3; ++k) p.push_back(0);
        }
        Bytes sized;
        put_le32(sized, std::uint32_t(p.size()));
        append(sized, p);
        return sized;
    };
    for (std::size_t i = 0; i < packets.size(); ++i) {
        packet(0, evts_packet(packets[i]));
        if (stream1)
            packet(1, evts_packet((*stream1)[i]));
        else
            packet(1, Bytes(24, 0x55));  // an IMU packet, skipped unread
    }
    return b;
}

}  // namespace evformer::test
