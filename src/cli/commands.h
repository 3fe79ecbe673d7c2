// The subcommands of the switchyard CLI: each registers its flags and runs its module.
#pragma once

namespace CLI {
class App;
}

namespace switchyard::cli {

void add_inspect(CLI::App & app);
void add_generate(CLI::App & app);

}  // namespace switchyard::cli
