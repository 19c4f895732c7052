#include "server/server_context.h"

#include <algorithm>

#include "api/api_error.h"

namespace rwkv::server {

bool ServerContext::serves(const std::string& name) const {
  return name.empty() ||
         std::find(options.served_model_names.begin(), options.served_model_names.end(), name) !=
             options.served_model_names.end() ||
         std::any_of(typed_models.begin(), typed_models.end(),
                     [&](const auto& alias) { return alias.first == name; });
}

void ServerContext::require_model(const std::string& name) const {
  if (!serves(name))
    throw api::ApiError(404,
                        "the model '" + name + "' does not exist; this server serves '" +
                            model_name() + "' (add aliases with --served-model-name)",
                        "model", "model_not_found");
}

api::InputType ServerContext::input_type_for(const api::TextOptions& text,
                                             const std::string& model) const {
  if (text.input_type) return *text.input_type;
  for (const auto& [name, type] : typed_models)
    if (name == model) return type;
  return api::InputType::kSearchDocument;
}

api::RequestLimits ServerContext::request_limits() const {
  api::RequestLimits limits;
  limits.max_inputs = options.max_inputs;
  limits.max_documents = options.max_inputs;
  limits.max_input_tokens = size_t(options.max_input_tokens);
  return limits;
}

}  // namespace rwkv::server
