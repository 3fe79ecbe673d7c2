#include "compress/engine_check.h"

#include "compress/quantize.h"
#include "engine/llama_engine.h"
#include "eval/drift.h"
#include "eval/text_chunks.h"
#include "model/synthetic_model.h"
#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <sstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

namespace switchyard::compress {

namespace {

struct Family {
    const char * type;  // llama-quantize name
    const char * tensor_type;  // what the family's matrices must become
    // Bounds a correct kernel meets with room to spare on the synthetic model, whose random weights
    // suffer more from 4 bits than trained ones (measured on AVX2: Q8_0 98% top-1 agreement, mean
    // KLD 0.002; the 4-bit types 62-69%, 0.19-0.30). Wrong kernels give unrelated predictions:
    // about 0.1% agreement over 1024 tokens, and a KLD of several nats.
    double min_top1;
    double max_kld;
};

constexpr Family kFamilies[] = {
    {"Q8_0", "q8_0", 0.90, 0.05},
    {"Q4_0", "q4_0", 0.35, 1.0},
    {"Q4_K_S", "q4_K", 0.35, 1.0},
    {"IQ4_NL", "iq4_nl", 0.35, 1.0},
};

constexpr int kChunkTokens = 64;
constexpr int kChunks = 6;

// Plain English, long enough for kChunks chunks under the synthetic vocabulary.
constexpr const char * kText =
    "The engine check reads this text with the original model and with each quantized variant, and compares "
    "what they predict at every position. A correct kernel changes the predictions a little; a broken one, "
    "or one that uses an instruction the processor does not have, changes them completely or stops the "
    "program. Small models of this kind run in a moment, so the check costs seconds once after each build of "
    "the engine, and it saves hours when a plan would otherwise fail halfway through its work. Lily and Tom "
    "went to the park on a sunny day. They saw a big red ball under a tree, and a small dog that wanted to play "
    "with it. Tom threw the ball as far as he could, and the dog ran after it, barking with joy. When the sun "
    "went down, they walked home together and told their mother about the dog, the ball and the tree. She "
    "smiled and said that tomorrow they could go again, if the weather stayed warm and the dog was still there.";

// What one child process reports back: the step it reached, and its verdict or error.
struct ChildReport {
    std::string step = "starting";
    std::string error;
    bool has_result = false;
    double mean_kld = 0, top1 = 0;
    std::size_t positions = 0;
    int exit_status = 0;  // as waitpid gives it
};

// Runs `work` in a child process, which reports through `say(line)`: "step NAME", "error MESSAGE",
// "result KLD TOP1 POSITIONS". The parent learns how far it got even when it dies of a signal.
ChildReport run_in_child(const std::function<void(const std::function<void(const std::string &)> &)> & work) {
    int fds[2];
    if (pipe(fds) != 0) throw Error("engine check: cannot create a pipe: {}", std::strerror(errno));
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw Error("engine check: cannot start a child process: {}", std::strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        const auto say = [fd = fds[1]](const std::string & line) {
            const std::string out = line + "\n";
            [[maybe_unused]] const auto n = write(fd, out.data(), out.size());
        };
        int code = 0;
        try {
            work(say);
        } catch (const std::exception & e) {
            std::string message = e.what();
            std::replace(message.begin(), message.end(), '\n', ' ');
            say("error " + message);
            code = 1;
        }
        std::fflush(nullptr);
        _exit(code);
    }
    close(fds[1]);
    std::string received;
    char buffer[4096];
    for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        received.append(buffer, static_cast<std::size_t>(n));
    }
    close(fds[0]);
    ChildReport report;
    while (waitpid(pid, &report.exit_status, 0) < 0 && errno == EINTR) {}
    std::istringstream lines(received);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("step "))
            report.step = line.substr(5);
        else if (line.starts_with("error "))
            report.error = line.substr(6);
        else if (line.starts_with("result ")) {
            std::istringstream values(line.substr(7));
            values >> report.mean_kld >> report.top1 >> report.positions;
            report.has_result = static_cast<bool>(values);
        }
    }
    return report;
}

std::string describe_death(const ChildReport & r) {
    if (WIFSIGNALED(r.exit_status)) {
        const int sig = WTERMSIG(r.exit_status);
        if (sig == SIGILL)
            return fmt::format(
                "the engine died of an illegal instruction while {}: it was built with instructions this CPU "
                "does not run; rebuild it with SWITCHYARD_CMAKE_ARGS=-DSWITCHYARD_NATIVE=OFF (and without "
                "-DSWITCHYARD_AMX=ON)",
                r.step);
        return fmt::format(
            "the engine died of signal {} ({}) while {}; rebuild it with SWITCHYARD_CMAKE_ARGS=-DSWITCHYARD_NATIVE=OFF "
            "to rule out this CPU's instruction sets",
            sig, strsignal(sig), r.step);
    }
    if (!r.error.empty()) return fmt::format("{} (while {})", r.error, r.step);
    return fmt::format("the check stopped without a result while {} (exit status {})", r.step,
                       WEXITSTATUS(r.exit_status));
}

