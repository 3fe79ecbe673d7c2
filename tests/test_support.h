// Shared helpers for the tests: where the shared models are, scratch files, running the CLI.
#pragma once

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

namespace switchyard::test {

// SWITCHYARD_DATA_DIR (set by CTest), else ../shared beside the repo.
std::filesystem::path data_dir();
std::filesystem::path model_path(const std::string & file);  // data_dir()/models/file

// A plan on the shared models with two classes: `stories` needs a 1024-token context, which
// babyllama (128) lacks, so only a switch can serve it (R1); `grammar` can be served by a
// compression of babyllama. No price: R7 ranks by size, so the answer does not hang on timings of
// a shared machine. `variants`: the items of its variants list; `extra`: appended YAML.
std::string two_class_plan(const std::string & variants = "  - {type: Q8_0}\n  - {type: Q4_0}\n",
                           const std::string & extra = "");

// A fresh folder for one test's files, removed with the object.
class ScratchDir {
public:
    ScratchDir();
    ~ScratchDir();
    const std::filesystem::path & path() const { return path_; }
    std::filesystem::path file(const std::string & name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path & path);
void write_file(const std::filesystem::path & path, const std::string & bytes);

struct CommandResult {
    int exit_code = -1;  // -1 when killed by a signal
    int signal = 0;
    std::string out;
    std::string err;
};

// Runs the switchyard binary with `args` (no shell), capturing both streams.
CommandResult run_switchyard(const std::vector<std::string> & args);
// Runs `command` (a program's path, then its arguments; no shell), capturing both streams.
CommandResult run_program(const std::vector<std::string> & command);

// A failure a user can act on: non-zero exit, no signal, exactly one line on stderr that says
// what is wrong, nothing that looks like a crash (gtest expectations).
void expect_clean_failure(const CommandResult & r, const std::string & fragment);
// A server (`switchyard serve ... --port 0`, the stub OpenAI server) running in the background
// until destroyed (SIGTERM). The constructor waits for its "listening on http://HOST:PORT" line;
// `env` adds NAME=VALUE entries.
class ServerProcess {
public:
    ServerProcess(const std::string & binary, const std::vector<std::string> & args,
                  const std::vector<std::string> & env = {});
    ~ServerProcess();
    ServerProcess(const ServerProcess &) = delete;
    ServerProcess & operator=(const ServerProcess &) = delete;

    int port() const { return port_; }
    int pid() const { return pid_; }
    std::string log() const;  // what it wrote to stderr so far

private:
    ScratchDir scratch_;
    int pid_ = -1;
    int port_ = 0;
};

// Starts a program in its own process group (so that stopping it leaves nothing behind), both its
// streams to `log`; returns its pid.
int spawn_logged(std::vector<std::string> args, const std::filesystem::path & log);
// `signal` to the group, SIGKILL after 5 s; reaps it and sets pid to -1.
void stop_group(int & pid, int signal = SIGTERM);

// A loopback port nothing listens on: the kernel picks a free one for a socket bound to port 0.
int free_port();

// llama.cpp's own llama-server, built from the engine's source by the reference_tools target.
std::filesystem::path llama_server_binary();

// llama-server serving a model on loopback (as `alias`, 4 slots of 512 tokens, one thread), in its
// own process group so that stopping it leaves nothing behind; stopped when the object goes.
// Throws std::runtime_error with its log when it exits or does not become healthy.
class LlamaServer {
public:
    LlamaServer(const std::filesystem::path & model, const std::string & alias, const std::filesystem::path & log);
    ~LlamaServer();
    LlamaServer(const LlamaServer &) = delete;
    LlamaServer & operator=(const LlamaServer &) = delete;

    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    void stop();

    int port_;
    int pid_ = -1;
};

// llama.cpp's rpc-server (ggml-rpc-server), built by the reference_tools target.
std::filesystem::path rpc_server_binary();

// An rpc-server worker on a loopback port (one thread), stopped when the object goes; kill() stops
// it at once, as a machine that goes away would, and start() brings it back on the same port.
class RpcServer {
public:
    explicit RpcServer(const std::filesystem::path & log);
    ~RpcServer();
    RpcServer(const RpcServer &) = delete;
    RpcServer & operator=(const RpcServer &) = delete;

    int port() const { return port_; }
    std::string endpoint() const { return "rpc://127.0.0.1:" + std::to_string(port_); }
    void kill();
    void start();

private:
    int port_;
    std::filesystem::path log_;
    int pid_ = -1;
};

}  // namespace switchyard::test
