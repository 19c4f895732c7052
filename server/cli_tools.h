// Command-line faces of the binary that scripts and tests use: tokenize,
// embed and rerank, reading JSON lines on stdin and writing JSON lines.
#pragma once

#include <CLI/CLI.hpp>

namespace rwkv::cli {

void add_tokenize_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_rerank_command(CLI::App& app);

}  // namespace rwkv::cli
