#include "serve/rollout.h"

#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace switchyard::serve {

Recommendation read_recommendation(const std::filesystem::path & plan_out, const std::string & task_class) {
    const auto portfolio_file = plan_out / "portfolio.yaml";
    const auto decision_file = plan_out / "decision.json";
    if (!std::filesystem::exists(portfolio_file))
        throw Error("{}: not found: give the folder `switchyard plan -o` wrote", portfolio_file.string());
    const model::Portfolio plan = model::load_portfolio(portfolio_file);
    const nlohmann::json decision =
        nlohmann::json::parse(read_whole_file(decision_file, "plan decision"), nullptr, false);
    if (!decision.is_object() || !decision.contains("recommendation") || !decision["recommendation"].is_array())
        throw Error("{}: not a decision switchyard plan wrote (no 'recommendation' list)", decision_file.string());
    Recommendation rec{.task_class = task_class,
                       .model = {},
                       .decision = {},
                       .evidence = std::filesystem::absolute(plan_out / "report.html")};
    std::string classes;
    for (const auto & d : decision["recommendation"]) {
        const std::string cls = d.value("class", "");
        classes += (classes.empty() ? "" : ", ") + cls;
        if (cls != task_class) continue;
        // The verdict line (what the dashboard shows); a decision file without one gives its reason.
        rec.decision = d.value("verdict", "");
        if (rec.decision.empty())
            rec.decision = d.value("action", "") + " (" + d.value("rule", "") + "): " + d.value("reason", "");
        // The plan's portfolio routes each class by its name (portfolio-safe characters).
        const model::Route * route = plan.find_route(task_class);
        if (route == nullptr || route->model.empty())
            throw Error("{}: the plan chose no model for class '{}': {}", portfolio_file.string(), task_class,
                        rec.decision);
        rec.model = *plan.find_model(route->model);
        return rec;
    }
    throw Error("{}: the plan decided no class '{}' (it decided: {})", decision_file.string(), task_class, classes);
}

model::Portfolio with_rollout(const model::Portfolio & live, const std::string & route_name, const Recommendation & rec,
                              model::Shadow thresholds) {
    model::Portfolio next = live;
    auto route = std::find_if(next.routes.begin(), next.routes.end(),
                              [&](const model::Route & r) { return r.name == route_name; });
    if (route == next.routes.end())
        throw RolloutConflict("this portfolio has no route '" + route_name +
                              "' (give 'route' when the class is served under another name)");
    if (route->cascade)
        throw RolloutConflict("route '" + route_name +
                              "' is a cascade: shadow one of its models by editing the portfolio");
    if (const auto * same = next.find_model(rec.model.name); same != nullptr) {
        // The plan's entry carries the settings it was measured with; a different model under the same name is not it.
        if (same->path != rec.model.path || same->endpoint != rec.model.endpoint)
            throw RolloutConflict("a model named '" + rec.model.name + "' already serves here and is not the plan's (" +
                                  (same->path.empty() ? same->endpoint : same->path.string()) + "); rename one");
    } else {
        next.models.push_back(rec.model);
    }
    if (route->model == rec.model.name)
        throw RolloutConflict("route '" + route_name + "' already serves " + rec.model.name + ": nothing to roll out");
    thresholds.model = rec.model.name;
    thresholds.evidence = rec.evidence.string();
    thresholds.decision = rec.decision;
    route->shadow = thresholds;
    return next;
}

std::optional<model::Portfolio> with_verdict(const model::Portfolio & live, const std::string & route_name,
                                             const std::string & candidate, bool promote,
                                             const ShadowCounters * counted) {
    model::Portfolio next = live;
    auto route = std::find_if(next.routes.begin(), next.routes.end(), [&](const model::Route & r) {
        return r.name == route_name && r.shadow && r.shadow->model == candidate;
    });
    if (route == next.routes.end()) return std::nullopt;
    const model::Shadow shadow = *route->shadow;
    route->shadow.reset();
    if (!promote) return next;
    // What the route's model now rests on: the live comparison, and the plan's evidence when a rollout started it.
    route->note = counted == nullptr
        ? "promoted from shadow"
        : fmt::format("promoted from shadow: token agreement {:.3f} over {} mirrored requests (exact {:.3f})",
                      counted->agreement(), counted->samples, counted->exact_rate());
    if (!shadow.decision.empty()) route->note += "; plan: " + shadow.decision;
    route->evidence = shadow.evidence;
    // The incumbent stays reachable as the first fallback.
    auto & fb = route->fallback;
    fb.erase(std::remove(fb.begin(), fb.end(), candidate), fb.end());
    if (std::find(fb.begin(), fb.end(), route->model) == fb.end()) fb.insert(fb.begin(), route->model);
    route->model = candidate;
    return next;
}

}  // namespace switchyard::serve
