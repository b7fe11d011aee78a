#include "collective_watch.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "notices.h"

namespace longrec::distributed::detail {

namespace {

using Seconds = std::chrono::duration<double>;
constexpr int kNoticeTag = 14;
// A healthy collective completes within this; until then MPI_Test runs back to back.
constexpr auto kSpin = std::chrono::milliseconds(2);
constexpr auto kShortestSleep = std::chrono::microseconds(20);
constexpr auto kLongestSleep = std::chrono::microseconds(200);

// How long a rank that gave up listens for the others' notices: half the
// timeout, at least 1 s, at most 5 s.
double listen_seconds(double timeout) { return std::clamp(timeout / 2, 1.0, 5.0); }

std::string ranks_text(const std::vector<int>& ranks) {
  return fmt::format("{} {}", ranks.size() == 1 ? "rank" : "ranks", fmt::join(ranks, ", "));
}

}  // namespace

// What a rank that gives up tells the others (fixed size, sent as bytes
// between processes of one build).
struct CollectiveWatch::Notice {
  std::int64_t seq = 0;
  double waited = 0;           // seconds the sender had waited in it
  double listen_left = 0;      // seconds until the sender stops listening and reports
  std::int32_t timed_out = 0;  // 1: its deadline passed; 0: it was told by another rank
  char name[228] = {};         // "all_reduce_sum(dense gradients)"
};

std::string CollectiveCall::describe() const {
  return label.empty() ? fmt::format("#{} {}", seq, op) : fmt::format("#{} {}({})", seq, op, label);
}

CollectiveCall CollectiveWatch::next(const char* op, const std::string& label) {
  if (failed()) {
    throw DistError(
        fmt::format("{}: this communicator gave up on an earlier collective and cannot go on ({})", op, failure_));
  }
  return CollectiveCall{++seq_, op, label};
}

bool CollectiveWatch::complete(MPI_Request& request, const CollectiveCall& call, double timeout) {
  int done = 0;
  LONGREC_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
  if (done) return true;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(Seconds(timeout));
  const MPI_Comm notices = notice_communicator();
  for (;;) {
    LONGREC_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return true;
    const auto now = Clock::now();
    const auto waited = now - start;
    if (waited < kSpin) continue;
    // A long wait: another rank may have given up (its notice), or the deadline passed.
    if (notices != MPI_COMM_NULL) {
      int arrived = 0;
      MPI_Status status;
      LONGREC_MPI(MPI_Iprobe(MPI_ANY_SOURCE, kNoticeTag, notices, &arrived, &status));
      if (arrived) {
        Notice notice;
        LONGREC_MPI(
            MPI_Recv(&notice, sizeof(Notice), MPI_BYTE, status.MPI_SOURCE, kNoticeTag, notices, MPI_STATUS_IGNORE));
        give_up(call, Seconds(waited).count(), timeout, &notice, status.MPI_SOURCE);
        return false;
      }
    }
    if (now >= deadline) {
      give_up(call, Seconds(waited).count(), timeout, nullptr, -1);
      return false;
    }
    // Back off: at most 5% of the wait so far, so that a late rank costs little extra.
    std::this_thread::sleep_for(
        std::clamp(std::chrono::duration_cast<std::chrono::microseconds>(waited / 20), kShortestSleep, kLongestSleep));
  }
}

void CollectiveWatch::give_up(const CollectiveCall& call, double waited, double timeout, const Notice* received,
                              int received_from) {
  const MPI_Comm notices = notice_communicator();
  const auto now = Clock::now();
  // A rank told by another stops listening when that one does, so that both report before either ends the job.
  const double listen = received != nullptr ? std::clamp(received->listen_left, 0.0, 10.0) : listen_seconds(timeout);
  const auto listen_end = now + std::chrono::duration_cast<Clock::duration>(Seconds(listen));
  const std::string name = call.label.empty() ? call.op : fmt::format("{}({})", call.op, call.label);
  std::vector<std::string> problems;  // failed MPI calls while giving up: reported, never thrown over the report
  const auto checked = [&problems](int code, const char* what) {
    try {
      check_mpi(code, what, __FILE__, __LINE__);
      return true;
    } catch (const DistError& e) {
      problems.emplace_back(e.what());
      return false;
    }
  };

  std::vector<std::optional<Notice>> heard(static_cast<std::size_t>(world_));
  if (received != nullptr) heard[static_cast<std::size_t>(received_from)] = *received;
  if (notices != MPI_COMM_NULL) {
    // The notices travel while this rank listens and after it ended: MPI reads them from here.
    static std::deque<Notice> sent;
    Notice& mine = sent.emplace_back();
    mine.seq = call.seq;
    mine.waited = waited;
    mine.listen_left = listen;
    mine.timed_out = received == nullptr ? 1 : 0;
    std::strncpy(mine.name, name.c_str(), sizeof(mine.name) - 1);
    for (int peer = 0; peer < world_; ++peer) {
      if (peer == rank_) continue;
      MPI_Request request = MPI_REQUEST_NULL;
      if (checked(MPI_Isend(&mine, sizeof(Notice), MPI_BYTE, peer, kNoticeTag, notices, &request), "MPI_Isend")) {
        checked(MPI_Request_free(&request), "MPI_Request_free");
      }
    }
    const auto heard_all = [&] {
      for (int peer = 0; peer < world_; ++peer) {
        if (peer != rank_ && !heard[static_cast<std::size_t>(peer)]) return false;
      }
      return true;
    };
    while (!heard_all() && Clock::now() < listen_end) {
      int arrived = 0;
      MPI_Status status;
      if (!checked(MPI_Iprobe(MPI_ANY_SOURCE, kNoticeTag, notices, &arrived, &status), "MPI_Iprobe")) break;
      if (!arrived) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      Notice notice;
      if (!checked(
              MPI_Recv(&notice, sizeof(Notice), MPI_BYTE, status.MPI_SOURCE, kNoticeTag, notices, MPI_STATUS_IGNORE),
              "MPI_Recv")) {
        break;
      }
      auto& slot = heard[static_cast<std::size_t>(status.MPI_SOURCE)];
      if (!slot) slot = notice;
    }
  }

  std::string report =
      received == nullptr
          ? fmt::format("collective {} did not complete within {:g} s", call.describe(), timeout)
          : fmt::format("collective {} given up after {:.1f} s (timeout {:g} s) because rank {} gave up",
                        call.describe(), waited, timeout, received_from);
  // The other ranks: silent ones, then those that answered, grouped by where they are.
  std::vector<int> silent;
  std::map<std::tuple<std::int64_t, std::string, int>, std::vector<int>> answered;
  for (int peer = 0; peer < world_; ++peer) {
    if (peer == rank_) continue;
    const auto& notice = heard[static_cast<std::size_t>(peer)];
    if (!notice) {
      silent.push_back(peer);
      continue;
    }
    answered[{notice->seq, std::string(notice->name, strnlen(notice->name, sizeof(notice->name))), notice->timed_out}]
        .push_back(peer);
  }
  if (!silent.empty()) {
    report += fmt::format("; no word from {} (stopped, hung, or busy outside collectives)", ranks_text(silent));
  }
  for (const auto& [where, ranks] : answered) {
    const auto& [seq, other_name, timed_out] = where;
    const char* verb = timed_out != 0 ? "timed out" : (ranks.size() == 1 ? "waits" : "wait");
    report += seq == call.seq && other_name == name
                  ? fmt::format("; {} {} at #{} too", ranks_text(ranks), verb, seq)
                  : fmt::format("; {} {} at #{} {}", ranks_text(ranks), verb, seq, other_name);
  }
  if (notices == MPI_COMM_NULL) report += "; the other ranks could not be asked (no notice communicator)";
  for (const auto& problem : problems) report += fmt::format("; while asking the other ranks: {}", problem);
  failure_ = std::move(report);
}

}  // namespace longrec::distributed::detail
