#include "aiocluster/sim/invariants.h"

#include <algorithm>
#include <map>
#include <utility>

namespace aiocluster::sim {

namespace {

constexpr std::size_t kMaxReported = 32;

struct Write {
  std::uint64_t version = 0;
  KeyStatus status = KeyStatus::kSet;
  std::string value;
};

// Every write an owner made, per key in version order.
using WriteLog = std::map<std::string, std::vector<Write>, std::less<>>;

std::string describe(const NodeId& id) { return id.name + "/" + std::to_string(id.generation_id); }

// The owner's latest write of a key at or below `version`.
const Write* latest_at(const std::vector<Write>& writes, std::uint64_t version) {
  const auto it = std::upper_bound(writes.begin(), writes.end(), version,
                                   [](std::uint64_t v, const Write& w) { return v < w.version; });
  return it == writes.begin() ? nullptr : &*std::prev(it);
}

}  // namespace

struct InvariantChecker::State {
  Simulator* sim = nullptr;
  std::map<NodeId, WriteLog> writes;  // by owner incarnation
  // Per observer incarnation, the pair last seen of every replica it holds.
  std::map<NodeId, std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>>> seen;
  std::vector<std::string> violations;
  std::uint64_t violation_count = 0;
  std::uint64_t checks = 0;

  void report(const std::string& what) {
    ++violation_count;
    if (violations.size() < kMaxReported) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(sim->elapsed()).count();
      violations.push_back("t=" + std::to_string(ms) + "ms " + what);
    }
  }

  void on_event(NodeIndex observer, const Event& ev) {
    const auto* change = std::get_if<KeyChanged>(&ev);
    if (change == nullptr || change->node != sim->node(observer).self_id()) return;
    auto& writes_of_key = writes[change->node][change->key];
    if (!writes_of_key.empty() && writes_of_key.back().version >= change->new_value.version) {
      report(describe(change->node) + " wrote " + change->key + " at version " +
             std::to_string(change->new_value.version) + " after version " +
             std::to_string(writes_of_key.back().version));
    }
    writes_of_key.push_back(
        Write{change->new_value.version, change->new_value.status, change->new_value.value});
  }

  void check_replica(const NodeId& observer, const NodeState& replica) {
    static const WriteLog kNoWrites;
    const auto owner = writes.find(replica.id());
    const WriteLog& log = owner == writes.end() ? kNoWrites : owner->second;
    const std::uint64_t complete_to = replica.max_version();
    // A replica reset and not yet re-sent up to its last_gc_version holds
    // the owner's state after that collection: what it holds is judged
    // against the writes up to the collected version.
    const std::uint64_t as_of = std::max(complete_to, replica.last_gc_version());
    auto where = [&] {
      return "replica of " + describe(replica.id()) + " at " + describe(observer) + " (gc " +
             std::to_string(replica.last_gc_version()) + ", max " + std::to_string(complete_to) +
             "): ";
    };
    replica.for_each([&](std::string_view key, const VersionedValue& held) {
      const auto writes_of_key = log.find(key);
      const Write* expected =
          writes_of_key == log.end() ? nullptr : latest_at(writes_of_key->second, as_of);
      if (expected == nullptr) {
        report(where() + "holds " + std::string(key) + "@" + std::to_string(held.version) +
               " that its owner never wrote at or below max_version");
      } else if (expected->version != held.version || expected->status != held.status ||
                 expected->value != held.value) {
        report(where() + "holds " + std::string(key) + "@" + std::to_string(held.version) +
               " but the owner's write at or below max_version is version " +
               std::to_string(expected->version) +
               (expected->status == KeyStatus::kSet ? "" : " (a deletion)"));
      }
    });
    for (const auto& [key, writes_of_key] : log) {
      const Write* expected = latest_at(writes_of_key, as_of);
      if (expected == nullptr || expected->status != KeyStatus::kSet) continue;
      if (expected->version > complete_to) continue;  // not re-sent yet
      if (!replica.find(key)) {
        report(where() + "lacks " + key + "@" + std::to_string(expected->version));
      }
    }
  }

  void on_input(NodeIndex observer) {
    if (!sim->is_up(observer)) return;
    ++checks;
    const Node& node = sim->node(observer);
    const NodeId& self = node.self_id();
    auto& previous = seen[self];
    std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> current;
    for (const auto& [id, state] : node.cluster_state().nodes()) {
      const std::pair pair{state.last_gc_version(), state.max_version()};
      const auto before = previous.find(id);
      if (before != previous.end() && pair < before->second) {
        report("replica of " + describe(id) + " at " + describe(self) + " went from (" +
               std::to_string(before->second.first) + ", " + std::to_string(before->second.second) +
               ") to (" + std::to_string(pair.first) + ", " + std::to_string(pair.second) + ")");
      }
      current.emplace_hint(current.end(), id, pair);
      // The contents can only break the checks below when the pair moves:
      // applying, resetting and wiping move it; local garbage collection
      // removes tombstones only, which neither check needs; the owner only
      // ever writes above what any replica holds.
      if (id != self && (before == previous.end() || before->second != pair))
        check_replica(self, state);
    }
    // A replica that disappeared (a dead node garbage-collected) starts over
    // if it is ever learned again.
    previous = std::move(current);
  }
};

InvariantChecker::InvariantChecker(Simulator& sim) : s_(std::make_shared<State>()) {
  s_->sim = &sim;
  std::weak_ptr<State> weak = s_;
  sim.on_event([weak](NodeIndex observer, const Event& ev) {
    if (auto s = weak.lock()) s->on_event(observer, ev);
  });
  sim.on_input([weak](NodeIndex observer) {
    if (auto s = weak.lock()) s->on_input(observer);
  });
}

InvariantChecker::~InvariantChecker() = default;

const std::vector<std::string>& InvariantChecker::violations() const { return s_->violations; }
std::uint64_t InvariantChecker::violation_count() const { return s_->violation_count; }
std::uint64_t InvariantChecker::checks() const { return s_->checks; }

}  // namespace aiocluster::sim
