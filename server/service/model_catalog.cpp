#include "server/service/model_catalog.h"

#include <algorithm>
#include <stdexcept>

#include "api/api_error.h"

namespace rwkv::server::service {

ModelCatalog::ModelCatalog(std::vector<std::string> names, std::vector<std::string> aliases)
    : names_(std::move(names)) {
  if (aliases.empty()) aliases.push_back(canonical() + "-query=search_query");
  if (aliases == std::vector<std::string>{"none"}) aliases.clear();
  for (const std::string& spec : aliases) {
    const size_t eq = spec.find('=');
    const auto type =
        eq == std::string::npos ? std::nullopt : api::input_type_from_name(spec.substr(eq + 1));
    if (!type || eq == 0)
      throw std::runtime_error("--input-type-model '" + spec +
                               "': expected NAME=INPUT_TYPE with INPUT_TYPE one of "
                               "search_document, search_query, sts, classification, clustering");
    const std::string name = spec.substr(0, eq);
    if (serves(name))
      throw std::runtime_error("--input-type-model '" + spec + "': '" + name +
                               "' is already a served model name");
    typed_.emplace_back(name, *type);
  }
}

bool ModelCatalog::serves(const std::string& name) const {
  return name.empty() || std::find(names_.begin(), names_.end(), name) != names_.end() ||
         std::any_of(typed_.begin(), typed_.end(),
                     [&](const auto& alias) { return alias.first == name; });
}

std::string ModelCatalog::resolve(const std::string& name) const {
  if (!serves(name))
    throw api::ApiError(404,
                        "the model '" + name + "' does not exist; this server serves '" +
                            canonical() + "' (add aliases with --served-model-name)",
                        "model", "model_not_found");
  return name.empty() ? canonical() : name;
}

api::InputType ModelCatalog::input_type_for(const api::TextOptions& text,
                                            const std::string& model) const {
  if (text.input_type) return *text.input_type;
  for (const auto& [name, type] : typed_)
    if (name == model) return type;
  return api::InputType::kSearchDocument;
}

}  // namespace rwkv::server::service
