// `longrec serve`'s server over a bundle, on a free loopback port, answering
// from a background thread until the test ends (the HTTP tests).
#pragma once

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "longrec/serve/http_server.h"
#include "longrec/serve/recommender.h"

namespace longrec::testing {

struct RunningServer {
  std::unique_ptr<serve::Recommender> recommender;
  std::unique_ptr<serve::RecommendServer> server;
  std::thread thread;
  int port = 0;

  explicit RunningServer(const std::filesystem::path& bundle, serve::ServerOptions options = {}) {
    recommender = serve::Recommender::load(bundle, 1);
    options.port = 0;
    server = std::make_unique<serve::RecommendServer>(*recommender, options);
    port = server->bind();
    thread = std::thread([this] { server->serve(); });
    auto client = this->client();
    for (int attempt = 0; attempt < 200 && !client.Get("/healthz"); ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~RunningServer() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const { return httplib::Client("127.0.0.1", port); }
};

}  // namespace longrec::testing
