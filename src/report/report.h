// The plan's outputs: decision.json (machine-readable), report.md, report.html (one self-contained
// page with SVG charts) and portfolio.yaml (what `switchyard serve` runs).
#pragma once

#include "decide/planner.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace switchyard::report {

nlohmann::json decision_json(const decide::PlanResult & result);
std::string report_markdown(const decide::PlanResult & result);
std::string report_html(const decide::PlanResult & result);

// Short lines for a terminal: one per class of tasks, with the rule and the numbers.
std::string summary_text(const decide::PlanResult & result);

// Writes all four files into `out_dir`, each atomically.
void write_outputs(const decide::PlanResult & result, const std::filesystem::path & out_dir);

}  // namespace switchyard::report
