// The thread that answers the source while the worker is busy (see stream_busy.hpp).
#include "stream_busy.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <chrono>
#include <system_error>

namespace sicoop::stream {

namespace {
// How often the thread answers: well within any wal_sender_timeout.
constexpr std::chrono::seconds kBeat(1);

// Now, as a PostgreSQL timestamp (GetCurrentTimestamp() is PostgreSQL's: not in this thread).
pgo::Timestamp now_in_thread() {
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    return (static_cast<int64>(tv.tv_sec) - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC +
           tv.tv_usec;
}
}  // namespace

Busy::Busy(PGconn* conn, const Position& position) : conn_(conn), position_(position) {
    if (conn == nullptr) return;
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    try {
        thread_ = std::thread([this] { beat(); });
    } catch (const std::system_error&) {
    }
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
}

Busy::~Busy() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void Busy::beat() noexcept {
    try {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!wake_.wait_for(lock, kBeat, [this] { return stop_; }))
            if (!send_feedback(conn_, position_, now_in_thread(), false))
                return;  // (the loop finds the connection broken when it reads again)
    } catch (...) {
    }
}

}  // namespace sicoop::stream
