// The dashboard page served at GET / : dashboard.html, embedded in the
// binary at build time (embed_file.cmake), so it needs no files at run time.
#pragma once

#include <string_view>

namespace aiocluster::agent {

std::string_view dashboard_html();

}  // namespace aiocluster::agent
