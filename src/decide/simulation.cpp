#include "decide/simulation.h"

#include "decide/search.h"
#include "support/error.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <random>

namespace switchyard::decide {

double SimulationResult::standard_error(double alpha) const { return runs ? std::sqrt(alpha * (1 - alpha) / static_cast<double>(runs)) : 0.0; }

namespace {

// Draws item outcomes as the point says: the original's once per suite, each candidate's when the
// search asks for it (so candidates it never measures cost nothing, as in a real plan).
class SimulatedScores : public MeasurementSource {
public:
    SimulatedScores(const Policy & policy, const SimulationPoint & point, std::uint64_t seed) : policy_(policy), point_(point), rng_(seed) {}

    void evaluate(Candidate & c, const std::string &) override {
        for (std::size_t s = 0; s < point_.suites; ++s) {
            const std::string name = "suite" + std::to_string(s);
            if (c.suite(name) != nullptr) continue;
            if (c.kind == CandidateKind::original) {
                auto & original = originals_[name];
                original = draw_original(name);
                c.suites.push_back(suite_score(name, false, original, nullptr, false));
            } else {
                const auto & original = originals_.at(name);
                c.suites.push_back(suite_score(name, false, draw_other(original, s == 0 ? point_.true_drop : 0.0), &original, false));
            }
            items_ += point_.items;
        }
    }

    void measure_cost(Candidate &) override {}

    std::size_t items() const { return items_; }

private:
    bool chance(double p) { return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p; }

    eval::SuiteResult draw_original(const std::string & name) {
        eval::SuiteResult r;
        r.suite.content_hash = name;
        for (std::size_t i = 0; i < point_.items; ++i) {
            const bool right = chance(point_.original_accuracy);
            r.outcomes.push_back({.line = i + 1, .correct = right});
            r.correct += right;
        }
        r.scored = point_.items;
        return r;
    }

    // A candidate whose true accuracy is the original's less `drop`: it gets right `recovered` of
    // the items the original got wrong, and loses enough of the rest to land on that accuracy.
    eval::SuiteResult draw_other(const eval::SuiteResult & original, double drop) {
        const double p = point_.original_accuracy;
        const double target = policy_.drop_relative ? p * (1 - drop) : p - drop;
        const double lose = (p + (1 - p) * point_.recovered - target) / p;
        if (lose < 0 || lose > 1) throw Error(fmt::format("simulation: no candidate has accuracy {} with recovered {} against {}", target, point_.recovered, p));
        eval::SuiteResult r;
        r.suite.content_hash = original.suite.content_hash;
        for (const auto & o : original.outcomes) {
            const bool right = o.correct ? !chance(lose) : chance(point_.recovered);
            r.outcomes.push_back({.line = o.line, .correct = right});
            r.correct += right;
        }
        r.scored = point_.items;
        return r;
    }

    const Policy & policy_;
    const SimulationPoint & point_;
    std::mt19937_64 rng_;
    std::map<std::string, eval::SuiteResult> originals_;
    std::size_t items_ = 0;
};

Candidate simulated(const std::string & name, CandidateKind kind, std::uint64_t bytes, double bits, const std::string & ladder, double severity) {
    return Candidate{.name = name, .kind = kind, .capabilities = {"text"}, .context_length = 4096, .file_bytes = bytes, .bits_per_weight = bits,
                     .same_vocabulary = kind != CandidateKind::alternative, .ladder = ladder, .severity = severity};
}

}  // namespace

SimulationResult simulate(const Policy & policy, const SimulationPoint & point, std::size_t runs, std::uint64_t seed) {
    std::vector<TaskRef> tasks;
    for (std::size_t s = 0; s < point.suites; ++s) tasks.push_back({.suite = "suite" + std::to_string(s), .task_class = "general"});
    const bool over_limit = point.true_drop >= policy.max_drop - 1e-12;
    SimulationResult result{.runs = runs};
    std::mt19937_64 seeds(seed);
    for (std::size_t run = 0; run < runs; ++run) {
        // Every other candidate is smaller than the original, so R7 prefers any that passes.
        std::vector<Candidate> candidates = {simulated("original", CandidateKind::original, 100000, 16, "", 0)};
        for (std::size_t i = 0; i < point.rungs; ++i)
            candidates.push_back(simulated(fmt::format("rung{}", i), CandidateKind::variant, 50000 - 1000 * i, 8.0 - static_cast<double>(i), "quantize", static_cast<double>(i)));
        for (std::size_t i = 0; i < point.alternatives; ++i)
            candidates.push_back(simulated(fmt::format("alternative{}", i), CandidateKind::alternative, 20000 - 1000 * i, 16, "", 0));
        SimulatedScores scores(policy, point, seeds());
        const auto decided = search_and_decide(policy, candidates, tasks, {"general"}, scores, {});
        const auto & d = decided.decisions.front();
        result.items_scored += scores.items();
        if (d.chosen == "original") continue;
        ++result.recommended_other;
        result.false_recommendations += over_limit;
    }
    return result;
}

}  // namespace switchyard::decide
