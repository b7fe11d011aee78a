#include "longrec/serve/http_server.h"

#include <httplib.h>

#include <list>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "longrec/core/error.h"
#include "longrec/serve/json_api.h"
#include "longrec/serve/recommender.h"

namespace longrec::serve {

namespace {

void reply(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Bytes that are not UTF-8 (a path or an id echoed back) are replaced, never thrown on.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void refuse(httplib::Response& res, int status, const std::string& message) {
  reply(res, status, {{"error", message}});
}

}  // namespace

struct RecommendServer::Impl {
  Recommender& recommender;
  ServerOptions options;
  httplib::Server http;

  // Server-held states, least recently used last. An entry is shared so that
  // a request keeps using it while another evicts it; its lock lets the
  // recommendations of one user run together (they only read the state) and
  // gives an append the state alone.
  struct Entry {
    std::shared_mutex mutex;
    UserState state;
    bool removed = false;  // evicted or deleted (set under `mutex`): a request that finds it starts over
    std::list<std::string>::iterator recency;
  };
  mutable std::mutex users_mutex;
  std::unordered_map<std::string, std::shared_ptr<Entry>> users;
  std::list<std::string> recency;  // most recent first

  Impl(Recommender& r, ServerOptions o) : recommender(r), options(std::move(o)) {}

  std::shared_ptr<Entry> find_user(const std::string& id) {
    std::lock_guard lock(users_mutex);
    const auto it = users.find(id);
    if (it == users.end()) return nullptr;
    recency.splice(recency.begin(), recency, it->second->recency);
    return it->second;
  }

  // Adds a user whose first events were accepted; drops the least recently used past the cap.
  std::shared_ptr<Entry> add_user(const std::string& id, UserState state) {
    std::lock_guard lock(users_mutex);
    if (const auto it = users.find(id); it != users.end()) return nullptr;  // created meanwhile: caller retries
    while (static_cast<std::int64_t>(users.size()) >= options.max_users && !recency.empty()) {
      remove_locked(recency.back());
    }
    auto entry = std::make_shared<Entry>();
    entry->state = std::move(state);
    recency.push_front(id);
    entry->recency = recency.begin();
    users.emplace(id, entry);
    return entry;
  }

  // Drops a user (users_mutex held). Taking the entry's own lock waits for a
  // request in flight on it, so that no append lands in a dropped state.
  void remove_locked(const std::string& id) {
    const auto it = users.find(id);
    {
      std::unique_lock entry_lock(it->second->mutex);
      it->second->removed = true;
    }
    recency.erase(it->second->recency);
    users.erase(it);
  }

  std::string user_id(const httplib::Request& req) const {
    const auto id = req.matches[1].str();
    check_user_id(id, options.max_user_id_bytes);
    return id;
  }

  void post_events(const httplib::Request& req, httplib::Response& res) {
    const auto id = user_id(req);
    const auto body = parse_object(req.body);
    const auto items = int_list(body, "items", true);
    const auto times = int_list(body, "times", false);
    if (items.empty()) throw DataError("\"items\" is empty: at least one event is expected");
    while (true) {
      const auto entry = find_user(id);
      if (!entry) {
        // A new user: the state is built outside the lock and added only once its events were accepted.
        if (const auto created = add_user(id, recommender.create_state(items, times))) {
          std::shared_lock lock(created->mutex);
          return reply(res, 200, describe(id, created->state, true));
        }
        continue;  // created by another request meanwhile
      }
      std::unique_lock lock(entry->mutex);
      if (entry->removed) continue;
      recommender.append(entry->state, items, times);  // all or nothing
      return reply(res, 200, describe(id, entry->state, false));
    }
  }

  static nlohmann::json describe(const std::string& id, const UserState& state, bool created) {
    return {{"user", id},
            {"created", created},
            {"events", state.events()},
            {"held_events", state.held_events()},
            {"cached_tokens", state.cached_tokens()},
            {"state_bytes", state.memory_bytes()}};
  }

  void user_recommend(const httplib::Request& req, httplib::Response& res) {
    const auto id = user_id(req);
    nlohmann::json query = nlohmann::json::object();
    if (req.has_param("k")) query["k"] = parse_query_int("k", req.get_param_value("k"));
    if (req.has_param("exclude_seen")) {
      const auto v = req.get_param_value("exclude_seen");
      if (v != "true" && v != "false") throw DataError(fmt::format("exclude_seen must be true or false, got '{}'", v));
      query["exclude_seen"] = v == "true";
    }
    const auto k = checked_k(recommender, query, "k", 10);
    const auto entry = find_user(id);
    std::shared_lock<std::shared_mutex> lock;
    if (entry) lock = std::shared_lock(entry->mutex);
    if (!entry || entry->removed) {
      return refuse(res, 404, fmt::format("unknown user '{}': POST /users/{}/events first", id, id));
    }
    reply(res, 200,
          {{"user", id},
           {"items", to_json(recommender.recommend(entry->state, k, bool_field(query, "exclude_seen", true)))}});
  }

