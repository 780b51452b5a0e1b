#include "evformer/stream/sender.hpp"

// Boost 1.74's Asio uses std::exchange without including <utility> (fails with GCC 12, C++20).
#include <utility>

#include <fmt/format.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "evformer/error.hpp"

namespace evformer::stream {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using Clock = std::chrono::steady_clock;

namespace {

// Where the replay's batches go: one datagram or one TCP packet per call.
class Output {
  public:
    virtual ~Output() = default;
    /// Events that fit one datagram or packet.
    virtual std::size_t capacity() const = 0;
    /// Sends one batch; `urgent` when the replay is paced (send now, do not batch datagrams).
    virtual void send(std::span<const io::Event> events, bool urgent, SendReport& r) = 0;
    /// Sends what is held back (datagrams batched for sendmmsg).
    virtual void flush(SendReport&) {}
    /// Sends what is held back and ends.
    virtual void finish(SendReport& r) = 0;
};

class UdpOutput final : public Output {
  public:
    UdpOutput(const SendOptions& o) : socket_(io_), o_(o) {
        udp::resolver resolver(io_);
        boost::system::error_code ec;
        const auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
        if (ec || results.empty())
            throw NetworkError(fmt::format("--to {}:{}: {}", o.host, o.port, ec.message()));
        const auto ep = results.begin()->endpoint();
        socket_.open(ep.protocol());
        socket_.connect(ep, ec);
        if (ec) throw NetworkError(fmt::format("--to {}:{}: {}", o.host, o.port, ec.message()));
        const int size = 4 << 20;
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        record_ = record_bytes(o.udp_format, o.timestamps);
        const std::size_t bytes =
            o.datagram_bytes ? o.datagram_bytes : default_datagram_bytes(o.udp_format);
        per_datagram_ = bytes / record_;
        if (per_datagram_ == 0 || bytes > 65507)
            throw ConfigError(fmt::format(
                "--datagram-bytes {}: a datagram holds 1 to 65507 bytes and at least one "
                "{}-byte record",
                bytes, record_));
        buffer_.resize(kBatch * per_datagram_ * record_);
    }
    std::size_t capacity() const override { return per_datagram_; }
    void send(std::span<const io::Event> events, bool urgent, SendReport& r) override {
        encode_records(o_.udp_format, o_.timestamps, events,
                       buffer_.data() + held_ * per_datagram_ * record_);
        sizes_[held_] = events.size() * record_;
        r.events += events.size();
        ++held_;
        if (urgent || held_ == kBatch) flush(r);
    }
    void finish(SendReport& r) override { flush(r); }
    void flush(SendReport& r) override {
        std::array<mmsghdr, kBatch> msgs{};
        std::array<iovec, kBatch> iov{};
        for (std::size_t i = 0; i < held_; ++i) {
            iov[i] = {buffer_.data() + i * per_datagram_ * record_, sizes_[i]};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        std::size_t done = 0;
        while (done < held_) {
            const int n = ::sendmmsg(socket_.native_handle(), msgs.data() + done,
                                     static_cast<unsigned>(held_ - done), 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == ECONNREFUSED) {  // nobody listens (yet): the datagram is lost
                    ++r.send_errors;
                    ++done;
                    continue;
                }
                throw NetworkError(
                    fmt::format("sending to {}:{}: {}", o_.host, o_.port, std::strerror(errno)));
            }
            for (int i = 0; i < n; ++i) r.bytes += sizes_[done + std::size_t(i)];
            r.packets += std::size_t(n);
            done += std::size_t(n);
        }
        held_ = 0;
    }

  private:
    static constexpr std::size_t kBatch = 64;
    asio::io_context io_;
    udp::socket socket_;
    const SendOptions& o_;
    std::size_t record_ = 8, per_datagram_ = 64, held_ = 0;
    std::vector<std::uint8_t> buffer_;
    std::array<std::size_t, kBatch> sizes_{};
};

// A dv-processing TCP stream to one server (the evformer server's --tcp-port).
class TcpClientOutput final : public Output {
  public:
    TcpClientOutput(const SendOptions& o, io::Geometry g)
        : socket_(io_), o_(o), encoder_(o.compression) {
        tcp::resolver resolver(io_);
        boost::system::error_code ec;
        const auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
        if (!ec) asio::connect(socket_, results, ec);
        if (ec) throw NetworkError(fmt::format("--to {}:{}: {}", o.host, o.port, ec.message()));
        const auto opening = dv_stream_opening(o.compression, g, o.file);
        asio::write(socket_, asio::buffer(opening));
    }
    std::size_t capacity() const override { return o_.packet_events; }
    void send(std::span<const io::Event> events, bool, SendReport& r) override {
        const auto body = encoder_.encode(events);
        bytes_.clear();
        io::append_aedat4_packet_header(bytes_, 0, body.size());
        bytes_.insert(bytes_.end(), body.begin(), body.end());
        boost::system::error_code ec;
        asio::write(socket_, asio::buffer(bytes_), ec);
        if (ec)
            throw NetworkError(fmt::format("sending to {}:{}: {}", o_.host, o_.port, ec.message()));
        r.events += events.size();
        r.bytes += bytes_.size();
        ++r.packets;
    }
    void finish(SendReport&) override {
        boost::system::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
        socket_.close(ignored);
    }

