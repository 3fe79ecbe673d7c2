// Small SVG charts (scatter with an optional front line, horizontal bars) written as text, so the
// report is one self-contained page that renders without scripts or network.
#pragma once

#include <string>
#include <vector>

namespace switchyard::report {

struct Point {
    double x = 0;
    double y = 0;
    std::string label;
    std::string
        group;  // colours the point: "original", "variant", "alternative", "chosen"; "pass", "fail", "insufficient"
};

// A threshold drawn across the plot (a policy's limit), at x = `at` when vertical, else y = `at`.
struct Limit {
    bool vertical = false;
    double at = 0;
    std::string label;
};

struct ScatterChart {
    std::string title;
    std::string x_label;
    std::string y_label;
    bool x_log = false;
    std::vector<Point> points;
    std::vector<Point> front;  // joined by a line, in order (e.g. the Pareto front)
    std::vector<Limit> limits;
};

struct Bar {
    std::string label;
    double value = 0;
    std::string group;
    std::string shown;  // the value as text beside the bar
};

struct BarChart {
    std::string title;
    std::string unit;
    std::vector<Bar> bars;
};

std::string escape_xml(const std::string & text);
std::string render(const ScatterChart & chart);
std::string render(const BarChart & chart);

}  // namespace switchyard::report
