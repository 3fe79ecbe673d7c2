// The dashboard page served at GET /: one self-contained HTML file that polls GET /stats.
#pragma once

#include <string>

namespace switchyard::serve {

const std::string & dashboard_html();

}  // namespace switchyard::serve
