// `rwkv-emb-server serve`: options (config file, RWKV_EMB_* variables, flags),
// model loading, the scheduler and the HTTP server, graceful shutdown.
#pragma once

#include <CLI/CLI.hpp>

namespace rwkv::server {

// Adds the subcommand; its callback runs the server and sets `exit_code`.
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace rwkv::server