engine::LlamaEngine load(const std::filesystem::path & path, int threads) {
    return engine::LlamaEngine({.model_path = path, .threads = threads, .context_length = kChunkTokens, .parallel = 2});
}

std::vector<std::vector<engine::Token>> check_chunks(const engine::Engine & engine,
                                                     const std::filesystem::path & text) {
    eval::TextChunks chunks =
        eval::tokenize_chunks(engine, {.files = {text}, .context = kChunkTokens, .max_chunks = kChunks});
    if (chunks.chunks.size() < kChunks)
        throw Error("engine check: the check text gives {} chunks of {} tokens, not {}", chunks.chunks.size(),
                    kChunkTokens, kChunks);
    return std::move(chunks.chunks);
}

}  // namespace

std::vector<KernelCheck> check_engine(const EngineCheckOptions & options,
                                      const std::function<void(const KernelCheck &)> & on_check) {
    const int threads =
        options.threads > 0 ? options.threads : std::max(4, static_cast<int>(std::thread::hardware_concurrency()));
    std::filesystem::create_directories(options.work_dir);
    const auto original = options.work_dir / "check-f32.gguf";
    const auto text = options.work_dir / "check-text.txt";
    const auto reference = options.work_dir / "check-reference.bin";
    model::write_synthetic_model({.shape = model::find_shape("check"), .seed = 7}, original);
    write_file_atomically(text, kText);

    std::vector<KernelCheck> checks;
    const auto finish = [&](KernelCheck check) {
        if (on_check) on_check(check);
        checks.push_back(std::move(check));
        return checks.back().passed;
    };

    // The reference runs in a child too: F32 kernels can use instructions the CPU lacks as well.
    ChildReport f32 = run_in_child([&](const auto & say) {
        say("step loading the F32 model");
        engine::LlamaEngine engine = load(original, threads);
        say("step evaluating the F32 model");
        const eval::Reference ref = eval::record_reference(engine, check_chunks(engine, text), 0);
        bool finite = true;
        for (const float lp : ref.target_logprob) finite = finite && std::isfinite(lp);
        if (!finite) throw Error("the F32 model's log-probabilities are not finite: the engine computes wrong results");
        eval::save_reference(ref, reference);
        say(fmt::format("result 0 1 {}", ref.target_logprob.size()));
    });
    KernelCheck f32_check{
        .type = "F32", .tensor_type = "f32", .passed = f32.has_result, .top1_agreement = 1, .positions = f32.positions};
    if (!f32.has_result) f32_check.failure = describe_death(f32);
    if (!finish(std::move(f32_check))) return checks;

    for (const Family & family : kFamilies) {
        const auto variant = options.work_dir / fmt::format("check-{}.gguf", family.type);
        ChildReport r = run_in_child([&](const auto & say) {
            say(fmt::format("step quantizing to {}", family.type));
            const model::ModelInfo written = quantize_without_recipe(
                {.input = original, .output = variant, .type = family.type, .threads = threads});
            if (!written.tensor_types.contains(family.tensor_type))
                throw Error("llama.cpp wrote no {} tensors for {}, so its kernels went unchecked", family.tensor_type,
                            family.type);
            say(fmt::format("step loading the {} model", family.type));
            engine::LlamaEngine engine = load(variant, threads);
            say(fmt::format("step evaluating the {} model", family.type));
            const eval::Drift drift = eval::measure_drift(eval::load_reference(reference), engine);
            say(fmt::format("result {} {} {}", drift.kld.mean, drift.top1_agreement, drift.positions));
        });
        KernelCheck check{.type = family.type,
                          .tensor_type = family.tensor_type,
                          .mean_kld = r.mean_kld,
                          .top1_agreement = r.top1,
                          .positions = r.positions};
        if (!r.has_result) {
            check.failure = describe_death(r);
        } else if (!(r.mean_kld <= family.max_kld) || !(r.top1 >= family.min_top1)) {
            check.failure = fmt::format(
                "{} predictions are wrong: mean KLD {:.4f} (at most {} expected), top-1 agreement {:.1f}% (at "
                "least {:.0f}% expected) against the F32 model; rebuild the engine with "
                "SWITCHYARD_CMAKE_ARGS=-DSWITCHYARD_NATIVE=OFF and report this CPU",
                family.type, r.mean_kld, family.max_kld, 100 * r.top1, 100 * family.min_top1);
        }
        check.passed = check.failure.empty();
        if (!finish(std::move(check))) break;
    }
    return checks;
}

}  // namespace switchyard::compress
