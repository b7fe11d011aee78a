// `longrec serve` over a real loopback socket: the answers are the library's,
// events posted one by one build the same state as the whole history, and bad
// requests get a 4xx with a message while the server keeps serving and no
// state changes.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <thread>

#include <fmt/format.h>

#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "longrec/ckpt/bundle.h"
#include "longrec/serve/http_server.h"
#include "longrec/serve/recommender.h"
#include "support/running_server.h"
#include "support/trained_fixture.h"
#include "support/trained_hllm_fixture.h"

namespace longrec::serve {

using testing::trained;

namespace {

using nlohmann::json;

using testing::RunningServer;

// The trained HSTU model's bundle, exported once.
std::filesystem::path hstu_bundle() {
  auto& t = trained();
  const auto path = t.dir / "http.h5";
  if (!std::filesystem::exists(path)) {
    ckpt::ExportOptions e;
    e.checkpoint = t.run.string();
    e.out = path.string();
    ckpt::export_bundle(e);
  }
  return path;
}

json body_of(const httplib::Result& res) { return json::parse(res->body); }

std::vector<std::int64_t> items_of(const json& answer) {
  std::vector<std::int64_t> out;
  for (const auto& r : answer.at("items")) out.push_back(r.at("item").get<std::int64_t>());
  return out;
}

std::vector<std::int64_t> raw_history(int n) {
  const auto raw = data::HistoryStoreReader(trained().dataset).item_raw_ids();
  std::vector<std::int64_t> history;
  for (int e = 0; e < n; ++e) history.push_back(raw[static_cast<std::size_t>((13 * e + 5) % 120)]);
  return history;
}

}  // namespace

TEST(HttpServer, AnswersAsTheLibraryAndEventsBuildTheSameState) {
  RunningServer s(hstu_bundle());
  auto client = s.client();
  const auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(body_of(health).at("items"), 120);
  EXPECT_EQ(health->get_header_value("Content-Type"), "application/json");

  const auto history = raw_history(40);
  const auto expected = s.recommender->recommend(history, 10);
  const auto res = client.Post("/recommend", json{{"history", history}, {"k", 10}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto answer = body_of(res);
  ASSERT_EQ(answer.at("items").size(), 10u);
  for (std::size_t j = 0; j < 10; ++j) {
    EXPECT_EQ(answer["items"][j]["item"], expected[j].item) << j;
    EXPECT_NEAR(answer["items"][j]["score"].get<double>(), expected[j].score, 1e-6);
  }

  // Events posted as they arrive (first 5, then one at a time) -> the same
  // answers as the whole history, from the server-held state.
  auto post =
      client.Post("/users/alice/events", json{{"items", std::vector(history.begin(), history.begin() + 5)}}.dump(),
                  "application/json");
  ASSERT_EQ(post->status, 200) << post->body;
  EXPECT_TRUE(body_of(post).at("created").get<bool>());
  for (std::size_t e = 5; e < history.size(); ++e) {
    post = client.Post("/users/alice/events", json{{"items", {history[e]}}}.dump(), "application/json");
    ASSERT_EQ(post->status, 200) << post->body;
  }
  const auto user = body_of(post);
  EXPECT_EQ(user.at("events"), 40);
  EXPECT_EQ(user.at("cached_tokens"), 2);
  const auto state = s.recommender->create_state(history);
  const auto from_state = client.Get("/users/alice/recommend?k=10&exclude_seen=false");
  ASSERT_EQ(from_state->status, 200) << from_state->body;
  std::vector<std::int64_t> want;
  for (const auto& r : s.recommender->recommend(state, 10, false)) want.push_back(r.item);
  EXPECT_EQ(items_of(body_of(from_state)), want);
  const auto from_state_excluded = items_of(body_of(client.Get("/users/alice/recommend?k=10")));
  EXPECT_EQ(from_state_excluded, items_of(body_of(client.Get("/users/alice/recommend"))));  // k=10, excluded: defaults
  EXPECT_EQ(s.server->users(), 1);

  // Many clients at once (one connection each): every request answered, all alike.
  std::vector<std::thread> threads;
  std::vector<int> ok(6, 0);
  for (int w = 0; w < 6; ++w) {
    threads.emplace_back([&, w] {
      auto c = s.client();
      for (int i = 0; i < 10; ++i) {
        const auto r = w % 2 == 0
                           ? c.Post("/recommend", json{{"history", history}, {"k", 10}}.dump(), "application/json")
                           : c.Get("/users/alice/recommend?k=10");
        const auto first = w % 2 == 0 ? expected[0].item : from_state_excluded[0];
        ok[w] += r && r->status == 200 && body_of(r)["items"][0]["item"] == first;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int w = 0; w < 6; ++w) EXPECT_EQ(ok[w], 10) << "client " << w;

  const auto deleted = client.Delete("/users/alice");
  EXPECT_EQ(deleted->status, 200);
  EXPECT_EQ(client.Get("/users/alice/recommend")->status, 404);
}

TEST(HttpServer, BadRequestsGetAMessageAndChangeNothing) {
  ServerOptions options;
  options.max_body_bytes = 4096;
  RunningServer s(hstu_bundle(), options);
  auto client = s.client();
  const auto history = raw_history(20);
  ASSERT_EQ(client.Post("/users/bob/events", json{{"items", history}}.dump(), "application/json")->status, 200);
  const auto before = body_of(client.Get("/users/bob/recommend?k=5"));

  const auto expect_refused = [&](const httplib::Result& res, int status, const std::string& message) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const auto body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << res->body;
    EXPECT_NE(body.value("error", std::string()).find(message), std::string::npos) << res->body;
  };
  const auto post = [&](const std::string& path, const std::string& body) {
    return client.Post(path, body, "application/json");
  };
  expect_refused(post("/recommend", R"({"history": [)"), 400, "malformed JSON");
  expect_refused(post("/recommend", "[1, 2]"), 400, "a JSON object is expected");
  expect_refused(post("/recommend", R"({"k": 3})"), 400, "\"history\" is missing");
  expect_refused(post("/recommend", R"({"history": "1,2"})"), 400, "\"history\" must be a list of integers");
  expect_refused(post("/recommend", json{{"history", {history[0], "x"}}}.dump()), 400,
                 "\"history\"[1] must be an integer");
  expect_refused(post("/recommend", R"({"history": []})"), 400, "empty history");
  expect_refused(post("/recommend", json{{"history", {history[0], 999999}}}.dump()), 400,
                 "item 999999 is not in the model's catalogue");
  expect_refused(post("/recommend", json{{"history", history}, {"k", 0}}.dump()), 400, "\"k\" must be 1..120");
  expect_refused(post("/recommend", json{{"history", history}, {"k", 121}}.dump()), 400, "\"k\" must be 1..120");
  expect_refused(post("/recommend", json{{"history", history}, {"k", "ten"}}.dump()), 400, "\"k\" must be an integer");
  expect_refused(post("/recommend", json{{"history", history}, {"times", {1}}}.dump()), 400, "one time per event");
  expect_refused(post("/recommend", json{{"history", std::vector<std::int64_t>(5000, history[0])}}.dump()), 413,
                 "over the server's limit");
  expect_refused(client.Get("/nowhere"), 404, "no route GET /nowhere");
  expect_refused(client.Get("/users/nobody/recommend"), 404, "unknown user 'nobody'");
  expect_refused(client.Get("/users/bob/recommend?k=abc"), 400, "k must be an integer");
  expect_refused(client.Get("/users/bob/recommend?k=0"), 400, "\"k\" must be 1..120");
  expect_refused(client.Get("/users/bob/recommend?exclude_seen=maybe"), 400, "exclude_seen must be true or false");
  // Events that cannot be appended: the user's state is untouched, a new user is not created.
  expect_refused(post("/users/bob/events", json{{"items", {history[0], 999999}}}.dump()), 400, "item 999999");
  expect_refused(post("/users/bob/events", R"({"items": []})"), 400, "\"items\" is empty");
  expect_refused(post("/users/bob/events", json{{"items", {history[0]}}, {"times", {7}}}.dump()), 400,
                 "append without times");
  expect_refused(post("/users/carol/events", json{{"items", {999999}}}.dump()), 400, "item 999999");
  expect_refused(post("/users/" + std::string(300, 'u') + "/events", json{{"items", {history[0]}}}.dump()), 400,
                 "user id of 300 bytes");
  expect_refused(post("/users/%FF%FE/events", json{{"items", {history[0]}}}.dump()), 400, "not valid UTF-8");
  expect_refused(client.Get("/%FF"), 404, "no route GET");  // echoed back with the bad bytes replaced
  expect_refused(post("/recommend", json{{"history", history}, {"k", 18446744073709551615ull}}.dump()), 400,
                 "\"k\" must be an integer");
  expect_refused(post("/recommend", R"({"history": [1, "\u00ff\xff"]})"), 400, "malformed JSON");
  EXPECT_EQ(s.server->users(), 1);
  EXPECT_EQ(body_of(client.Get("/users/bob/recommend?k=5")), before);
  EXPECT_EQ(client.Get("/healthz")->status, 200);
  // Events in one batch past the longest history the model reads (44): the state slides, the user is served.
  const auto many = raw_history(100);
  ASSERT_EQ(post("/users/carol/events", json{{"items", many}}.dump())->status, 200);
  const auto carol = client.Get("/users/carol/recommend?k=5");
  ASSERT_EQ(carol->status, 200) << carol->body;
  auto one_by_one = s.recommender->create_state({many[0]});
  for (std::size_t e = 1; e < many.size(); ++e) s.recommender->append(one_by_one, {many[e]});
  std::vector<std::int64_t> want;
  for (const auto& r : s.recommender->recommend(one_by_one, 5)) want.push_back(r.item);
  EXPECT_EQ(items_of(body_of(carol)), want);
}

// POST /items (hllm with the item LLM): 201 and the item recommendable by the
// next request; 409 for a duplicate id, 400 for a malformed body or an empty
// text, 422 where the bundle cannot encode items; the server goes on.
TEST(HttpServer, PostItemsAddsAnItemOrRefusesWithTheStatusOfWhy) {
  RunningServer s(testing::trained_hllm().bundle(true));
  auto client = s.client();
  const auto post = [&](const std::string& body) { return client.Post("/items", body, "application/json"); };
  const auto expect_refused = [&](const httplib::Result& res, int status, const std::string& message) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    EXPECT_NE(json::parse(res->body).value("error", std::string()).find(message), std::string::npos) << res->body;
  };
  EXPECT_TRUE(body_of(client.Get("/healthz")).at("new_items").get<bool>());
  const auto I = s.recommender->num_items();

  const auto added = post(json{{"id", 4242}, {"text", "title: Movie 4242 of Horror (1982), genres: Horror"}}.dump());
  ASSERT_TRUE(added);
  ASSERT_EQ(added->status, 201) << added->body;
  EXPECT_EQ(body_of(added), (json{{"id", 4242}, {"internal_id", I + 1}, {"items", I + 1}}));
  EXPECT_EQ(body_of(client.Get("/healthz")).at("items"), I + 1);
  // Recommendable and usable in a history by the next request.
  const auto ranked = client.Post("/recommend", json{{"history", {3, 9}}, {"k", I + 1}, {"exclude_seen", false}}.dump(),
                                  "application/json");
  ASSERT_EQ(ranked->status, 200) << ranked->body;
  const auto items = items_of(body_of(ranked));
  EXPECT_NE(std::find(items.begin(), items.end(), 4242), items.end());
  const auto with_new = client.Post("/users/dana/events", json{{"items", {3, 4242}}}.dump(), "application/json");
  EXPECT_EQ(with_new->status, 200) << with_new->body;

  expect_refused(post(""), 400, "malformed JSON");
  expect_refused(post(R"({"id": 4243, "text": "x)"), 400, "malformed JSON");
  expect_refused(post(json{{"id", 4242}, {"text", "title: again"}}.dump()), 409,
                 "item 4242 is already in the catalogue");
  expect_refused(post(json{{"id", 7}, {"text", "title: Movie 7"}}.dump()), 409, "item 7 is already in the catalogue");
  expect_refused(post(json{{"id", 4243}, {"text", ""}}.dump()), 400, "item 4243: \"text\" is empty");
  expect_refused(post(json{{"id", 4243}, {"text", "   "}}.dump()), 400, "\"text\" is empty");
  expect_refused(post(json{{"id", 4243}}.dump()), 400, "\"text\" is missing");
  expect_refused(post(json{{"id", 4243}, {"text", 12}}.dump()), 400, "\"text\" must be a string");
  expect_refused(post(json{{"text", "title: x"}}.dump()), 400, "\"id\" is missing");
  expect_refused(post(json{{"id", "4243"}, {"text", "title: x"}}.dump()), 400, "\"id\" must be an integer");
  expect_refused(post(R"({"id": 4243, "text": {"nested": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}})"), 400,
                 "nested deeper than 16 levels");
  EXPECT_EQ(body_of(client.Get("/healthz")).at("items"), I + 1);

  // A bundle without the item LLM, and an ID model: 422, and they go on serving.
  for (const auto& bundle : {testing::trained_hllm().bundle(false), hstu_bundle()}) {
    RunningServer other(bundle);
    auto c = other.client();
    EXPECT_FALSE(body_of(c.Get("/healthz")).at("new_items").get<bool>());
    const auto res = c.Post("/items", json{{"id", 4244}, {"text", "title: Movie 4244"}}.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 422) << res->body;
    EXPECT_NE(json::parse(res->body).value("error", std::string()).find("item 4244: cannot add items"),
              std::string::npos)
        << res->body;
    EXPECT_EQ(c.Get("/healthz")->status, 200);
  }
}

TEST(HttpServer, DropsTheLeastRecentlyUsedUserPastTheCap) {
  ServerOptions options;
  options.max_users = 2;
  RunningServer s(hstu_bundle(), options);
  auto client = s.client();
  const auto history = raw_history(3);
  const auto events = json{{"items", history}}.dump();
  for (const char* user : {"/users/a/events", "/users/b/events"}) {
    ASSERT_EQ(client.Post(user, events, "application/json")->status, 200);
  }
  ASSERT_EQ(client.Get("/users/a/recommend")->status, 200);  // a is now more recent than b
  ASSERT_EQ(client.Post("/users/c/events", events, "application/json")->status, 200);
  EXPECT_EQ(s.server->users(), 2);
  EXPECT_EQ(client.Get("/users/b/recommend")->status, 404);
  EXPECT_EQ(client.Get("/users/a/recommend")->status, 200);
  EXPECT_EQ(client.Get("/users/c/recommend")->status, 200);
}

}  // namespace longrec::serve

namespace longrec::serve {

TEST(HttpServer, APortInUseIsRefusedWithTheAddressNamed) {
  RunningServer s(hstu_bundle());
  ServerOptions options;
  options.port = s.port;
  RecommendServer second(*s.recommender, options);
  try {
    second.bind();
    FAIL() << "bound a port in use";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("cannot bind 127.0.0.1:{}", s.port)), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(s.client().Get("/healthz")->status, 200);  // the first one goes on
}

}  // namespace longrec::serve
