// Documentation routes: the OpenAPI description as JSON, Swagger UI rendering
// it at /docs from files embedded in the binary (nothing is fetched from
// elsewhere), and a front page at / that links both. Like /health they need
// no API key: they show only what api/openapi.yaml says, to anyone who can
// reach the server.
#include "server/openapi.h"
#include "server/routes.h"

namespace rwkv::server {
namespace {

// Relative links, so that the pages also work behind a proxy that serves the
// API under a path prefix. validatorUrl: null keeps Swagger UI from sending
// the document to its public validator.
constexpr const char* kDocsPage = R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rwkv-emb-server API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<noscript>This page needs JavaScript. The API description is at <a href="openapi.json">openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", validatorUrl: null});</script>
</body>
</html>
)";

constexpr const char* kFrontPage = R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rwkv-emb-server</title>
</head>
<body>
<h1>rwkv-emb-server )" RWKV_EMB_VERSION R"(</h1>
<p>Embeddings and reranking with EmbeddingRWKV models.
See the <a href="docs">API documentation</a> (<a href="openapi.json">OpenAPI description</a>).</p>
</body>
</html>
)";

void add_static(http::Router& router, const std::string& path, std::string_view content,
                const char* type) {
  router.add({"GET", path, http::ErrorStyle::kOpenAI, false},
             [content, type](const http::Request&, http::RequestContext&) {
               return http::Response::content(std::string(content), type);
             });
}

}  // namespace

void register_docs_routes(http::Router& router) {
  add_static(router, "/", kFrontPage, "text/html; charset=utf-8");
  add_static(router, "/openapi.json", openapi_json(), "application/json");
  add_static(router, "/docs", kDocsPage, "text/html; charset=utf-8");
  add_static(router, "/docs/swagger-ui-bundle.js", swagger_ui_bundle_js(),
             "text/javascript; charset=utf-8");
  add_static(router, "/docs/swagger-ui.css", swagger_ui_css(), "text/css; charset=utf-8");
}

}  // namespace rwkv::server
