// `longrec serve`: the HTTP JSON endpoint over a serving bundle, until SIGINT
// or SIGTERM (then it finishes the requests in flight and exits 0).
#include <atomic>
#include <csignal>
#include <thread>

#include <pthread.h>

#include <fmt/format.h>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/core/atomic_file.h"
#include "longrec/serve/http_server.h"
#include "longrec/serve/recommender.h"

namespace longrec::cli {

int run_serve(int argc, const char* const* argv) {
  std::string bundle, port_file;
  serve::ServerOptions o;
  int threads = 1;
  OptionRegistry r("serve",
                   "An HTTP JSON endpoint over a serving bundle (longrec export), holding a cached state per user:\n"
                   "  POST /recommend {\"history\": [...], \"k\": 10}   POST /users/{id}/events {\"items\": [...]}\n"
                   "  GET /users/{id}/recommend?k=10   DELETE /users/{id}   GET /healthz\n"
                   "  POST /items {\"id\": 4001, \"text\": \"...\"}  (hllm bundles exported with the item LLM)\n"
                   "Example: longrec serve --model model.h5 --port 8080",
                   "serve");
  r.add("serve", "model", &bundle, "serving bundle (.h5)");
  r.add("serve", "host", &o.host, "address to bind (loopback by default; 0.0.0.0 for every interface)");
  r.add("serve", "port", &o.port, "TCP port (0: any free port, see --port_file)", check::in_range(0, 65535));
  r.add("serve", "port_file", &port_file, "write the bound port to this file once listening");
  r.add("serve", "request_threads", &o.request_threads, "requests answered at once",
        check::in_range(1, check::kMaxThreads));
  r.add("serve", "threads", &threads, "intra-op threads per request", check::in_range(1, check::kMaxThreads));
  r.add("serve", "max_body_bytes", &o.max_body_bytes, "larger request bodies get 413",
        check::in_range<std::int64_t>(64, std::int64_t{1} << 32));
  r.add("serve", "max_users", &o.max_users, "user states held (least recently used dropped beyond)",
        check::in_range<std::int64_t>(1, 1'000'000'000));
  r.constraint([&] {
    if (bundle.empty()) throw ConfigError("serve.model", "a bundle is required");
  });
  if (!r.parse(argc, argv)) return 0;

  // SIGINT/SIGTERM are taken by one thread: blocked here first, before the
  // model's thread pools and the request threads start (they inherit the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) throw SystemError("pthread_sigmask failed");
  const auto recommender = serve::Recommender::load(bundle, threads);
  serve::RecommendServer server(*recommender, o);
  const int port = server.bind();
  // Until serve() returns: wait for a signal, then ask the server to stop
  // every 100 ms (a stop before it started listening would be lost).
  std::atomic<bool> finished = false;
  std::thread stopper([&] {
    bool requested = false;
    while (!finished) {
      const timespec wait{0, 100'000'000};
      if (const int signal = sigtimedwait(&signals, nullptr, &wait); signal > 0 && !requested) {
        requested = true;
        fmt::print("longrec serve: signal {}, stopping\n", signal);
        std::fflush(stdout);
      }
      if (requested) server.stop();
    }
  });
  struct Join {
    std::atomic<bool>& finished;
    std::thread& thread;
    ~Join() {
      finished = true;
      thread.join();
    }
  } join{finished, stopper};
  fmt::print("longrec serve: {} on http://{}:{} ({} request threads, {} intra-op); POST /items {}\n",
             recommender->describe(), o.host, port, o.request_threads, threads,
             recommender->accepts_new_items() ? "adds items from their text" : "refused (no item LLM)");
  std::fflush(stdout);
  if (!port_file.empty()) {
    write_file_atomically(port_file, [&](std::ostream& out) { out << port << '\n'; });  // never half a number
  }
  server.serve();
  fmt::print("longrec serve: stopped with {} user states held\n", server.users());
  return 0;
}

}  // namespace longrec::cli
