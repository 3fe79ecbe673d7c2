#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <csignal>
#include <regex>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace switchyard::test {

std::filesystem::path data_dir() {
    if (const char * dir = std::getenv("SWITCHYARD_DATA_DIR"); dir != nullptr && *dir != '\0') return dir;
    return std::filesystem::path(SWITCHYARD_SOURCE_DIR) / ".." / "shared";
}

std::string two_class_plan(const std::string & variants, const std::string & extra) {
    const auto d = data_dir().string();
    return "base: {name: babyllama, path: " + d +
        "/models/babyllama-0.9M-f32.gguf}\n"
        "alternatives:\n  - {name: stories260K, path: " +
        d +
        "/models/stories260K-f32.gguf}\n"
        "variants:\n" +
        variants + "calibration:\n  files:\n    - " + d +
        "/data/tinystories-valid-head.txt\n  samples: 20\n"
        "normalize: true\n"
        "tasks:\n"
        "  - spec: blimp:" +
        d +
        "/data/blimp/irregular_past_participle_verbs.jsonl\n    class: grammar\n"
        "  - cloze: {text: " +
        d +
        "/data/tinystories-valid-head.txt, items: 60, skip_passages: 1500}\n"
        "    name: story-cloze\n    class: stories\n    critical: true\n    requires: context:1024\n"
        "policy:\n  accuracy_floor: 0.5\n"
        "speed: {prompt_tokens: 32, generate_tokens: 8, repeats: 1}\n" +
        extra;
}

std::filesystem::path model_path(const std::string & file) {
    auto path = data_dir() / "models" / file;
    if (!std::filesystem::exists(path))
        throw std::runtime_error("test model missing: " + path.string() + " (set SWITCHYARD_DATA_DIR)");
    return path;
}

ScratchDir::ScratchDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
        ("switchyard-test-" + std::to_string(rd()) + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path & path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::filesystem::path & path, const std::string & bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

CommandResult run_switchyard(const std::vector<std::string> & args) {
    std::vector<std::string> command = {SWITCHYARD_BINARY};
    command.insert(command.end(), args.begin(), args.end());
    return run_program(command);
}

CommandResult run_program(const std::vector<std::string> & command) {
    ScratchDir scratch;
    const auto out_path = scratch.file("stdout");
    const auto err_path = scratch.file("stderr");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(out, 1);
        ::dup2(err, 2);
        std::vector<char *> argv;
        std::vector<std::string> copy = command;
        for (auto & a : copy) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(copy.front().c_str(), argv.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    CommandResult result;
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    result.out = read_file(out_path);
    result.err = read_file(err_path);
    return result;
}

void expect_clean_failure(const CommandResult & r, const std::string & fragment) {
    EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "\n" << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "want exactly one line:\n" << r.err;
    EXPECT_EQ(r.err.rfind("switchyard: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(fragment), std::string::npos) << "want '" << fragment << "' in: " << r.err;
    for (const char * crash : {"Aborted", "terminate called", "GGML_ASSERT", "Segmentation", "stack"}) {
        EXPECT_EQ(r.err.find(crash), std::string::npos) << r.err;
    }
}

ServerProcess::ServerProcess(const std::string & binary, const std::vector<std::string> & args,
                             const std::vector<std::string> & env) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    const auto err_path = scratch_.file("stderr");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(out[1], 1);
        ::dup2(err, 2);
        ::close(out[0]);
        for (const auto & e : env) ::putenv(const_cast<char *>(e.c_str()));
        std::vector<std::string> copy{binary};
        copy.insert(copy.end(), args.begin(), args.end());
        std::vector<char *> argv;
        for (auto & a : copy) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    pollfd p{out[0], POLLIN, 0};
    char c = 0;
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 120000) > 0 && ::read(out[0], &c, 1) == 1) line += c;
    ::close(out[0]);
    std::smatch m;
    static const std::regex listening(R"(listening on http://[^:]+:(\d+))");
    if (!std::regex_search(line, m, listening)) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        throw std::runtime_error(binary + " did not start: " + line + read_file(err_path));
    }
    port_ = std::stoi(m[1]);
}

ServerProcess::~ServerProcess() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
}

std::string ServerProcess::log() const { return read_file(scratch_.file("stderr")); }

std::filesystem::path llama_server_binary() {
    return std::filesystem::path(SWITCHYARD_REFERENCE_TOOLS_DIR) / "llama-server";
}

int free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr *>(&address), &length) != 0) {
        throw std::runtime_error("cannot find a free loopback port");
    }
    ::close(s);
    return ntohs(address.sin_port);
}

int spawn_logged(std::vector<std::string> args, const std::filesystem::path & log) {
    const int pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::setpgid(0, 0);
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::vector<char *> argv;
        for (auto & a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here: the group exists before either side goes on
    return pid;
}

void stop_group(int & pid, int signal) {
    if (pid <= 0) return;
    ::kill(-pid, signal);
    for (int attempt = 0; attempt < 100; ++attempt) {
        if (::waitpid(pid, nullptr, WNOHANG) == pid) {
            pid = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
}

namespace {

bool accepts_connections(int port) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = s >= 0 && ::connect(s, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0;
    if (s >= 0) ::close(s);
    return ok;
}

}  // namespace

LlamaServer::LlamaServer(const std::filesystem::path & model, const std::string & alias,
                         const std::filesystem::path & log)
    : port_(free_port()) {
    // One thread: tests share few cores, and ggml's threads wait for each other by spinning.
    pid_ = spawn_logged({llama_server_binary().string(), "-m", model.string(), "--host", "127.0.0.1", "--port",
                         std::to_string(port_), "-a", alias, "-np", "4", "-c", "2048", "-t", "1", "--no-webui"},
                        log);
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(1);
    // Loading takes well under a second; the limit only keeps a broken server from hanging the test.
    for (int attempt = 0; attempt < 600; ++attempt) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("llama-server exited while starting:\n" + read_file(log));
        }
        if (const auto r = client.Get("/health"); r && r->status == 200) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    stop();
    throw std::runtime_error("llama-server did not become healthy:\n" + read_file(log));
}

LlamaServer::~LlamaServer() { stop(); }

void LlamaServer::stop() { stop_group(pid_); }

std::filesystem::path rpc_server_binary() {
    return std::filesystem::path(SWITCHYARD_REFERENCE_TOOLS_DIR) / "ggml-rpc-server";
}

RpcServer::RpcServer(const std::filesystem::path & log) : port_(free_port()), log_(log) { start(); }

RpcServer::~RpcServer() { stop_group(pid_); }

void RpcServer::start() {
    pid_ =
        spawn_logged({rpc_server_binary().string(), "-H", "127.0.0.1", "-p", std::to_string(port_), "-t", "1"}, log_);
    for (int attempt = 0; attempt < 300; ++attempt) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("rpc-server exited while starting:\n" + read_file(log_));
        }
        if (accepts_connections(port_)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop_group(pid_);
    throw std::runtime_error("rpc-server did not listen:\n" + read_file(log_));
}

void RpcServer::kill() { stop_group(pid_, SIGKILL); }

}  // namespace switchyard::test
