// The subcommands of the switchyard CLI: each registers its flags and runs its module.
#pragma once

namespace CLI {
class App;
}

namespace switchyard::cli {

void add_inspect(CLI::App & app);
void add_generate(CLI::App & app);
void add_quantize(CLI::App & app);  // also `rebuild`
void add_calibrate(CLI::App & app);
void add_prune(CLI::App & app);
void add_awq(CLI::App & app);
void add_mix(CLI::App & app);  // also `sensitivity`, `compare`
void add_eval(CLI::App & app);
void add_tasks(CLI::App & app);
void add_plan(CLI::App & app);
void add_serve(CLI::App & app);
void add_check_engine(CLI::App & app);
void add_make_model(CLI::App & app);

}  // namespace switchyard::cli
