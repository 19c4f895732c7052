// Routes called as plain values through Router::dispatch (no socket): how
// failures map to statuses and what the rerank route feeds the model for a
// truncated document; and, over real HTTP, how a failure after the wait is
// answered.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "engine/io/checkpoint.h"
#include "engine/io/random_model.h"
#include "engine/text/prompt_templates.h"
#include "engine/text/tokenizer.h"
#include "server/error_table.h"
#include "server/http_server.h"
#include "server/routes.h"
#include "tests/support/fixture_data.h"

namespace rwkv::server {
namespace {

using nlohmann::json;

http::Request post(const std::string& path, const std::string& body) {
  http::Request r;
  r.method = "POST";
  r.path = path;
  r.body = body;
  return r;
}

// A router on a server that never listens: its routes are called through dispatch().
struct Routes {
  explicit Routes(ServerContext& ctx) : router(http, router_options(ctx)) {}
  http::DeadlineHttpServer http{1};
  http::Router router;
};

// An HTTP server on a free loopback port, serving until destroyed.
class TestServer {
 public:
  explicit TestServer(ServerContext& ctx)
      : router_(http_, router_options(ctx)), port_(http_.bind_to_any_port("127.0.0.1")) {}
  void start() {
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    while (!http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestServer() {
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }
  http::Router& router() { return router_; }
  httplib::Result post(const std::string& path, const json& body) {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(60, 0);
    return client.Post(path.c_str(), body.dump(), "application/json");
  }

 private:
  http::DeadlineHttpServer http_{4};
  http::Router router_;
  int port_;
  std::thread thread_;
};

TEST(HttpRoutes, ValidationErrorsAreClientErrorsAndInternalOnesAreGeneric500s) {
  ServerContext ctx;
  Routes routes(ctx);
  const auto route = [&](const std::string& path, http::ErrorStyle style, auto fail) {
    routes.router.add({"POST", path, style},
                      [fail](const http::Request&, http::RequestContext&) -> http::Response {
                        fail();
                        return {};
                      });
  };
  route("/validation", http::ErrorStyle::kOpenAI,
        [] { throw api::ApiError::bad_request("'input' must not be empty", "input"); });
  route("/tokens", http::ErrorStyle::kOpenAI,
        [] { throw model::InvalidTokens("token id 70000 is outside the vocabulary"); });
  route("/shape", http::ErrorStyle::kOpenAI,
        [] { throw std::invalid_argument("state does not match the model's shape"); });
  route("/stoi", http::ErrorStyle::kCohere, [] { (void)std::stoi("not a number"); });

  http::Response r = routes.router.dispatch(post("/validation", "{}"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["error"]["param"], "input");
  r = routes.router.dispatch(post("/tokens", "{}"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("outside the vocabulary"), std::string::npos);

  // Internal inconsistencies are the server's fault, and their details stay in its log.
  r = routes.router.dispatch(post("/shape", "{}"));
  EXPECT_EQ(r.status, 500);
  const json openai = json::parse(r.body);
  EXPECT_EQ(openai["error"]["type"], "server_error");
  EXPECT_EQ(r.body.find("shape"), std::string::npos) << r.body;
  r = routes.router.dispatch(post("/stoi", "{}"));
  EXPECT_EQ(r.status, 500);
  const json cohere = json::parse(r.body);
  EXPECT_TRUE(cohere.contains("message") && !cohere.contains("error")) << r.body;
  EXPECT_EQ(r.body.find("stoi"), std::string::npos) << r.body;
}

// The demo model behind one route that queues real work and then fails while
// building its answer: the shape of every failure found after the wait (the
// engine's, the state store's). A long job in front makes it wait.
class LateFailure : public ::testing::TestWithParam<http::ErrorStyle> {
 protected:
  void SetUp() override {
    model::EngineOptions one_slot;
    one_slot.max_slots = 1;
    one_slot.chunk_tokens = 16;
    ctx_.engine = std::make_unique<model::Engine>(
        kernels::make_cpu_backend(1),
        io::make_random_embedding_checkpoint(io::ModelShape::demo(), 0), nullptr, one_slot);
    ctx_.scheduler =
        std::make_unique<scheduling::Scheduler>(*ctx_.engine, scheduling::SchedulerOptions{});
  }
  // Serves /late: real work, then a failure while its answer is built.
  void serve(double heartbeat_seconds) {
    ctx_.options.heartbeat_seconds = heartbeat_seconds;
    server_ = std::make_unique<TestServer>(ctx_);
    server_->router().add(
        {"POST", "/late", GetParam()}, [this](const http::Request&, http::RequestContext& rc) {
          service::Pending<int> pending(ctx_.scheduler->submit({job({1, 2, 3})}),
                                        [](std::vector<model::Engine::Result>&) -> int {
                                          throw std::runtime_error("internal detail");
                                        });
          return answer(rc, std::move(pending), [](int) { return json(); });
        });
    server_->start();
  }
  static scheduling::SequenceJob job(std::vector<int32_t> tokens) {
    scheduling::SequenceJob j;
    j.tokens = std::move(tokens);
    j.tokens.push_back(text::Tokenizer::kEos);
    j.wanted = {model::Output::kRetrievalEmbedding};
    return j;
  }

  // Posts /late behind a long job, cancelled after 400 ms; returns the answer.
  httplib::Result post_late() {
    const auto in_front = ctx_.scheduler->submit({job(std::vector<int32_t>(100000, 100))});
    std::thread cancel([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      in_front->cancel();
    });
    const auto start = std::chrono::steady_clock::now();
    httplib::Result r = server_->post("/late", json::object());
    EXPECT_GT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300))
        << "it should have failed well after its first 100 ms";
    cancel.join();
    return r;
  }

  void expect_error_shape(const std::string& body) {
    const json j = json::parse(body);
    if (GetParam() == http::ErrorStyle::kCohere)
      EXPECT_TRUE(j.contains("message") && !j.contains("error")) << body;
    else
      EXPECT_EQ(j["error"]["type"], "server_error") << body;
    EXPECT_EQ(body.find("internal detail"), std::string::npos) << body;
  }

  ServerContext ctx_;
  std::unique_ptr<TestServer> server_;  // stops before ctx_'s scheduler
};

TEST_P(LateFailure, AfterTheFirst100msStillGetsItsRealStatusInTheRoutesShape) {
  serve(0);
  const httplib::Result r = post_late();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500) << r->body;
  EXPECT_TRUE(r->has_header("Content-Length"));
  EXPECT_FALSE(r->has_header("Transfer-Encoding"));
  expect_error_shape(r->body);
}

TEST_P(LateFailure, WithHeartbeatsIsLoggedAndCountedAsItsStatusUnderThe200) {
  serve(0.05);
  const httplib::Result r = post_late();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Transfer-Encoding"), "chunked");
  ASSERT_TRUE(r->body.starts_with(" ")) << r->body;
  expect_error_shape(r->body);
  // Counted once the body is out, which the client may see first.
  const std::string counted = "route=\"/late\",status=\"500\"} 1";
  for (int i = 0; i < 100 && ctx_.metrics.serialize().find(counted) == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(ctx_.metrics.serialize().find(counted), std::string::npos) << ctx_.metrics.serialize();
}

INSTANTIATE_TEST_SUITE_P(Styles, LateFailure,
                         ::testing::Values(http::ErrorStyle::kOpenAI, http::ErrorStyle::kCohere),
                         [](const auto& info) {
                           return info.param == http::ErrorStyle::kCohere ? "Cohere" : "OpenAI";
                         });

const std::string kPrefix = std::string(text::kRerankInstruction) + "Document: ";
const std::string kQuery = "what is this?";

bool starts_with(const std::vector<int32_t>& ids, const std::vector<int32_t>& head) {
  return ids.size() >= head.size() && std::equal(head.begin(), head.end(), ids.begin());
}

// The fixture model with the rr_idx reranker, behind the rerank routes.
class RerankTruncation : public ::testing::Test {
 protected:
  void SetUp() override {
    RWKV_REQUIRE_FIXTURES();
    embedding_ = io::load_checkpoint(test::fixtures_dir() + "/embedding.pth");
    reranker_ = io::load_checkpoint(test::fixtures_dir() + "/reranker_idx.pth");
    ctx_.catalog = service::ModelCatalog({"rwkv-fixture"}, {"none"});
    ctx_.engine = std::make_unique<model::Engine>(kernels::make_cpu_backend(1), *embedding_,
                                                  &*reranker_, model::EngineOptions{});
    ctx_.scheduler =
        std::make_unique<scheduling::Scheduler>(*ctx_.engine, scheduling::SchedulerOptions{});
    ctx_.states = states::make_state_store({.kind = states::StoreKind::kMemory});
    ctx_.state_cache = std::make_unique<states::DecodedStateCache>(0);
    routes_ = std::make_unique<Routes>(ctx_);
    register_rerank_routes(routes_->router, ctx_);
  }
  void TearDown() override {
    routes_.reset();
    if (ctx_.scheduler) ctx_.scheduler->shutdown();
  }

  // What the server scores `document` at, cut to `max_tokens` of its tokens.
  double served_score(const std::string& document, const std::string& query, int max_tokens) {
    const std::string body =
        json{{"query", query}, {"documents", {document}}, {"max_tokens_per_doc", max_tokens}}
            .dump();
    const http::Response r = routes_->router.dispatch(post("/v1/rerank", body));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return NAN;
    return json::parse(r.body)["results"][0]["relevance_score"].get<double>();
  }

  // The score of exactly these ids, from an engine of its own.
  double score_of(const std::vector<int32_t>& ids) {
    model::Engine engine(kernels::make_cpu_backend(1), *embedding_, &*reranker_,
                         model::EngineOptions{});
    const model::Outputs wanted{model::Output::kRerankLogit};
    const std::vector<model::Engine::Sequence> seqs = {{ids}};
    return 1.0 / (1.0 + std::exp(-double(engine.run(seqs, wanted)[0].logit)));
  }

  // Cuts `document` after `cut` (its first bytes) at the token level and checks
  // that the server scores what the model gets for that: the template and the
  // document tokenized together up to the cut, then "\nQuery: ..." + EOS
  // tokenized apart. Returns what the old way (the cut text decoded and the
  // template encoded around it) would have sent, for the premises.
  void expect_token_level_cut(const std::string& document, const std::string& cut,
                              std::vector<int32_t>* old_ids) {
    const text::Tokenizer& tok = text::Tokenizer::world();
    const std::vector<int32_t> whole = tok.encode(kPrefix + document, false);
    const std::vector<int32_t> up_to_cut = tok.encode(kPrefix + cut, false);
    // "Document:" then the document's tokens; its first takes the space before it.
    const std::vector<int32_t> before = tok.encode(kPrefix.substr(0, kPrefix.size() - 1), false);
    ASSERT_TRUE(starts_with(whole, up_to_cut)) << "the cut must fall between two tokens";
    ASSERT_TRUE(starts_with(up_to_cut, before));
    ASSERT_GT(up_to_cut.size(), before.size());
    const size_t keep = up_to_cut.size() - before.size();
    std::vector<int32_t> want = up_to_cut;
    tok.encode_into("\nQuery: " + kQuery, want);
    want.push_back(text::Tokenizer::kEos);

    const std::vector<int32_t> own = tok.encode(document, false);
    *old_ids = tok.encode(text::rerank_online_text(tok.decode(std::span(own).first(keep)), kQuery));
    EXPECT_NEAR(served_score(document, kQuery, int(keep)), score_of(want), 1e-6);
    EXPECT_NE(*old_ids, want);  // the premise: the old way scores something else
  }

  std::optional<io::Checkpoint> embedding_, reranker_;
  ServerContext ctx_;
  std::unique_ptr<Routes> routes_;
};

TEST_F(RerankTruncation, CutsInsideAMultiByteCharacterAtTheTokenLevel) {
  // In the template: " 🙂", F0 9F, 99 82, " smile"; alone, 🙂 is two tokens.
  const std::string cut = "\xF0\x9F\x99\x82\xF0\x9F";  // 🙂, then half of the next
  std::vector<int32_t> old_ids;
  expect_token_level_cut("\xF0\x9F\x99\x82\xF0\x9F\x99\x82 smile", cut, &old_ids);
}

TEST_F(RerankTruncation, KeepsTheTokensThatReencodingWouldMergeWithTheTemplate) {
  // Re-encoded, the cut's "\n" and the template's "\nQuery" become one "\n\n" token.
  std::vector<int32_t> old_ids;
  expect_token_level_cut("Hello world.\nNext line", "Hello world.\n", &old_ids);
  EXPECT_NE(
      std::find(old_ids.begin(), old_ids.end(), text::Tokenizer::world().encode("\n\n", false)[0]),
      old_ids.end());
}

}  // namespace
}  // namespace rwkv::server
