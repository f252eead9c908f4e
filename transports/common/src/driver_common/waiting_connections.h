// Which accepted connection gives way when every inbound slot is taken: the
// oldest one still waiting for its first frame. A peer that gossips sends
// its Syn at once, so idle or half-open connections (a scanner, a flood)
// cannot keep real exchanges out; they only push each other out.
#pragma once

#include <list>

namespace aiocluster::driver::detail {

// Accepted connections that have not delivered a whole frame yet, oldest
// first. A Connection keeps the Slot it got from add() and gives it back
// with remove() once its first frame is in, or when it closes.
template <typename Connection>
class WaitingConnections {
 public:
  using Slot = typename std::list<Connection*>::iterator;

  Slot add(Connection* connection) { return order_.insert(order_.end(), connection); }
  void remove(Slot slot) { order_.erase(slot); }

  // Takes the oldest out of the list, for closing; nullptr when none waits.
  Connection* take_oldest() {
    if (order_.empty()) return nullptr;
    Connection* oldest = order_.front();
    order_.pop_front();
    return oldest;
  }

 private:
  std::list<Connection*> order_;
};

}  // namespace aiocluster::driver::detail