  static std::int64_t parse_query_int(const std::string& key, const std::string& text) {
    std::size_t used = 0;
    std::int64_t value = 0;
    try {
      value = std::stoll(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size()) throw DataError(fmt::format("{} must be an integer, got '{}'", key, text));
    return value;
  }

  void delete_user(const httplib::Request& req, httplib::Response& res) {
    const auto id = user_id(req);
    std::lock_guard lock(users_mutex);
    if (users.find(id) == users.end()) return refuse(res, 404, fmt::format("unknown user '{}'", id));
    remove_locked(id);
    reply(res, 200, {{"user", id}, {"deleted", true}});
  }

  void post_items(const httplib::Request& req, httplib::Response& res) {
    const auto item = new_item_request(parse_object(req.body));
    const auto internal = recommender.add_item(item.id, item.text);
    reply(res, 201, {{"id", item.id}, {"internal_id", internal}, {"items", recommender.num_items()}});
  }

  static int status_of(ItemRefused::Reason reason) {
    switch (reason) {
      case ItemRefused::Reason::kDuplicate:
        return 409;
      case ItemRefused::Reason::kNoItemLlm:
        return 422;
      case ItemRefused::Reason::kEmptyText:
        break;
    }
    return 400;
  }

  // Runs a handler: a bad request is a 400 (a refused item: status_of) with its message, nothing else changes.
  httplib::Server::Handler guarded(void (Impl::*handler)(const httplib::Request&, httplib::Response&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*handler)(req, res);
      } catch (const ItemRefused& e) {
        refuse(res, status_of(e.reason()), e.what());
      } catch (const DataError& e) {
        refuse(res, 400, e.what());
      } catch (const ConfigError& e) {
        refuse(res, 400, e.what());
      }
    };
  }

  void routes() {
    http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      std::int64_t held = 0;
      {
        std::lock_guard lock(users_mutex);
        held = static_cast<std::int64_t>(users.size());
      }
      reply(res, 200,
            {{"status", "ok"},
             {"model", recommender.describe()},
             {"items", recommender.num_items()},
             {"users", held},
             {"new_items", recommender.accepts_new_items()}});
    });
    http.Post("/recommend", guarded(&Impl::post_recommend));
    http.Post(R"(/users/([^/]+)/events)", guarded(&Impl::post_events));
    http.Get(R"(/users/([^/]+)/recommend)", guarded(&Impl::user_recommend));
    http.Delete(R"(/users/([^/]+))", guarded(&Impl::delete_user));
    http.Post("/items", guarded(&Impl::post_items));
    // Every other error (unknown route, body over the limit, ...) still answers JSON with a reason.
    // (It runs outside cpp-httplib's handler try/catch: it must not throw.)
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      try {
        std::string message = fmt::format("HTTP status {}", res.status);
        if (res.status == 400) message = "malformed HTTP request";
        if (res.status == 404) message = fmt::format("no route {} {}", req.method, req.path);
        if (res.status == 413) {
          message =
              "request body over the server's limit (--serve.max_body_bytes for JSON; form-encoded bodies are "
              "capped lower: send Content-Type: application/json)";
        }
        reply(res, res.status, {{"error", message}});
      } catch (...) {
        res.set_content(R"({"error": "unanswerable request"})", "application/json");
      }
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string message = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        message = fmt::format("internal error: {}", e.what());
      } catch (...) {
      }
      refuse(res, 500, message);
    });
  }

  void post_recommend(const httplib::Request& req, httplib::Response& res) {
    reply(res, 200, answer_recommend(recommender, parse_object(req.body), 10, true));
  }
};

RecommendServer::RecommendServer(Recommender& recommender, ServerOptions options)
    : impl_(std::make_unique<Impl>(recommender, std::move(options))) {
  auto& o = impl_->options;
  if (o.request_threads < 1)
    throw ConfigError("serve.request_threads", fmt::format("got {}, expected >= 1", o.request_threads));
  if (o.max_users < 1) throw ConfigError("serve.max_users", fmt::format("got {}, expected >= 1", o.max_users));
  if (o.max_body_bytes < 64) {
    throw ConfigError("serve.max_body_bytes", fmt::format("got {}, expected >= 64", o.max_body_bytes));
  }
  auto& http = impl_->http;
  const auto threads = static_cast<std::size_t>(o.request_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(static_cast<std::size_t>(o.max_body_bytes));
  http.set_keep_alive_max_count(10'000);  // a client may send many requests on one connection
  // Small JSON answers: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per request on keep-alive.
  http.set_tcp_nodelay(true);
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which a
  // second server binds a port already served and the kernel splits the traffic.
  http.set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  impl_->routes();
}

RecommendServer::~RecommendServer() { stop(); }

int RecommendServer::bind() {
  auto& o = impl_->options;
  int port = o.port;
  if (o.port == 0) {
    port = impl_->http.bind_to_any_port(o.host);
    if (port < 0) throw SystemError(fmt::format("cannot bind {} on any port", o.host));
  } else if (!impl_->http.bind_to_port(o.host, o.port)) {
    throw SystemError(fmt::format("cannot bind {}:{} (in use, or not an address of this machine)", o.host, o.port));
  }
  return port;
}

void RecommendServer::serve() {
  if (!impl_->http.listen_after_bind()) throw SystemError("the server's socket failed while listening");
}

void RecommendServer::stop() {
  if (impl_->http.is_running()) impl_->http.stop();
}

std::int64_t RecommendServer::users() const {
  std::lock_guard lock(impl_->users_mutex);
  return static_cast<std::int64_t>(impl_->users.size());
}

}  // namespace longrec::serve
