// The verdict's guarantee over a grid (bench/guarantee.sh): for each true drop, items per suite,
// original accuracy and pair correlation, the share of simulated plans that recommend a candidate
// dropping max_drop or more (must stay within alpha), the share that recommend any smaller model
// (power), and the items scored per plan, with sequential tests (the default) and with every item
// read (`plan --full`) on the same seeds. Prints a Markdown table.
#include "decide/simulation.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cmath>

int main(int argc, char ** argv) {
    using namespace switchyard::decide;
    CLI::App app{"The decision's false-recommendation rate and power by simulation"};
    std::size_t runs = 2000;
    std::vector<std::size_t> items = {100, 200, 500, 1000, 2000};
    std::vector<double> accuracies = {0.7, 0.9};
    std::vector<double> recovered = {0.0, 0.3};
    Policy policy;
    std::string drop = "relative";
    app.add_option("--runs", runs, "simulated plans per grid point")->capture_default_str();
    app.add_option("--items", items, "items per suite")->capture_default_str();
    app.add_option("--accuracy", accuracies, "the original's true accuracy")->capture_default_str();
    app.add_option("--recovered", recovered, "chance a candidate gets right an item the original got wrong")
        ->capture_default_str();
    app.add_option("--alpha", policy.alpha)->capture_default_str();
    app.add_option("--max-drop", policy.max_drop)->capture_default_str();
    app.add_option("--drop", drop, "relative or absolute")
        ->check(CLI::IsMember({"relative", "absolute"}))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    policy.drop_relative = drop == "relative";
    const auto start = std::chrono::steady_clock::now();
    fmt::print(
        "One class, 2 suites; a ladder of 3 variants and 2 alternatives, all smaller than the original, each with the true drop on the first suite "
        "and none on the second; {} drop limit {}, alpha {}; {} simulated plans per row.\n\n",
        drop, policy.max_drop, policy.alpha, runs);
    fmt::print(
        "| true drop | items | original | recovered | false recommendations: sequential / full | within alpha | recommends a smaller model: sequential / full | "
        "items scored per plan: sequential / full (ratio) |\n");
    fmt::print("|---|---|---|---|---|---|---|---|\n");
    Policy full = policy;
    full.sequential = false;
    std::size_t worst_row = 0, rows = 0;
    double worst = 0;
    for (const double share : {0.0, 0.5, 1.0, 1.5})
        for (const auto n : items)
            for (const auto accuracy : accuracies)
                for (const auto r : recovered) {
                    const SimulationPoint point{.true_drop = share * policy.max_drop,
                                                .items = n,
                                                .original_accuracy = accuracy,
                                                .recovered = r};
                    const std::uint64_t seed = 1000 * n + static_cast<std::uint64_t>(100 * share + 10 * accuracy + r);
                    const auto result = simulate(policy, point, runs, seed);
                    const auto fixed = simulate(full, point, runs, seed);
                    const double bound = policy.alpha + 2 * result.standard_error(policy.alpha);
                    ++rows;
                    for (const auto * x : {&result, &fixed})
                        if (x->false_rate() > worst) worst = x->false_rate(), worst_row = rows;
                    const double items_seq = static_cast<double>(result.items_scored) / static_cast<double>(runs);
                    const double items_full = static_cast<double>(fixed.items_scored) / static_cast<double>(runs);
                    fmt::print(
                        "| {:g}·δ | {} | {:.0f}% | {:.1f} | {:.4f} / {:.4f} | {} | {:.3f} / {:.3f} | {:.0f} / {:.0f} ({:.2f}) |\n",
                        share, n, 100 * accuracy, r, result.false_rate(), fixed.false_rate(),
                        share < 1                                                        ? "—"
                            : std::max(result.false_rate(), fixed.false_rate()) <= bound ? "yes"
                                                                                         : "NO",
                        result.power(), fixed.power(), items_seq, items_full,
                        items_full > 0 ? items_seq / items_full : 0.0);
                }
    fmt::print(
        "\nworst false-recommendation rate {:.4f} (row {}), alpha {}, Monte-Carlo standard error at alpha {:.4f}; {:.0f} s\n",
        worst, worst_row, policy.alpha, std::sqrt(policy.alpha * (1 - policy.alpha) / static_cast<double>(runs)),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}
