#include "evformer/stream/server.hpp"

// Boost 1.74's Asio uses std::exchange without including <utility> (fails with GCC 12, C++20).
#include <utility>

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <charconv>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "evformer/error.hpp"
#include "evformer/stream/queue.hpp"

namespace evformer::stream {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;  // keys in the order written: "type" first

std::pair<std::string, std::uint16_t> parse_host_port(const std::string& text,
                                                      const std::string& option) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
        throw ConfigError(fmt::format("{} '{}': expected HOST:PORT", option, text));
    std::string host = text.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned port = 0;
    const auto* b = text.data() + colon + 1;
    const auto* e = text.data() + text.size();
    const auto r = std::from_chars(b, e, port);
    if (r.ec != std::errc() || r.ptr != e || port == 0 || port > 65535)
        throw ConfigError(
            fmt::format("{} '{}': the port must be a number in 1..65535", option, text));
    return {host, static_cast<std::uint16_t>(port)};
}

std::uint64_t peak_rss_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) {
            std::uint64_t kb = 0;
            const auto at = line.find_first_of("0123456789");
            if (at == std::string::npos) return 0;
            std::from_chars(line.data() + at, line.data() + line.size(), kb);
            return kb * 1024;
        }
    return 0;
}

namespace {

// Counters of the network side (written by the network thread, read by the statistics).
struct NetCounts {
    std::atomic<std::uint64_t> udp_datagrams{0}, udp_events{0}, stamped{0};
    std::atomic<std::uint64_t> malformed_datagrams{0}, bad_records{0}, kernel_drops{0};
    std::atomic<std::uint64_t> tcp_packets{0}, tcp_events{0}, undecodable_packets{0};
    std::atomic<std::uint64_t> skipped_packets{0}, malformed_streams{0}, truncated_streams{0};
    std::atomic<std::uint64_t> negative_coordinates{0}, refused_peers{0}, connect_failures{0};
    std::atomic<std::uint64_t> peers{0}, subscribers{0}, refused_subscribers{0};
    std::atomic<std::uint64_t> publish_dropped_lines{0};
};

double percentile(std::vector<float> v, double q) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(q * double(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + long(k), v.end());
    return v[k];
}

}  // namespace

struct StreamServer::Impl {
    struct Peer;
    struct Subscriber;

    Impl(const sim::Network& n, ServerOptions opt, ServerOutput output)
        : net(n),
          o(std::move(opt)),
          out(std::move(output)),
          layers(n.layers()),
          queue(o.queue_events) {}

    const sim::Network& net;
    ServerOptions o;
    ServerOutput out;
    std::vector<sim::LayerInfo> layers;
    asio::io_context io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::optional<udp::socket> udp_socket;
    std::optional<tcp::acceptor> tcp_acceptor, publish_acceptor;
    std::optional<asio::signal_set> signals;
    std::optional<asio::steady_timer> stats_timer, close_timer;
    PacketQueue queue;
    std::unique_ptr<WindowRunner> runner;
    std::thread sim_thread;
    std::atomic<bool> stopping{false};
    NetCounts c;
    std::set<std::shared_ptr<Peer>> peers;
    std::set<std::shared_ptr<Subscriber>> subscribers;
    std::mutex out_mutex;
    Clock::time_point started;
    std::string summary;
    BoundPorts ports;
    std::size_t rcvbuf = 0;

    // Simulation-thread figures, read by the statistics.
    std::atomic<double> busy_s{0};
    std::atomic<std::uint64_t> discarded{0};  // taken from the queue unsimulated (simulate off)
    std::atomic<std::uint64_t> sops_total{0}, macs_total{0};
    std::mutex latency_mutex;

    // The network thread's batch in flight: when it began (steady clock, ns), or kNoBatch. A
    // batch is received, decoded and queued between begin and end; the simulation thread does
    // not close a bin by its deadline past the start of a batch still in flight (so that events
    // stamped on arrival are never late, however long the network thread is held up).
    static constexpr std::int64_t kNoBatch = std::numeric_limits<std::int64_t>::max();
    std::atomic<std::int64_t> in_flight{kNoBatch};
    struct InFlight {
        explicit InFlight(Impl& i) : impl(i) {
            // Published before the clock is read: every event of the batch is stamped after it.
            impl.in_flight.store(Clock::now().time_since_epoch().count());
            arrival = Clock::now();
        }
        ~InFlight() { impl.in_flight.store(kNoBatch); }
        InFlight(const InFlight&) = delete;
        InFlight& operator=(const InFlight&) = delete;
        Impl& impl;
        Clock::time_point arrival;
    };