  private:
    asio::io_context io_;
    tcp::socket socket_;
    const SendOptions& o_;
    io::Aedat4PacketEncoder encoder_;
    std::vector<std::uint8_t> bytes_;
};

// Serves the dv-processing TCP framing: every client gets the IOHeader when it connects, then
// every packet sent after that; a client that falls more than 64 MiB behind loses packets
// (counted).
class TcpServeOutput final : public Output {
  public:
    static constexpr std::size_t kClientBacklog = std::size_t{64} << 20;

    TcpServeOutput(const SendOptions& o, io::Geometry g,
                   const std::function<void(int)>& on_listening)
        : o_(o),
          encoder_(o.compression),
          acceptor_(io_),
          opening_(std::make_shared<const std::vector<std::uint8_t>>(
              dv_stream_opening(o.compression, g, o.file))) {
        boost::system::error_code ec;
        const auto address = asio::ip::make_address(o.host, ec);
        if (ec) throw ConfigError(fmt::format("--bind '{}' is not an IP address", o.host));
        acceptor_.open(address.is_v6() ? tcp::v6() : tcp::v4());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind({address, static_cast<std::uint16_t>(o.serve_tcp_port)}, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec)
            throw NetworkError(fmt::format("--serve-tcp {}: cannot listen on {}: {}",
                                           o.serve_tcp_port, o.host, ec.message()));
        accept();
        thread_ = std::thread([this] { io_.run(); });
        if (on_listening) on_listening(acceptor_.local_endpoint().port());
        std::unique_lock lock(mutex_);
        joined_.wait(lock, [&] { return accepted_ >= o_.wait_clients; });
    }
    ~TcpServeOutput() override {
        work_.reset();
        io_.stop();
        if (thread_.joinable()) thread_.join();
    }
    std::size_t capacity() const override { return o_.packet_events; }
    void send(std::span<const io::Event> events, bool, SendReport& r) override {
        const auto body = encoder_.encode(events);
        auto bytes = std::make_shared<std::vector<std::uint8_t>>();
        io::append_aedat4_packet_header(*bytes, 0, body.size());
        bytes->insert(bytes->end(), body.begin(), body.end());
        r.events += events.size();
        r.bytes += bytes->size();
        ++r.packets;
        asio::post(io_, [this, bytes = std::shared_ptr<const std::vector<std::uint8_t>>(bytes)] {
            for (const auto& c : clients_) c->send(bytes);
        });
    }
    void finish(SendReport& r) override {
        // Wait (up to 10 s) until every client has its bytes, then close.
        std::promise<void> done;
        auto finished = done.get_future();
        asio::post(io_, [this, &done] {
            drain(std::move(done), Clock::now() + std::chrono::seconds(10));
        });
        finished.wait();
        r.dropped_packets = dropped_;
        r.clients = accepted_;
    }

