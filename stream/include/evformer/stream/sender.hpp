// Replays a recording (any readable format) over the network at its real pace, faster, or as fast
// as possible: as UDP datagrams in one of the word formats, as a dv-processing TCP stream to a
// server's --tcp-port, or by serving that TCP framing to clients that connect (as dv-processing's
// NetworkWriter does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "evformer/io/aedat4.hpp"
#include "evformer/io/events.hpp"
#include "evformer/stream/wire.hpp"

namespace evformer::stream {

/// How to replay.
enum class Transport { udp, tcp };

/// What to send, where and how fast.
struct SendOptions {
    std::string file;                ///< recording to replay
    io::ReaderOptions reader;        ///< how to read it
    std::string host = "127.0.0.1";  ///< --to host (udp and tcp)
    std::uint16_t port = 3333;       ///< --to port
    Transport transport = Transport::udp;
    UdpFormat udp_format = UdpFormat::spif;
    bool timestamps = true;          ///< SPIF: send the timestamp words
    std::size_t datagram_bytes = 0;  ///< payload per datagram (0 = the format's default)
    /// Pace: 1 = the recording's own, 10 = ten times faster, 0 = as fast as possible.
    double speed = 1.0;
    int serve_tcp_port = -1;       ///< ≥ 0: serve the TCP framing here (0 = any free port)
    std::size_t wait_clients = 1;  ///< with serve_tcp_port: clients to wait for before replaying
    std::size_t packet_events = 4096;  ///< TCP: events per packet at most
    io::Aedat4Compression compression = io::Aedat4Compression::lz4;  ///< TCP packet bodies
    std::uint64_t limit_events = 0;  ///< send only the first N events (0 = all)
};

/// What a replay did.
struct SendReport {
    std::uint64_t events = 0;           ///< events sent
    std::uint64_t packets = 0;          ///< datagrams or TCP packets sent
    std::uint64_t bytes = 0;            ///< payload bytes sent
    std::uint64_t dropped_packets = 0;  ///< TCP packets not sent to a client that fell behind
    std::uint64_t send_errors = 0;      ///< datagrams the kernel refused
    std::size_t clients = 0;            ///< clients served (serve_tcp_port)
    double seconds = 0;                 ///< wall time of the replay
    std::int64_t span_us = 0;           ///< event time from the first to the last event sent
    double rate() const { return seconds > 0 ? double(events) / seconds : 0.0; }
    /// Event time replayed per wall second (1 = real pace).
    double pace() const { return seconds > 0 ? double(span_us) * 1e-6 / seconds : 0.0; }
};

/// Replays `options.file`. `on_listening` is called with the bound port when serving TCP, before
/// waiting for clients. Throws FileError (unreadable recording), ConfigError (bad options, a
/// recording without a sensor size for TCP) and NetworkError (cannot connect or bind).
SendReport send_recording(const SendOptions& options,
                          const std::function<void(int port)>& on_listening = {});

}  // namespace evformer::stream