    // The UDP socket as the simulation thread sees it (a duplicate descriptor, so that it stays
    // valid when the network thread closes the socket): datagrams waiting to be read.
    int pending_fd = -1;
    bool udp_pending() const {
        int bytes = 0;
        return pending_fd >= 0 && ::ioctl(pending_fd, FIONREAD, &bytes) == 0 && bytes > 0;
    }

    // UDP receive state (network thread only).
    static constexpr std::size_t kBatch = 32, kDatagram = 65536, kPacketEvents = 16384;
    std::vector<std::uint8_t> udp_buffers;
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iovs{};
    std::array<sockaddr_storage, kBatch> names{};
    std::array<std::array<char, CMSG_SPACE(sizeof(std::uint32_t))>, kBatch> controls{};
    std::unordered_map<std::uint64_t, TimeUnwrap> clocks;

    void emit_json(const std::string& line, bool publish = true) {
        {
            std::lock_guard lock(out_mutex);
            if (out.json_line) out.json_line(line);
        }
        if (publish) post_publish(line);
    }
    void note(const std::string& line) {
        std::lock_guard lock(out_mutex);
        if (out.note) out.note(line);
    }
    std::int64_t now_us() const {
        return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started)
            .count();
    }

    // ---- publishing -----------------------------------------------------------------------

    struct Subscriber : std::enable_shared_from_this<Subscriber> {
        Subscriber(Impl& i, tcp::socket s) : impl(i), socket(std::move(s)) {}
        Impl& impl;
        tcp::socket socket;
        std::deque<std::shared_ptr<const std::string>> pending;
        std::size_t pending_bytes = 0;
        bool writing = false;
        std::array<char, 256> sink{};

        void start() { read(); }
        // Reads (and ignores) what the subscriber sends, to notice when it goes away.
        void read() {
            socket.async_read_some(
                asio::buffer(sink),
                [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                    if (ec) return self->close();
                    self->read();
                });
        }
        void send(const std::shared_ptr<const std::string>& line) {
            if (!socket.is_open()) return;
            if (pending_bytes + line->size() > impl.o.subscriber_buffer) {
                impl.c.publish_dropped_lines.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            pending.push_back(line);
            pending_bytes += line->size();
            if (!writing) write_next();
        }
        void write_next() {
            writing = true;
            asio::async_write(
                socket, asio::buffer(*pending.front()),
                [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                    if (ec) return self->close();
                    self->pending_bytes -= self->pending.front()->size();
                    self->pending.pop_front();
                    if (self->pending.empty())
                        self->writing = false;
                    else
                        self->write_next();
                });
        }
        void close() {
            boost::system::error_code ignored;
            socket.close(ignored);
            if (impl.subscribers.erase(shared_from_this()))
                impl.c.subscribers.fetch_sub(1, std::memory_order_relaxed);
        }
    };

    void post_publish(const std::string& line) {
        if (!publish_acceptor) return;
        auto shared = std::make_shared<const std::string>(line + "\n");
        asio::post(io, [this, shared] {
            for (const auto& s :
                 std::vector<std::shared_ptr<Subscriber>>(subscribers.begin(), subscribers.end()))
                s->send(shared);
        });
    }

    void accept_subscriber() {
        publish_acceptor->async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return;  // closed
            if (subscribers.size() >= o.max_subscribers) {
                c.refused_subscribers.fetch_add(1, std::memory_order_relaxed);
                boost::system::error_code ignored;
                s.close(ignored);
            } else {
                // The kernel may hold as much again as --publish-buffer (at most 1 MiB).
                const int sndbuf = static_cast<int>(
                    std::clamp<std::size_t>(o.subscriber_buffer, 4096, std::size_t{1} << 20));
                ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
                auto sub = std::make_shared<Subscriber>(*this, std::move(s));
                subscribers.insert(sub);
                c.subscribers.fetch_add(1, std::memory_order_relaxed);
                sub->start();
            }
            accept_subscriber();
        });
    }

    // ---- TCP senders (dv-processing framing) ---------------------------------------------

    struct Peer : std::enable_shared_from_this<Peer>, DvStreamSink {
        Peer(Impl& i, tcp::socket s, std::string n, std::string reconnect_to = {})
            : impl(i),
              socket(std::move(s)),
              name(std::move(n)),
              parser(name, i.o.tcp_limits),
              reconnect(std::move(reconnect_to)) {}
        Impl& impl;
        tcp::socket socket;
        std::string name;
        DvStreamParser parser;
        std::string reconnect;
        std::array<std::uint8_t, 1 << 16> buf{};
        DvStreamCounts reported{};
        bool refused = false;

        void on_header(const io::Aedat4Header& h) override {
            const auto id = h.first_event_stream();
            const auto g = h.streams.at(id).geometry;
            const auto& sensor = impl.o.window.frames.sensor;
            if (g.known() && g != sensor) {
                impl.note(fmt::format(
                    "stream: {}: refused: its event stream is {}x{} but the server's sensor is "
                    "{}x{} (give --sensor {}x{})",
                    name, g.width, g.height, sensor.width, sensor.height, g.width, g.height));
                impl.c.refused_peers.fetch_add(1, std::memory_order_relaxed);
                refused = true;
            }
        }
        void on_events(std::span<const io::Event> events) override {
            if (refused) return;
            auto p = impl.queue.fresh();
            p.events.assign(events.begin(), events.end());
            p.arrival = arrival;
            impl.queue.push(std::move(p));
        }
        Clock::time_point arrival{};  // when the bytes being parsed were read
        void start() { read(); }
        void read() {
            socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](
                                                          boost::system::error_code ec,
                                                          std::size_t n) {
                if (ec)
                    return self->close(ec != asio::error::eof &&
                                       ec != asio::error::operation_aborted &&
                                       ec != asio::error::connection_reset);
                const InFlight batch(self->impl);
                self->arrival = batch.arrival;
                const bool ok = self->parser.feed({self->buf.data(), n}, *self);
                self->account();
                if (!ok || self->refused) {
                    if (!ok) {
                        self->impl.c.malformed_streams.fetch_add(1, std::memory_order_relaxed);
                        self->impl.note("stream: " + self->parser.error() + "; connection closed");
                    }
                    return self->close(false, true);
                }
                self->read();
            });
        }
        // Moves the parser's counters into the server's.
        void account() {
            const auto& k = parser.counts();
            auto add = [](std::atomic<std::uint64_t>& a, std::uint64_t now, std::uint64_t& was) {
                a.fetch_add(now - was, std::memory_order_relaxed);
                was = now;
            };
            add(impl.c.tcp_packets, k.packets, reported.packets);
            add(impl.c.tcp_events, refused ? reported.events : k.events, reported.events);
            add(impl.c.undecodable_packets, k.undecodable_packets, reported.undecodable_packets);
            add(impl.c.skipped_packets, k.skipped_packets, reported.skipped_packets);
            add(impl.c.bad_records, k.bad_records, reported.bad_records);
            add(impl.c.negative_coordinates, k.negative_coordinates, reported.negative_coordinates);
        }
        void close(bool error, bool counted = false) {
            if (!counted && !impl.stopping && parser.mid_packet()) {
                impl.c.truncated_streams.fetch_add(1, std::memory_order_relaxed);
                impl.note(fmt::format("stream: {}: disconnected at byte {} in the middle of {}",
                                      name, parser.offset(),
                                      parser.has_header() ? "a packet" : "the IOHeader"));
            } else if (error && !impl.stopping) {
                impl.note(fmt::format("stream: {}: connection lost", name));
            }
            boost::system::error_code ignored;
            socket.close(ignored);
            if (impl.peers.erase(shared_from_this()))
                impl.c.peers.fetch_sub(1, std::memory_order_relaxed);
            if (!reconnect.empty() && !impl.stopping) impl.schedule_connect(reconnect, 1000);
        }
    };

    void add_peer(tcp::socket s, const std::string& name, const std::string& reconnect = {}) {
        if (peers.size() >= o.max_peers) {
            c.refused_peers.fetch_add(1, std::memory_order_relaxed);
            note(fmt::format("stream: {}: refused: already {} senders (--max-peers)", name,
                             peers.size()));
            boost::system::error_code ignored;
            s.close(ignored);
            if (!reconnect.empty()) schedule_connect(reconnect, 1000);
            return;
        }
        auto peer = std::make_shared<Peer>(*this, std::move(s), name, reconnect);
        peers.insert(peer);
        c.peers.fetch_add(1, std::memory_order_relaxed);
        peer->start();
    }

    void accept_peer() {
        tcp_acceptor->async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return;
            boost::system::error_code e2;
            const auto ep = s.remote_endpoint(e2);
            add_peer(std::move(s),
                     e2 ? std::string("tcp peer")
                        : fmt::format("tcp {}:{}", ep.address().to_string(), ep.port()));
            accept_peer();
        });
    }

    void schedule_connect(const std::string& target, int delay_ms) {
        auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(delay_ms));
        timer->async_wait([this, timer, target](boost::system::error_code ec) {
            if (ec || stopping) return;
            connect_to(target);
        });
    }

    void connect_to(const std::string& target) {
        const auto [host, port] = parse_host_port(target, "--connect");
        auto resolver = std::make_shared<tcp::resolver>(io);
        resolver->async_resolve(
            host, std::to_string(port),
            [this, resolver, target](boost::system::error_code ec,
                                     tcp::resolver::results_type results) {
                if (stopping) return;
                if (ec) {
                    c.connect_failures.fetch_add(1, std::memory_order_relaxed);
                    note(fmt::format("stream: --connect {}: {}; retrying in 1 s", target,
                                     ec.message()));
                    return schedule_connect(target, 1000);
                }
                auto socket = std::make_shared<tcp::socket>(io);
                asio::async_connect(
                    *socket, results,
                    [this, socket, target](boost::system::error_code ec2, const tcp::endpoint&) {
                        if (stopping) return;
                        if (ec2) {
                            c.connect_failures.fetch_add(1, std::memory_order_relaxed);
                            note(fmt::format("stream: --connect {}: {}; retrying in 1 s", target,
                                             ec2.message()));
                            return schedule_connect(target, 1000);
                        }
                        note(fmt::format("stream: connected to {}", target));
                        add_peer(std::move(*socket), "tcp " + target, target);
                    });
            });
    }

    // ---- UDP --------------------------------------------------------------------------------

    void open_udp() {
        const auto address = asio::ip::make_address(o.bind);
        udp_socket.emplace(io);
        udp_socket->open(address.is_v6() ? udp::v6() : udp::v4());
        udp_socket->bind({address, static_cast<std::uint16_t>(o.udp_port)});
        udp_socket->non_blocking(true);
        const int fd = udp_socket->native_handle();
        int size = static_cast<int>(std::min<std::size_t>(o.udp_receive_buffer, 1u << 30));
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        int got = 0;
        socklen_t len = sizeof got;
        ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
        if (got < size) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
        ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
        rcvbuf = static_cast<std::size_t>(got);
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
        ports.udp = udp_socket->local_endpoint().port();
        pending_fd = ::dup(fd);
        udp_buffers.resize(kBatch * kDatagram);
        for (std::size_t i = 0; i < kBatch; ++i) {
            iovs[i] = {udp_buffers.data() + i * kDatagram, kDatagram};
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        wait_udp();
    }

    void wait_udp() {
        udp_socket->async_wait(udp::socket::wait_read, [this](boost::system::error_code ec) {
            if (ec || stopping) return;
            receive_udp();
            wait_udp();
        });
    }

    static std::uint64_t sender_key(const sockaddr_storage& s) {
        if (s.ss_family == AF_INET) {
            const auto& a = reinterpret_cast<const sockaddr_in&>(s);
            return std::uint64_t{a.sin_addr.s_addr} << 16 | a.sin_port;
        }
        if (s.ss_family == AF_INET6) {
            const auto& a = reinterpret_cast<const sockaddr_in6&>(s);
            std::uint64_t h = a.sin6_port;
            for (auto b : a.sin6_addr.s6_addr) h = h * 1099511628211ull ^ b;
            return h;
        }
        return 0;
    }

    // Drains the socket: batches of datagrams (recvmmsg), each batch one queue packet.
    void receive_udp() {
        const int fd = udp_socket->native_handle();
        for (int round = 0; round < 64; ++round) {
            for (std::size_t i = 0; i < kBatch; ++i) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
                msgs[i].msg_hdr.msg_control = controls[i].data();
                msgs[i].msg_hdr.msg_controllen = controls[i].size();
                msgs[i].msg_hdr.msg_flags = 0;
            }
            const InFlight batch(*this);
            const int n = ::recvmmsg(fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
            if (n <= 0) return;
            const auto arrival = batch.arrival;
            const std::int64_t arrival_us =
                std::chrono::duration_cast<std::chrono::microseconds>(arrival - started).count();
            // Counted locally, published once per batch (after the events are queued).
            std::uint64_t datagrams = 0, malformed = 0, bad = 0, stamped = 0, events = 0;
            auto packet = queue.fresh();
            packet.arrival = arrival;
            for (int i = 0; i < n; ++i) {
                auto& h = msgs[std::size_t(i)].msg_hdr;
                for (cmsghdr* cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm))
                    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
                        std::uint32_t dropped = 0;
                        std::memcpy(&dropped, CMSG_DATA(cm), sizeof dropped);
                        if (dropped > c.kernel_drops.load(std::memory_order_relaxed))
                            c.kernel_drops.store(dropped, std::memory_order_relaxed);
                    }
                ++datagrams;
                if (h.msg_flags & MSG_TRUNC) {  // larger than any datagram of the formats
                    ++malformed;
                    continue;
                }
                if (clocks.size() > 4096) clocks.clear();
                auto& clock = clocks[sender_key(names[std::size_t(i)])];
                const std::span<const std::uint8_t> bytes(
                    udp_buffers.data() + std::size_t(i) * kDatagram, msgs[std::size_t(i)].msg_len);
                const auto r =
                    decode_datagram(o.udp_format, bytes, arrival_us, clock, packet.events);
                malformed += r.malformed;
                bad += r.bad_records;
                stamped += r.stamped;
                events += r.events;
                // Queue packets stay small enough for their buffers to be recycled.
                if (packet.events.size() >= kPacketEvents) {
                    queue.push(std::move(packet));
                    packet = queue.fresh();
                    packet.arrival = arrival;
                }
            }
            if (!packet.events.empty()) queue.push(std::move(packet));
            c.udp_datagrams.fetch_add(datagrams, std::memory_order_relaxed);
            c.malformed_datagrams.fetch_add(malformed, std::memory_order_relaxed);
            c.bad_records.fetch_add(bad, std::memory_order_relaxed);
            c.stamped.fetch_add(stamped, std::memory_order_relaxed);
            c.udp_events.fetch_add(events, std::memory_order_relaxed);
            if (std::size_t(n) < kBatch) return;
        }
    }

    // ---- statistics ---------------------------------------------------------------------------

    json stats_json(const char* type) const {
        const auto& q = queue.counts();
        const auto& w = runner->counters();
        const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
        const double busy = busy_s.load(std::memory_order_relaxed);
        const double simulated = double(runner->simulated_us()) * 1e-6;
        const auto received = c.udp_events.load() + c.tcp_events.load();
        return {{"type", type},
                {"seconds", seconds},
                {"received", received},
                {"received_udp", c.udp_events.load()},
                {"received_tcp", c.tcp_events.load()},
                {"datagrams", c.udp_datagrams.load()},
                {"tcp_packets", c.tcp_packets.load()},
                {"stamped_on_arrival", c.stamped.load()},
                {"simulated_events", w.events_simulated.load()},
                {"unsimulated_events", discarded.load()},
                {"dropped_queue_packets", q.dropped_packets.load()},
                {"dropped_queue_events", q.dropped_events.load()},
                {"dropped_kernel_datagrams", c.kernel_drops.load()},
                {"dropped_late", w.dropped_late.load()},
                {"dropped_outside", w.dropped_outside.load() + c.negative_coordinates.load()},
                {"outside_crop", w.outside_crop.load()},
                {"malformed_datagrams", c.malformed_datagrams.load()},
                {"malformed_records", c.bad_records.load()},
                {"malformed_streams", c.malformed_streams.load()},
                {"undecodable_packets", c.undecodable_packets.load()},
                {"truncated_streams", c.truncated_streams.load()},
                {"skipped_packets", c.skipped_packets.load()},
                {"refused_peers", c.refused_peers.load()},
                {"connect_failures", c.connect_failures.load()},
                {"peers", c.peers.load()},
                {"subscribers", c.subscribers.load()},
                {"refused_subscribers", c.refused_subscribers.load()},
                {"publish_dropped_lines", c.publish_dropped_lines.load()},
                {"queue_events", q.depth_events.load()},
                {"queue_packets", q.depth_packets.load()},
                {"queue_peak_events", q.peak_events.load()},
                {"queue_capacity_events", queue.capacity()},
                {"windows", w.windows.load()},
                {"empty_windows", w.empty_windows.load()},
                {"steps", w.steps.load()},
                {"deadline_steps", w.deadline_steps.load()},
                {"deadline_windows", w.deadline_windows.load()},
                {"deadline_after_end_us", w.deadline_after_end_us.load()},
                {"simulated_s", simulated},
                {"busy_s", busy},
                {"realtime_factor", busy > 0 ? simulated / busy : 0.0},
                {"sops_total", sops_total.load()},
                {"macs_total", macs_total.load()},
                {"energy_mj_total",
                 o.energy.millijoules(double(sops_total.load()), double(macs_total.load()))},
                {"peak_rss_mb", double(peak_rss_bytes()) / (1 << 20)}};
    }

    std::string stats_note(const json& s) const {
        return fmt::format(
            "stream: {:.1f} s  received {} ev ({} udp, {} tcp)  simulated {}  dropped: queue {} "
            "kernel {} datagrams late {} outside {}  malformed: {} datagrams {} records {} "
            "streams {} packets  queue {}/{} ev  windows {}  real-time factor {:.1f}x",
            s["seconds"].get<double>(), s["received"].get<std::uint64_t>(),
            s["received_udp"].get<std::uint64_t>(), s["received_tcp"].get<std::uint64_t>(),
            s["simulated_events"].get<std::uint64_t>(),
            s["dropped_queue_events"].get<std::uint64_t>(),
            s["dropped_kernel_datagrams"].get<std::uint64_t>(),
            s["dropped_late"].get<std::uint64_t>(), s["dropped_outside"].get<std::uint64_t>(),
            s["malformed_datagrams"].get<std::uint64_t>(),
            s["malformed_records"].get<std::uint64_t>(),
            s["malformed_streams"].get<std::uint64_t>(),
            s["undecodable_packets"].get<std::uint64_t>(), s["queue_events"].get<std::uint64_t>(),
            s["queue_capacity_events"].get<std::size_t>(), s["windows"].get<std::uint64_t>(),
            s["realtime_factor"].get<double>());
    }

    void arm_stats() {
        if (o.stats_interval_s <= 0) return;
        stats_timer->expires_after(
            std::chrono::microseconds(static_cast<std::int64_t>(o.stats_interval_s * 1e6)));
        stats_timer->async_wait([this](boost::system::error_code ec) {
            if (ec || stopping) return;
            const auto s = stats_json("stats");
            emit_json(s.dump());
            note(stats_note(s));
            arm_stats();
        });
    }

    // ---- simulation thread --------------------------------------------------------------------

    // Where a window's latency went (ms), one entry per window: the wait for the window to be
    // over (its last event → the event that closed it, or its deadline, or the idle flush), the
    // hand-off to the simulation thread (→ closing starts: queue, wake-up), closing (remaining
    // steps and the head), building the JSON line and writing it (stdout, subscribers).
    struct LatencyParts {
        float latency, server, wait, handoff, close, json, output;
    };
    std::vector<LatencyParts> latency_parts;   // under latency_mutex
    std::array<std::uint64_t, 3> closed_by{};  // under latency_mutex

    void on_window(WindowResult&& w) {
        sim::StepCounts total;
        for (std::size_t l = 0; l < layers.size() && w.result.time_steps > 0; ++l)
            total += w.result.layer_total(l);
        sops_total.fetch_add(total.sops, std::memory_order_relaxed);
        macs_total.fetch_add(total.macs, std::memory_order_relaxed);
        const auto t0 = Clock::now();
        const auto line = window_json(w, layers, o.energy);
        const auto t1 = Clock::now();
        emit_json(line);
        const auto t2 = Clock::now();
        auto ms = [](auto d) {
            return static_cast<float>(std::chrono::duration<double>(d).count() * 1e3);
        };
        const auto ready = std::max(w.ready, w.last_arrival);
        const LatencyParts parts{static_cast<float>(w.latency_s * 1e3),
                                 static_cast<float>(w.server_s * 1e3),
                                 ms(ready - w.last_arrival),
                                 ms(w.closing - std::min(ready, w.closing)),
                                 static_cast<float>(w.close_s * 1e3),
                                 ms(t1 - t0),
                                 ms(t2 - t1)};
        std::lock_guard lock(latency_mutex);
        ++closed_by[static_cast<std::size_t>(w.closed_by)];
        if (latency_parts.size() < (std::size_t{1} << 20)) latency_parts.push_back(parts);
    }

    void add_latency_summary(json& j) {
        std::lock_guard lock(latency_mutex);
        auto column = [&](float LatencyParts::*f) {
            std::vector<float> v;
            v.reserve(latency_parts.size());
            for (const auto& p : latency_parts) v.push_back(p.*f);
            return v;
        };
        const auto latency = column(&LatencyParts::latency);
        const auto server = column(&LatencyParts::server);
        j["latency_ms_median"] = percentile(latency, 0.5);
        j["latency_ms_p99"] = percentile(latency, 0.99);
        j["server_ms_median"] = percentile(server, 0.5);
        j["server_ms_p99"] = percentile(server, 0.99);
        json parts = json::object();
        for (const auto& [name, f] :
             std::initializer_list<std::pair<const char*, float LatencyParts::*>>{
                 {"wait", &LatencyParts::wait},
                 {"handoff", &LatencyParts::handoff},
                 {"close", &LatencyParts::close},
                 {"json", &LatencyParts::json},
                 {"output", &LatencyParts::output}}) {
            const auto v = column(f);
            parts[name] = {{"median", percentile(v, 0.5)},
                           {"p99", percentile(v, 0.99)},
                           {"max", v.empty() ? 0.0f : *std::max_element(v.begin(), v.end())}};
        }
        j["latency_parts_ms"] = parts;
        j["windows_closed_by"] = {
            {"event", closed_by[0]}, {"deadline", closed_by[1]}, {"flush", closed_by[2]}};
    }

    // The simulation thread: takes packets in arrival order; when the queue is empty, closes the
    // bins (and the window) whose deadline has passed, waiting on the queue until the next
    // deadline; a window without events for --idle-flush-ms is flushed.
    void simulate() {
        Packet packet;
        auto last_event = Clock::now();
        auto busy = [&](auto&& f) {
            const auto t = Clock::now();
            f();
            busy_s.store(busy_s.load(std::memory_order_relaxed) +
                             std::chrono::duration<double>(Clock::now() - t).count(),
                         std::memory_order_relaxed);
        };
        const bool idle = o.idle_flush.count() > 0;
        // A deadline held back (a batch in the network thread's hands, or datagrams waiting in
        // the socket): looked at again then, without spinning.
        auto retry = Clock::time_point::min();
        while (true) {
            // Wake up for the next deadline, the idle flush, or at least every 20 ms.
            auto wake = Clock::now() + std::chrono::milliseconds(20);
            if (runner->window_open()) {
                if (o.deadlines) wake = std::min(wake, std::max(runner->next_deadline(), retry));
                if (idle) wake = std::min(wake, last_event + o.idle_flush);
            }
            if (queue.pop_until(packet, wake)) {
                if (!o.simulate) {
                    discarded.fetch_add(packet.events.size(), std::memory_order_relaxed);
                    continue;
                }
                busy([&] { runner->add(packet.events, packet.arrival); });
                last_event = Clock::now();
                continue;
            }
            if (queue.closed() && queue.empty()) break;
            if (!runner->window_open()) continue;
            // The queue is empty: every event received so far has been added, except a batch
            // the network thread holds and datagrams it has not read yet (the deadlines wait for
            // both: the network thread may be held up on a loaded machine).
            const auto now = Clock::now();
            if (o.deadlines && runner->next_deadline() <= now) {
                auto until = now;
                const auto batch = in_flight.load();
                if (batch != kNoBatch)
                    until = std::min(now, Clock::time_point(Clock::duration(batch)));
                if (udp_pending()) until = Clock::time_point::min();
                if (until < now) retry = now + std::chrono::microseconds(200);
                if (runner->next_deadline() <= until) busy([&] { runner->advance(until); });
            }
            if (idle && runner->window_open() && now - last_event >= o.idle_flush)
                busy([&] { runner->flush(last_event + o.idle_flush); });
        }
        busy([&] { runner->flush(); });
        if (pending_fd >= 0) ::close(pending_fd);
        pending_fd = -1;
        auto s = stats_json("summary");
        add_latency_summary(s);
        summary = s.dump();
        emit_json(summary);
        note(stats_note(s));
        // Let the subscribers have the summary, then end the network thread.
        asio::post(io, [this] {
            close_timer.emplace(io, std::chrono::milliseconds(300));
            close_timer->async_wait([this](boost::system::error_code) {
                for (const auto& sub : std::vector<std::shared_ptr<Subscriber>>(subscribers.begin(),
                                                                                subscribers.end()))
                    sub->close();
                work.reset();
            });
        });
    }

    // ---- stopping -----------------------------------------------------------------------------

    void do_stop() {
        if (stopping.exchange(true)) return;
        boost::system::error_code ignored;
        if (udp_socket) udp_socket->close(ignored);
        if (tcp_acceptor) tcp_acceptor->close(ignored);
        if (publish_acceptor) publish_acceptor->close(ignored);
        if (signals) signals->cancel(ignored);
        if (stats_timer) stats_timer->cancel();
        for (const auto& p : std::vector<std::shared_ptr<Peer>>(peers.begin(), peers.end()))
            p->close(false);
        queue.close();
    }
};

