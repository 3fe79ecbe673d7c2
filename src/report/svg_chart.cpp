#include "report/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace switchyard::report {

namespace {

const char * colour(const std::string & group) {
    if (group == "original") return "#1f4e79";
    if (group == "chosen" || group == "pass") return "#2e7d32";
    if (group == "insufficient") return "#b35900";
    if (group == "fail") return "#b71c1c";
    if (group == "alternative") return "#b35900";
    return "#6a6a6a";
}

struct Axis {
    double lo = 0;
    double hi = 1;
    bool log = false;
    double map(double v, double from, double to) const {
        const double a = log ? std::log10(std::max(v, 1e-12)) : v;
        const double l = log ? std::log10(std::max(lo, 1e-12)) : lo;
        const double h = log ? std::log10(std::max(hi, 1e-12)) : hi;
        return h > l ? from + (a - l) / (h - l) * (to - from) : (from + to) / 2;
    }
};

Axis axis_for(const std::vector<double> & values, bool log) {
    Axis a{.log = log};
    if (values.empty()) return a;
    a.lo = *std::min_element(values.begin(), values.end());
    a.hi = *std::max_element(values.begin(), values.end());
    if (log) {
        a.lo /= 1.25;
        a.hi *= 1.25;
    } else {
        const double pad = a.hi > a.lo ? 0.08 * (a.hi - a.lo) : std::max(std::abs(a.hi) * 0.1, 0.01);
        a.lo = a.lo >= 0 ? std::max(0.0, a.lo - pad) : a.lo - pad;  // no negative ticks for quantities that cannot be
        a.hi += pad;
    }
    return a;
}

std::string number(double v) { return std::abs(v) >= 100 ? fmt::format("{:.0f}", v) : fmt::format("{:.3g}", v); }

}  // namespace

std::string escape_xml(const std::string & text) {
    std::string out;
    for (const char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string render(const ScatterChart & c) {
    const double width = 640, height = 360, left = 70, right = 110, top = 36,
                 bottom = 50;  // room on the right for the labels of the rightmost points
    std::vector<double> xs, ys;
    for (const auto & p : c.points) {
        xs.push_back(p.x);
        ys.push_back(p.y);
    }
    for (const auto & l : c.limits) (l.vertical ? xs : ys).push_back(l.at);  // a limit is always in view
    const Axis ax = axis_for(xs, c.x_log);
    const Axis ay = axis_for(ys, false);
    auto px = [&](double v) { return ax.map(v, left, width - right); };
    auto py = [&](double v) { return ay.map(v, height - bottom, top); };
    std::string svg = fmt::format(
        R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" aria-label="{}" class="chart">)",
        width, height, escape_xml(c.title));
    svg += fmt::format(R"(<text x="{}" y="20" class="title">{}</text>)", left, escape_xml(c.title));
    svg += fmt::format(
        R"(<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" class="axis"/><line x1="{0}" y1="{3}" x2="{0}" y2="{1}" class="axis"/>)",
        left, height - bottom, width - right, top);
    for (int i = 0; i <= 4; ++i) {
        const double vy = ay.lo + (ay.hi - ay.lo) * i / 4;
        svg += fmt::format(R"(<text x="{}" y="{:.1f}" class="tick" text-anchor="end">{}</text>)", left - 6, py(vy) + 4,
                           number(vy));
        const double vx = ax.log ? std::pow(10, std::log10(ax.lo) + (std::log10(ax.hi) - std::log10(ax.lo)) * i / 4)
                                 : ax.lo + (ax.hi - ax.lo) * i / 4;
        svg += fmt::format(R"(<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{}</text>)", px(vx),
                           height - bottom + 16, number(vx));
    }
    svg += fmt::format(R"(<text x="{}" y="{}" class="label" text-anchor="middle">{}</text>)",
                       (left + width - right) / 2, height - 10, escape_xml(c.x_label));
    svg += fmt::format(
        R"svg(<text x="14" y="{}" class="label" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>)svg",
        (top + height - bottom) / 2, (top + height - bottom) / 2, escape_xml(c.y_label));
    if (c.front.size() > 1) {
        std::string path;
        for (const auto & p : c.front)
            path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px(p.x), py(p.y));
        svg += fmt::format(R"(<path d="{}" class="front"/>)", path);
    }
    for (const auto & l : c.limits) {
        if (l.vertical)
            svg += fmt::format(
                R"(<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" class="limit v"/><text x="{3:.1f}" y="{4}" class="limit-label">{5}</text>)",
                px(l.at), top, height - bottom, px(l.at) + 4, top + 12, escape_xml(l.label));
        else
            svg += fmt::format(
                R"(<line x1="{0}" y1="{1:.1f}" x2="{2}" y2="{1:.1f}" class="limit h"/><text x="{3}" y="{4:.1f}" class="limit-label">{5}</text>)",
                left, py(l.at), width - right, left + 4, py(l.at) - 4, escape_xml(l.label));
    }
    for (const auto & p : c.points) {
        svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="5" fill="{}"><title>{}</title></circle>)", px(p.x),
                           py(p.y), colour(p.group), escape_xml(p.label));
        svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="point">{}</text>)", px(p.x) + 7, py(p.y) - 6,
                           escape_xml(p.label));
    }
    return svg + "</svg>";
}

std::string render(const BarChart & c) {
    const double width = 640, label_width = 190, row = 22, top = 34;
    const double height = top + row * static_cast<double>(c.bars.size()) + 10;
    double max = 0;
    for (const auto & b : c.bars) max = std::max(max, b.value);
    std::string svg = fmt::format(
        R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" aria-label="{}" class="chart">)",
        width, height, escape_xml(c.title));
    svg += fmt::format(R"(<text x="10" y="20" class="title">{}</text>)",
                       escape_xml(c.title + (c.unit.empty() ? "" : " (" + c.unit + ")")));
    for (std::size_t i = 0; i < c.bars.size(); ++i) {
        const auto & b = c.bars[i];
        const double y = top + row * static_cast<double>(i);
        const double w = max > 0 ? (width - label_width - 110) * b.value / max : 0;
        svg += fmt::format(R"(<text x="{}" y="{:.1f}" class="tick" text-anchor="end">{}</text>)", label_width - 8,
                           y + 14, escape_xml(b.label));
        svg += fmt::format(R"(<rect x="{}" y="{:.1f}" width="{:.1f}" height="{}" fill="{}"/>)", label_width, y + 3,
                           std::max(w, 1.0), row - 6, colour(b.group));
        svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="tick">{}</text>)", label_width + std::max(w, 1.0) + 6,
                           y + 14, escape_xml(b.shown));
    }
    return svg + "</svg>";
}

}  // namespace switchyard::report
