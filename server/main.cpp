// rwkv-emb-server: one binary for the HTTP server and its command-line tools.
// Without a subcommand it runs `serve`.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "server/cli_tools.h"
#include "server/serve_command.h"

int main(int argc, char** argv) {
  CLI::App app{"rwkv-emb-server: EmbeddingRWKV embeddings and reranking over HTTP"};
  int exit_code = 0;
  rwkv::server::add_serve_command(app, exit_code);
  rwkv::cli::add_tokenize_command(app);
  rwkv::cli::add_embed_command(app);
  rwkv::cli::add_rerank_command(app);
  app.require_subcommand(1);

  std::vector<std::string> args(argv + 1, argv + argc);
  const bool top_level_help = !args.empty() && (args[0] == "-h" || args[0] == "--help");
  if (!top_level_help && (args.empty() || args[0].starts_with("-")))
    args.insert(args.begin(), "serve");
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "rwkv-emb-server: " << e.what() << '\n';
    return 1;
  }
  return exit_code;
}