StreamServer::StreamServer(const sim::Network& net, ServerOptions options, ServerOutput output)
    : impl_(std::make_unique<Impl>(net, std::move(options), std::move(output))) {}

StreamServer::~StreamServer() {
    if (impl_->sim_thread.joinable()) {
        impl_->queue.close();
        impl_->sim_thread.join();
    }
    if (impl_->pending_fd >= 0) ::close(impl_->pending_fd);  // start() failed after open_udp
}

BoundPorts StreamServer::start(bool handle_signals) {
    auto& m = *impl_;
    m.runner = std::make_unique<WindowRunner>(
        m.net, m.o.window, [&m](WindowResult&& w) { m.on_window(std::move(w)); });
    m.started = Clock::now();
    m.work.emplace(asio::make_work_guard(m.io));
    const auto address = [&] {
        try {
            return asio::ip::make_address(m.o.bind);
        } catch (const std::exception&) {
            throw ConfigError(fmt::format("--bind '{}' is not an IP address", m.o.bind));
        }
    }();
    auto bind_tcp = [&](std::optional<tcp::acceptor>& acceptor, int port, const char* what) {
        try {
            acceptor.emplace(m.io, tcp::endpoint(address, static_cast<std::uint16_t>(port)));
        } catch (const boost::system::system_error& e) {
            throw NetworkError(fmt::format("cannot listen for {} on {}:{}: {}", what, m.o.bind,
                                           port, e.code().message()));
        }
        return static_cast<int>(acceptor->local_endpoint().port());
    };
    if (m.o.udp_port >= 0) {
        try {
            m.open_udp();
        } catch (const boost::system::system_error& e) {
            throw NetworkError(fmt::format("cannot receive UDP on {}:{}: {}", m.o.bind,
                                           m.o.udp_port, e.code().message()));
        }
    }
    if (m.o.tcp_port >= 0) {
        m.ports.tcp = bind_tcp(m.tcp_acceptor, m.o.tcp_port, "dv-processing senders");
        m.accept_peer();
    }
    if (m.o.publish_port >= 0) {
        m.ports.publish = bind_tcp(m.publish_acceptor, m.o.publish_port, "subscribers");
        m.accept_subscriber();
    }
    for (const auto& target : m.o.connect) {
        parse_host_port(target, "--connect");
        m.connect_to(target);
    }
    if (handle_signals) {
        m.signals.emplace(m.io, SIGINT, SIGTERM);
        m.signals->async_wait([&m](boost::system::error_code ec, int) {
            if (!ec) m.do_stop();
        });
    }
    m.stats_timer.emplace(m.io);
    m.arm_stats();
    const auto& f = m.o.window.frames;
    m.emit_json(json{{"type", "listening"},
                     {"udp_port", m.ports.udp},
                     {"udp_format", udp_format_name(m.o.udp_format)},
                     {"udp_receive_buffer", m.rcvbuf},
                     {"tcp_port", m.ports.tcp},
                     {"publish_port", m.ports.publish},
                     {"connect", m.o.connect},
                     {"dt_us", m.o.window.dt_us},
                     {"window_steps", m.runner->options().window_steps},
                     {"continuous", m.o.window.continuous},
                     {"deadlines", m.o.deadlines},
                     {"grace_us", m.o.window.grace_us},
                     {"idle_flush_ms", m.o.idle_flush.count()},
                     {"sensor", {f.sensor.width, f.sensor.height}},
                     {"crop", {f.crop_x, f.crop_y, f.crop_width, f.crop_height}},
                     {"input", {f.out_width, f.out_height}},
                     {"queue_capacity_events", m.queue.capacity()}}
                    .dump(),
                false);
    m.note(fmt::format(
        "stream: listening: udp {} ({}), tcp {}, publish {}; dt {} us, window {} steps{}",
        m.ports.udp, udp_format_name(m.o.udp_format), m.ports.tcp, m.ports.publish,
        m.o.window.dt_us, m.runner->options().window_steps,
        m.o.window.continuous ? ", continuous" : ""));
    m.sim_thread = std::thread([&m] { m.simulate(); });
    return m.ports;
}

void StreamServer::run() {
    auto& m = *impl_;
    m.io.run();
    if (m.sim_thread.joinable()) m.sim_thread.join();
}

void StreamServer::stop() {
    asio::post(impl_->io, [this] { impl_->do_stop(); });
}

const std::string& StreamServer::summary() const {
    return impl_->summary;
}

}  // namespace evformer::stream