  private:
    struct Client : std::enable_shared_from_this<Client> {
        Client(TcpServeOutput& s, tcp::socket sock) : server(s), socket(std::move(sock)) {}
        TcpServeOutput& server;
        tcp::socket socket;
        std::deque<std::shared_ptr<const std::vector<std::uint8_t>>> queue;
        std::size_t queued = 0;
        bool writing = false;
        void send(std::shared_ptr<const std::vector<std::uint8_t>> bytes) {
            if (!socket.is_open()) return;
            if (queued + bytes->size() > kClientBacklog) {
                ++server.dropped_;
                return;
            }
            queued += bytes->size();
            queue.push_back(std::move(bytes));
            if (!writing) write();
        }
        void write() {
            writing = true;
            asio::async_write(
                socket, asio::buffer(*queue.front()),
                [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                    if (ec) {
                        boost::system::error_code ignored;
                        self->socket.close(ignored);
                        self->queue.clear();
                        self->queued = 0;
                        self->writing = false;
                        return;
                    }
                    self->queued -= self->queue.front()->size();
                    self->queue.pop_front();
                    if (self->queue.empty())
                        self->writing = false;
                    else
                        self->write();
                });
        }
    };

    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return;
            auto c = std::make_shared<Client>(*this, std::move(s));
            clients_.insert(c);
            c->send(opening_);
            {
                std::lock_guard lock(mutex_);
                ++accepted_;
            }
            joined_.notify_all();
            accept();
        });
    }

    void drain(std::promise<void> done, Clock::time_point deadline) {
        bool busy = false;
        for (const auto& c : clients_) busy |= c->socket.is_open() && c->writing;
        if (busy && Clock::now() < deadline) {
            auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(5));
            timer->async_wait(
                [this, timer, d = std::move(done), deadline](boost::system::error_code) mutable {
                    drain(std::move(d), deadline);
                });
            return;
        }
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        for (const auto& c : clients_) {
            c->socket.shutdown(tcp::socket::shutdown_send, ignored);
            c->socket.close(ignored);
        }
        done.set_value();
    }

    const SendOptions& o_;
    io::Aedat4PacketEncoder encoder_;
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_{asio::make_work_guard(io_)};
    tcp::acceptor acceptor_;
    std::shared_ptr<const std::vector<std::uint8_t>> opening_;
    std::set<std::shared_ptr<Client>> clients_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable joined_;
    std::size_t accepted_ = 0;
    std::uint64_t dropped_ = 0;
};

}  // namespace

// A sleep costs tens of µs; the sender sleeps only when at least this far ahead of the pace.
constexpr auto kSleepAhead = std::chrono::microseconds(100);

SendReport send_recording(const SendOptions& o, const std::function<void(int)>& on_listening) {
    if (!(o.speed >= 0) || o.speed > 1e9)
        throw ConfigError(
            fmt::format("--speed {}: expected 0 (as fast as possible) or a pace > 0", o.speed));
    if (o.packet_events == 0) throw ConfigError("--packet-events must be at least 1");
    auto reader = io::open_event_file(o.file, o.reader);
    std::unique_ptr<Output> out;
    const bool tcp = o.serve_tcp_port >= 0 || o.transport == Transport::tcp;
    if (tcp && !reader->geometry().known())
        throw ConfigError(o.file +
                          ": the dv-processing framing states the sensor size; the "
                          "recording does not (give --sensor WxH)");
    if (o.serve_tcp_port >= 0)
        out = std::make_unique<TcpServeOutput>(o, reader->geometry(), on_listening);
    else if (o.transport == Transport::tcp)
        out = std::make_unique<TcpClientOutput>(o, reader->geometry());
    else
        out = std::make_unique<UdpOutput>(o);

    SendReport r;
    io::EventChunk chunk;
    std::vector<io::Event> batch;
    const std::size_t cap = out->capacity();
    batch.reserve(cap);
    const bool paced = o.speed > 0;
    bool first = true;
    std::int64_t t0 = 0, t_last = 0;
    const auto start = Clock::now();
    auto now = start;
    std::uint64_t taken = 0;
    bool done = false;
    while (!done && reader->read(chunk) > 0) {
        for (const auto& e : chunk.events()) {
            if (o.limit_events && taken == o.limit_events) {
                done = true;
                break;
            }
            ++taken;
            if (first) {
                first = false;
                t0 = e.t;
            }
            t_last = e.t;
            if (paced) {
                const auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                             double(e.t - t0) * 1e3 / o.speed));
                // The clock is read only when this event may be ahead of it (behind the pace,
                // events go out without looking); ahead by more than a sleep costs: send what is
                // due, then wait.
                if (due > now) {
                    now = Clock::now();
                    if (due > now + kSleepAhead) {
                        if (!batch.empty()) {
                            out->send(batch, true, r);
                            batch.clear();
                        } else {
                            out->flush(r);
                        }
                        std::this_thread::sleep_until(due);
                        now = due;
                    }
                }
            }
            batch.push_back(e);
            if (batch.size() == cap) {
                out->send(batch, false, r);
                batch.clear();
            }
        }
    }
    if (!batch.empty()) out->send(batch, true, r);
    out->finish(r);
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.span_us = first ? 0 : t_last - t0;
    return r;
}

}  // namespace evformer::stream
