// Which accepted connection gives way to a new one: among those still
// waiting for their first frame, the oldest of the same host once that host
// holds its share, else (when every inbound slot is taken) the oldest of the
// host holding the most. A peer that gossips sends its Syn at once, so idle
// or half-open connections (a scanner, a flood) cannot keep real exchanges
// out: a flooding host only pushes out its own.
#pragma once

#include <cstddef>
#include <list>
#include <map>
#include <string>

#include "aiocluster/common/stats.h"

namespace aiocluster::driver::detail {

template <typename Connection>
class WaitingConnections {
  using Queue = std::list<Connection*>;  // oldest first
  using ByHost = std::map<std::string, Queue, std::less<>>;

 public:
  // Where a connection sits while it waits; stable until remove().
  struct Slot {
    typename ByHost::iterator host;
    typename Queue::iterator entry;
  };

  explicit WaitingConnections(std::size_t max_per_host) : max_per_host_(max_per_host) {}

  Slot add(Connection* connection, const std::string& host) {
    auto it = by_host_.try_emplace(host).first;
    return Slot{it, it->second.insert(it->second.end(), connection)};
  }

  void remove(Slot slot) {
    slot.host->second.erase(slot.entry);
    if (slot.host->second.empty()) by_host_.erase(slot.host);
  }

  // What to do with a connection just accepted from `host` while `open`
  // inbound connections of at most `capacity` are open: close `evict` first
  // (it is out of the list already) when set, then keep the new one when
  // `accept`, else close it.
  struct Admission {
    Connection* evict = nullptr;
    bool accept = true;
  };
  Admission admit(const std::string& host, std::size_t open, std::size_t capacity) {
    const bool full = open >= capacity;
    Connection* evict = make_room(host, full);
    return Admission{evict, !full || evict != nullptr};
  }

  // admit(), carried out on the one evicted (Connection::evict()) and
  // counted: true when the new connection stays, false to close it.
  bool admit(const std::string& host, std::size_t open, std::size_t capacity, DriverStats& stats) {
    const Admission admission = admit(host, open, capacity);
    if (admission.evict != nullptr) {
      ++stats.connections_evicted;
      admission.evict->evict();
    }
    ++(admission.accept ? stats.connections_accepted : stats.connections_refused);
    return admission.accept;
  }

 private:
  // The connection to close so that one more from `host` fits, taken out of
  // the list; nullptr when nothing has to give way. `full`: every inbound
  // slot is taken.
  Connection* make_room(const std::string& host, bool full) {
    auto it = by_host_.find(host);
    if (it == by_host_.end() || it->second.size() < max_per_host_) {
      if (!full || by_host_.empty()) return nullptr;
      it = by_host_.begin();
      for (auto h = by_host_.begin(); h != by_host_.end(); ++h) {
        if (h->second.size() > it->second.size()) it = h;
      }
    }
    Connection* oldest = it->second.front();
    it->second.pop_front();
    if (it->second.empty()) by_host_.erase(it);
    return oldest;
  }

  std::size_t max_per_host_;
  ByHost by_host_;
};

}  // namespace aiocluster::driver::detail
