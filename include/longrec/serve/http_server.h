// `longrec serve`: a JSON-over-HTTP front of a Recommender (design section 7),
// on cpp-httplib. The server holds one UserState per user id so that events
// posted as they arrive are compressed once, and a later recommendation reads
// the cached state instead of the whole history.
//
//   GET  /healthz                       {"status": "ok", "model": ..., "items": I, "users": U}
//   POST /recommend                     {"history": [...], "k": 10, "times": [...]?, "exclude_seen": true?}
//   POST /users/{id}/events             {"items": [...], "times": [...]?}  (creates the user on first post)
//   GET  /users/{id}/recommend?k=10&exclude_seen=true
//   DELETE /users/{id}
//   POST /items                         {"id": raw id, "text": "..."}  (hllm bundles with the item LLM)
//
// Bodies are JSON (send Content-Type: application/json; cpp-httplib caps
// form-encoded bodies lower). exclude_seen (default true) drops the whole
// history for POST /recommend, and the events a state still holds raw (the
// recent ones) for a server-held user. Bad requests get 400 (404 for an
// unknown user or route, 413 for a body over the limit) with
// {"error": message}; a refused request changes no state and the server keeps
// serving. Past max_users the least recently used user is
// dropped (a client may re-post its history).
//
// POST /items encodes the text with the bundle's item LLM and adds the item
// to the catalogue (Recommender::add_item): 201 with {"id", "internal_id",
// "items"}, recommendable from the next request on. Refusals: 400 for a
// malformed body or an empty text, 409 for an id already in the catalogue,
// 422 for a bundle that cannot encode items (not hllm, or exported with
// --export.item_llm=false): the request is well formed, this model cannot do
// it. GET /healthz says which ("new_items": true | false).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace longrec::serve {

class Recommender;

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (see RecommendServer::bind)
  int request_threads = 4;         // concurrent requests
  std::int64_t max_body_bytes = 1 << 20;
  std::int64_t max_users = 100'000;  // server-held states
  std::int64_t max_user_id_bytes = 256;
};

class RecommendServer {
 public:
  // The recommender must outlive the server; POST /items adds to it.
  RecommendServer(Recommender& recommender, ServerOptions options);
  ~RecommendServer();

  // Binds the socket; returns the port (the chosen one for port 0). Throws
  // SystemError naming host:port when it cannot.
  int bind();
  // Answers requests until stop() (from any thread); bind() first.
  void serve();
  void stop();

  std::int64_t users() const;  // states held now

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longrec::serve
