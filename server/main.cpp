// rwkv-emb-server: one binary for the HTTP server and its command-line tools.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "server/cli_tools.h"

int main(int argc, char** argv) {
  CLI::App app{"rwkv-emb-server: EmbeddingRWKV embeddings and reranking"};
  app.require_subcommand(1);
  rwkv::cli::add_tokenize_command(app);
  rwkv::cli::add_embed_command(app);
  rwkv::cli::add_rerank_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "rwkv-emb-server: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
