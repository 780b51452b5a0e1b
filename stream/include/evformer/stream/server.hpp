// The live stream server: receives events over UDP (SPIF/AEStream or faery words) and over TCP
// (dv-processing's AEDAT 4.0 framing, as a client of such servers and as a server for such
// clients, several at once), queues them in a bounded queue, simulates them window by window in a
// simulation thread and publishes one JSON line per window (and statistics) to an output callback
// and to TCP subscribers. Boost.Asio stays behind the pimpl.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "evformer/sim/energy.hpp"
#include "evformer/sim/network.hpp"
#include "evformer/stream/windows.hpp"
#include "evformer/stream/wire.hpp"

namespace evformer::stream {

/// What the server listens to and how it simulates.
struct ServerOptions {
    std::string bind = "127.0.0.1";  ///< address the listening sockets bind to
    int udp_port = 3333;             ///< UDP port (0 = any free port, −1 = no UDP)
    UdpFormat udp_format = UdpFormat::spif;
    std::size_t udp_receive_buffer = std::size_t{8} << 20;  ///< SO_RCVBUF asked for, bytes
    int tcp_port = -1;  ///< dv-processing clients connect here (0 = any, −1 = none)
    std::vector<std::string> connect;  ///< dv-processing servers to read from, HOST:PORT
    int publish_port = -1;             ///< JSON-line subscribers (0 = any, −1 = none)
    std::size_t max_peers = 16;        ///< TCP senders at once (more are refused, counted)
    std::size_t max_subscribers = 16;  ///< subscribers at once (more are refused, counted)
    std::size_t subscriber_buffer = std::size_t{1} << 20;  ///< unsent bytes per subscriber
    WindowOptions window;
    std::size_t queue_events = std::size_t{1} << 22;  ///< bounded queue capacity, events
    /// A window still open after this long without any event is closed (its remaining steps run
    /// empty): a paused stream still gets its result (0 = never).
    std::chrono::milliseconds idle_flush{50};
    /// Close each bin (and window) once the wall clock passes its end + window.grace_us, as the
    /// runner's StreamClock maps event time to wall time; false: only later events and the idle
    /// flush close them.
    bool deadlines = true;
    double stats_interval_s = 1.0;  ///< statistics every this many seconds (0 = only at exit)
    sim::EnergyModel energy;
    DvStreamParser::Limits tcp_limits;
    /// False: packets are taken from the queue and counted but not simulated (`bench stream`
    /// measures the receive path this way, with no simulation competing for the cores).
    bool simulate = true;
};

/// Where the server's lines go: JSON lines (windows, stats, summary) and human notes.
struct ServerOutput {
    std::function<void(const std::string&)> json_line;  ///< one JSON object, no newline
    std::function<void(const std::string&)> note;       ///< one human-readable line
};

/// The ports actually bound (after start(); −1 for a socket not opened).
struct BoundPorts {
    int udp = -1, tcp = -1, publish = -1;
};

/// A running server. start() opens the sockets and threads; run() serves until stop() is called
/// or SIGINT/SIGTERM arrives, then drains the queue, closes the open window and reports a summary.
class StreamServer {
  public:
    /// A server simulating `net` (which must outlive it).
    StreamServer(const sim::Network& net, ServerOptions options, ServerOutput output);
    ~StreamServer();
    StreamServer(const StreamServer&) = delete;
    StreamServer& operator=(const StreamServer&) = delete;

    /// Opens the sockets (throws NetworkError naming the address when one cannot be bound) and
    /// starts the simulation thread; emits a "listening" line.
    BoundPorts start(bool handle_signals = true);
    /// Serves until stopped; returns after the final summary.
    void run();
    /// Asks run() to stop (any thread).
    void stop();
    /// The summary JSON (after run() returned).
    const std::string& summary() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Splits "HOST:PORT" (IPv6 hosts in brackets); ConfigError naming `option` otherwise.
std::pair<std::string, std::uint16_t> parse_host_port(const std::string& text,
                                                      const std::string& option);

/// Peak resident memory of this process in bytes (VmHWM), 0 when unknown.
std::uint64_t peak_rss_bytes();

}  // namespace evformer::stream
