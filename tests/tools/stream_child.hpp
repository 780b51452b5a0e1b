// A child process of the evformer program for the live-stream tests: its stdout and stderr are
// read line by line while it runs, it can be signalled, and it is killed if still running when
// the object goes away (so a failing test never leaves a server behind). Everything is bounded in
// time.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace evformer::test {

class Child {
  public:
    /// Starts EVFORMER_BINARY with `args`.
    explicit Child(const std::vector<std::string>& args) {
        int out[2], err[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], 1);
            ::dup2(err[1], 2);
            const int devnull = ::open("/dev/null", O_RDONLY);
            ::dup2(devnull, 0);
            std::vector<char*> argv;
            std::string bin = EVFORMER_BINARY;
            argv.push_back(bin.data());
            std::vector<std::string> copy = args;
            for (auto& a : copy) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(bin.c_str(), argv.data());
            ::_exit(127);
        }
        ::close(out[1]);
        ::close(err[1]);
        out_fd_ = out[0];
        err_fd_ = err[0];
    }
    ~Child() {
        if (running()) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (out_fd_ >= 0) ::close(out_fd_);
        if (err_fd_ >= 0) ::close(err_fd_);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    /// The next stdout line for which `want` holds (earlier lines are kept in lines()), waiting at
    /// most `timeout`; nullopt on timeout or end of output.
    std::optional<std::string> wait_line(const std::function<bool(const std::string&)>& want,
                                         std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            while (next_ < lines_.size())
                if (want(lines_[next_++])) return lines_[next_ - 1];
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !pump(static_cast<int>(left.count()))) return std::nullopt;
        }
    }
    /// The next stderr line containing `text`, waiting at most `timeout`.
    std::optional<std::string> wait_err(const std::string& text,
                                        std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            for (; err_next_ < err_lines_.size(); ++err_next_)
                if (err_lines_[err_next_].find(text) != std::string::npos)
                    return err_lines_[err_next_++];
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !pump(static_cast<int>(left.count()))) return std::nullopt;
        }
    }
    /// Sends a signal.
    void signal(int sig) { ::kill(pid_, sig); }
    /// Waits for the exit, reading the rest of the output; the exit code, or −1 when it had to be
    /// killed after `timeout`.
    int wait(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                while (pump(50)) {
                }
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                exited_ = true;
                return -1;
            }
            pump(20);
        }
    }
    /// Every stdout line so far.
    const std::vector<std::string>& lines() const { return lines_; }
    /// Every stderr line so far.
    const std::vector<std::string>& err_lines() const { return err_lines_; }
    bool running() const { return pid_ > 0 && !exited_; }

  private:
    // Reads what is available within `ms`; false when both pipes are closed.
    bool pump(int ms) {
        pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
        if (out_fd_ < 0 && err_fd_ < 0) return false;
        const int n = ::poll(fds, 2, ms);
        if (n <= 0) return n == 0;
        char buf[65536];
        auto drain = [&](int& fd, std::string& partial, std::vector<std::string>& lines,
                         short revents) {
            if (fd < 0 || !(revents & (POLLIN | POLLHUP))) return;
            const ssize_t got = ::read(fd, buf, sizeof buf);
            if (got <= 0) {
                ::close(fd);
                fd = -1;
                return;
            }
            partial.append(buf, static_cast<std::size_t>(got));
            std::size_t nl;
            while ((nl = partial.find('\n')) != std::string::npos) {
                lines.push_back(partial.substr(0, nl));
                partial.erase(0, nl + 1);
            }
        };
        drain(out_fd_, out_partial_, lines_, fds[0].revents);
        drain(err_fd_, err_partial_, err_lines_, fds[1].revents);
        return out_fd_ >= 0 || err_fd_ >= 0;
    }

    pid_t pid_ = -1;
    int out_fd_ = -1, err_fd_ = -1;
    bool exited_ = false;
    std::string out_partial_, err_partial_;
    std::vector<std::string> lines_, err_lines_;
    std::size_t next_ = 0, err_next_ = 0;
};

}  // namespace evformer::test
