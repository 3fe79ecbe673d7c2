#include "decide/simulation.h"

#include "decide/search.h"
#include "support/error.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <random>

namespace switchyard::decide {

double SimulationResult::standard_error(double alpha) const {
    return runs ? std::sqrt(alpha * (1 - alpha) / static_cast<double>(runs)) : 0.0;
}

namespace {

// Draws item outcomes as the point says, each item when the search first asks for it: the
// original's, then a candidate's on the same item (so items the search never reads cost nothing,
// as in a real plan).
class SimulatedScores : public MeasurementSource {
public:
    SimulatedScores(const Policy & policy, const SimulationPoint & point, std::uint64_t seed)
        : policy_(policy), point_(point), rng_(seed) {}

    SuiteScore score(const Candidate & c, const TaskRef & t, std::size_t items) override {
        auto & original = drawn_["original"][t.suite];
        if (c.kind == CandidateKind::original) {
            draw(original, items, [&](std::size_t) { return chance(point_.original_accuracy); });
            return suite_score(t.suite, false, result(t.suite, original, items), nullptr, false);
        }
        if (original.size() < items)
            throw Error("simulation: the search asked for a candidate's items before the original's");
        // A candidate whose true accuracy is the original's less its drop: it gets right `recovered`
        // of the items the original got wrong, and loses enough of the rest to land on that accuracy.
        const double drop = t.suite == "suite0" ? point_.true_drop : 0.0;
        const double p = point_.original_accuracy;
        const double target = policy_.drop_relative ? p * (1 - drop) : p - drop;
        const double lose = (p + (1 - p) * point_.recovered - target) / p;
        if (lose < 0 || lose > 1)
            throw Error("simulation: no candidate has accuracy {} with recovered {} against {}", target,
                        point_.recovered, p);
        auto & own = drawn_[c.name][t.suite];
        draw(own, items, [&](std::size_t i) { return original[i] ? !chance(lose) : chance(point_.recovered); });
        const auto base = result(t.suite, original, items);
        return suite_score(t.suite, false, result(t.suite, own, items), &base, false);
    }

    void measure_cost(Candidate &) override {}

    std::size_t items() const { return items_; }

private:
    bool chance(double p) { return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p; }

    template <typename Draw>
    void draw(std::vector<bool> & outcomes, std::size_t items, Draw next) {
        while (outcomes.size() < items) {
            outcomes.push_back(next(outcomes.size()));
            ++items_;
        }
    }

    static eval::SuiteResult result(const std::string & suite, const std::vector<bool> & outcomes, std::size_t items) {
        eval::SuiteResult r;
        r.suite.content_hash = suite;
        for (std::size_t i = 0; i < items; ++i) {
            r.outcomes.push_back({.line = i + 1, .correct = outcomes[i]});
            r.correct += outcomes[i];
        }
        r.scored = items;
        return r;
    }

    const Policy & policy_;
    const SimulationPoint & point_;
    std::mt19937_64 rng_;
    std::map<std::string, std::map<std::string, std::vector<bool>>> drawn_;  // model -> suite -> outcomes in order
    std::size_t items_ = 0;
};

Candidate simulated(const std::string & name, CandidateKind kind, std::uint64_t bytes, double bits,
                    const std::string & ladder, double severity) {
    return Candidate{.name = name,
                     .kind = kind,
                     .capabilities = {"text"},
                     .context_length = 4096,
                     .file_bytes = bytes,
                     .bits_per_weight = bits,
                     .same_vocabulary = kind != CandidateKind::alternative,
                     .ladder = ladder,
                     .severity = severity};
}

}  // namespace

SimulationResult simulate(const Policy & policy, const SimulationPoint & point, std::size_t runs, std::uint64_t seed) {
    std::vector<TaskRef> tasks;
    for (std::size_t s = 0; s < point.suites; ++s)
        tasks.push_back({.suite = "suite" + std::to_string(s), .task_class = "general", .items = point.items});
    const bool over_limit = point.true_drop >= policy.max_drop - 1e-12;
    SimulationResult result{.runs = runs};
    std::mt19937_64 seeds(seed);
    for (std::size_t run = 0; run < runs; ++run) {
        // Every other candidate is smaller than the original, so R7 prefers any that passes.
        std::vector<Candidate> candidates = {simulated("original", CandidateKind::original, 100000, 16, "", 0)};
        for (std::size_t i = 0; i < point.rungs; ++i)
            candidates.push_back(simulated(fmt::format("rung{}", i), CandidateKind::variant, 50000 - 1000 * i,
                                           8.0 - static_cast<double>(i), "quantize", static_cast<double>(i)));
        for (std::size_t i = 0; i < point.alternatives; ++i)
            candidates.push_back(
                simulated(fmt::format("alternative{}", i), CandidateKind::alternative, 20000 - 1000 * i, 16, "", 0));
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

double expected_share_read(const Policy & policy, std::size_t items, double alpha, double true_drop,
                           double original_accuracy, double recovered, std::size_t runs) {
    if (!policy.sequential || items == 0) return 1.0;
    const SimulationPoint point{.true_drop = true_drop,
                                .items = items,
                                .original_accuracy = original_accuracy,
                                .recovered = recovered,
                                .suites = 1};
    const TaskRef task{.suite = "suite0", .task_class = "general", .items = items};
    const Candidate original = simulated("original", CandidateKind::original, 2, 16, "", 0);
    const Candidate candidate = simulated("candidate", CandidateKind::variant, 1, 8, "quantize", 0);
    ClassContext context{.original_serves = true};
    Policy at_alpha = policy;
    at_alpha.alpha = alpha;
    std::mt19937_64 seeds(items);
    double read = 0;
    for (std::size_t run = 0; run < runs; ++run) {
        SimulatedScores scores(at_alpha, point, seeds());
        SuiteScore score;
        for (const auto at : look_points(items, true)) {
            scores.score(original, task, at);
            auto next = scores.score(candidate, task, at);
            add_look(next, std::move(score.looks), items);
            score = std::move(next);
            if (rule_drop(at_alpha, score, alpha).outcome != Outcome::insufficient) break;
        }
        read += static_cast<double>(score.items());
    }
    return read / static_cast<double>(runs * items);
}

}  // namespace switchyard::decide
