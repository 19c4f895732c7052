// The model names a request may give: the served names (--served-model-name,
// the first canonical) and the aliases that imply an input type
// (--input-type-model).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "api/input_protocol.h"

namespace rwkv::server::service {

class ModelCatalog {
 public:
  ModelCatalog() = default;
  // `aliases`: NAME=INPUT_TYPE each; empty: <first name>-query=search_query;
  // {"none"}: no aliases. std::runtime_error (a start-up error) for a malformed
  // one or an alias that is already a served name.
  ModelCatalog(std::vector<std::string> names, std::vector<std::string> aliases);

  const std::string& canonical() const { return names_.front(); }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<std::pair<std::string, api::InputType>>& typed_aliases() const {
    return typed_;
  }

  // True when `name` is empty (clients may omit it), a served name or a typed alias.
  bool serves(const std::string& name) const;
  // The name a response reports: `name`, or the canonical one when it is
  // empty. Throws the 404 (model_not_found) for a name this server does not serve.
  std::string resolve(const std::string& name) const;
  // The input type of a text request: its own field, else its model alias's,
  // else search_document.
  api::InputType input_type_for(const api::TextOptions& text, const std::string& model) const;

 private:
  std::vector<std::string> names_;
  std::vector<std::pair<std::string, api::InputType>> typed_;
};

}  // namespace rwkv::server::service
