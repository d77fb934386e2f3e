// The stream worker's timers and bounds (see stream_policy.hpp).
#include "steps/pure_cpp.hpp"
#include "steps/stream_policy.hpp"

#include <algorithm>

namespace sicoop::stream_policy {

Limits limits(int interval_ms, int batch_changes, int work_mem_kb, int receive_timeout_ms) {
    Limits l;
    l.batch_changes = static_cast<size_t>(batch_changes);
    l.interval_ms = interval_ms;
    l.part_bytes = static_cast<size_t>(work_mem_kb) * 1024 / kWorkMemShares;
    l.receive_timeout_ms = receive_timeout_ms;
    return l;
}

bool due(Micros now, size_t changes, size_t bytes, Micros oldest, const Limits& limits) {
    return changes >= limits.batch_changes || bytes >= limits.part_bytes || now >= after(oldest, limits.interval_ms);
}

bool reading_paused(size_t changes, size_t bytes, const Limits& limits) {
    return changes >= kPausedBatchFactor * limits.batch_changes || bytes >= limits.part_bytes;
}

long wait_ms(Micros now, bool gathering, Micros oldest, const Limits& limits) {
    if (!gathering) return kIdleWaitMs;
    return std::max<long>(1, (after(oldest, limits.interval_ms) - now) / kMicrosPerMilli + 1);
}

Silence silence(Micros now, Micros silent_since, bool pinged, const Limits& limits) {
    Silence s;
    if (limits.receive_timeout_ms <= 0) return s;
    s.ask_reply = !pinged && now >= after(silent_since, limits.receive_timeout_ms / 2);
    s.stalled = now >= after(silent_since, limits.receive_timeout_ms);
    return s;
}

bool too_many_states(const std::map<std::string, size_t>& batch, const std::map<std::string, size_t>& adding) {
    return std::any_of(adding.begin(), adding.end(), [&](const auto& m) {
        auto known = batch.find(m.first);
        return (known == batch.end() ? 0 : known->second) + m.second > kMaxMemberStates;
    });
}

bool big_batch(size_t bytes, const Limits& limits) { return bytes >= limits.part_bytes / kBigBatchShares; }

}  // namespace sicoop::stream_policy
