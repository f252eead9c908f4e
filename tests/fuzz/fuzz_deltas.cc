// Fuzz target: sequences of deltas applied to a ClusterState in any order,
// lost or duplicated. Three owners mutate their own state (set, delete, TTL,
// garbage collection); deltas are cut from them against digests the receiver
// sent earlier, with budgets large and small, and delivered whenever the
// input says. After every delivery each replica's (last_gc_version,
// max_version) has only grown, every entry it holds is one its owner really
// wrote at that version, and the state is a consistent index. Unless the
// input corrupted a delta or set tight limits, a final honest
// synchronisation makes every replica equal its owner.
//
// Input: one byte of mode flags (bit 0 corrupts some deltas, bit 1 sets tight
// limits), then operations of one byte each plus their arguments.
#include <aiocluster/aiocluster.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "codec_internal.h"
#include "fuzz_support.h"

namespace {

using namespace aiocluster;
using namespace std::chrono_literals;
using fuzz::require;

constexpr std::size_t kOwners = 3;
const std::string kCluster = "fuzz-cluster";

NodeId owner_id(std::size_t i) {
  return NodeId{"owner-" + std::to_string(i), 1,
                Address{"10.0.0.1", static_cast<std::uint16_t>(100 + i)}, ""};
}

// The whole Ack packet around a delta body, as Node::make_ack sizes it.
std::size_t ack_size(std::size_t delta_len) {
  return wire_size::length_delimited(kCluster.size()) +
         wire_size::length_delimited(wire_size::length_delimited(delta_len));
}

struct Owner {
  ClusterState state;
  // version -> what the owner wrote at it: every replica entry must be one.
  std::map<std::uint64_t, VersionedValue> written;
  std::map<std::uint64_t, std::string> written_key;
};

struct World {
  std::vector<Owner> owners;
  ClusterState receiver{NodeId{"receiver", 1, Address{"10.0.0.2", 1}, ""}};
  ApplyLimits limits;
  bool tight = false;
  bool corrupted = false;
  Instant now = Instant{} + 1000h;
  Rng rng{1};
  std::vector<Digest> digests;  // digests the receiver "sent", oldest first
  std::vector<Delta> in_flight;

  World() {
    for (std::size_t i = 0; i < kOwners; ++i)
      owners.push_back(Owner{ClusterState(owner_id(i)), {}, {}});
    digests.push_back(receiver.digest(65'000, rng));
  }

  void record(Owner& o, const std::optional<KeyChange>& change) {
    if (!change) return;
    o.written[change->new_value.version] = change->new_value;
    o.written_key[change->new_value.version] = change->key;
  }

  void mutate(fuzz::Input& in) {
    Owner& o = owners[in.byte() % kOwners];
    const std::string key = "k" + std::to_string(in.byte() % 6);
    const std::string value = "v" + std::to_string(in.byte() % 4);
    NodeState& st = o.state.self();
    switch (in.byte() % 5) {
      case 0:
        record(o, st.set(key, value, now));
        break;
      case 1:
        record(o, st.remove(key, now));
        break;
      case 2:
        record(o, st.set_with_ttl(key, value, now));
        break;
      case 3:
        record(o, st.delete_after_ttl(key, now));
        break;
      default:
        st.gc_tombstones(now - std::chrono::seconds(in.byte() % 8));
        break;
    }
  }

  Delta cut(Owner& o, const Digest& digest, std::size_t budget) {
    Delta d = o.state.delta_for(digest, ack_size, budget, rng);
    const Packet packet{kCluster, Ack{d}};
    require(wire_size::packet(packet) <= budget, "a delta fits its budget");
    require(encode(packet).size() == wire_size::packet(packet),
            "wire_size::packet() is the encoded size");
    return d;
  }

  void corrupt(Delta& d, fuzz::Input& in) {
    if (d.node_deltas.empty()) return;
    NodeDelta& nd = d.node_deltas[in.byte() % d.node_deltas.size()];
    switch (in.byte() % 6) {
      case 0:
        nd.from_version_excluded = in.u64() % 64;
        break;
      case 1:
        nd.last_gc_version = in.byte();
        break;
      case 2:
        nd.max_version = in.byte();
        break;
      case 3:
        if (!nd.key_values.empty())
          nd.key_values[in.byte() % nd.key_values.size()].version = in.byte();
        break;
      case 4:
        nd.node_id = receiver.self_id();
        break;
      default:
        nd.key_values.push_back(KeyValueUpdate{"k" + std::to_string(in.byte() % 6), "forged",
                                               in.byte(), static_cast<KeyStatus>(in.byte() % 3)});
        break;
    }
    corrupted = true;
  }

  void deliver(const Delta& d) {
    std::vector<std::tuple<std::uint64_t, std::uint64_t>> before;
    for (std::size_t i = 0; i < kOwners; ++i) {
      const NodeState* st = receiver.find(owner_id(i));
      before.emplace_back(st ? st->last_gc_version() : 0, st ? st->max_version() : 0);
    }
    const std::size_t self_size = receiver.self().size();
    receiver.apply(d, now, limits, [&](const NodeId& node, const KeyChange&) {
      require(node != receiver.self_id(), "a delta never writes our own keys");
    });
    require(receiver.self().size() == self_size && receiver.self().max_version() == 0,
            "a delta about us is ignored");
    for (std::size_t i = 0; i < kOwners; ++i) {
      const NodeState* st = receiver.find(owner_id(i));
      if (st == nullptr) {
        require(std::get<1>(before[i]) == 0 && std::get<0>(before[i]) == 0,
                "replicas are not dropped");
        continue;
      }
      require(std::tuple(st->last_gc_version(), st->max_version()) >= before[i],
              "(last_gc_version, max_version) never decreases");
    }
    check();
  }

  void check() const {
    require(receiver.size() <= limits.max_nodes, "known nodes within max_nodes");
    for (std::size_t i = 0; i < kOwners; ++i) {
      const NodeState* st = receiver.find(owner_id(i));
      if (st == nullptr) continue;
      const Owner& o = owners[i];
      require(st->size() <= limits.max_keys_per_node, "keys within max_keys_per_node");
      if (!corrupted) {
        require(st->max_version() <= o.state.self().max_version(),
                "no replica is ahead of its owner");
      }
      std::size_t count = 0;
      st->for_each_since(0, [&](std::string_view key, const VersionedValue& vv) {
        require(vv.version <= st->max_version(), "no entry is newer than max_version");
        require(st->find(key) == vv, "the version index and the key map agree");
        if (!corrupted) {
          const auto w = o.written.find(vv.version);
          require(w != o.written.end() && w->second == vv && o.written_key.at(vv.version) == key,
                  "every replicated entry is one its owner wrote");
        }
        ++count;
        return true;
      });
      require(count == st->size(), "every entry is in the version index");
    }
  }

  // Honest anti-entropy until the receiver is complete, then replica == owner.
  void converge() {
    for (int round = 0; round < 64; ++round) {
      const Digest digest = receiver.digest(65'000, rng);
      bool behind = false;
      for (auto& o : owners) {
        const Delta d = cut(o, digest, 65'507);
        behind = behind || !d.node_deltas.empty();
        deliver(d);
      }
      if (!behind) break;
    }
    for (std::size_t i = 0; i < kOwners; ++i) {
      const NodeState& mine = owners[i].state.self();
      const NodeState* st = receiver.find(owner_id(i));
      if (mine.max_version() == 0) continue;
      require(st != nullptr && st->max_version() == mine.max_version(),
              "replicas catch up with their owner");
      // Tombstones may differ (each side collects its own); live values may not.
      std::map<std::string, VersionedValue> want;
      std::map<std::string, VersionedValue> got;
      mine.for_each([&](std::string_view k, const VersionedValue& vv) {
        if (vv.status == KeyStatus::kSet) want.emplace(std::string(k), vv);
      });
      st->for_each([&](std::string_view k, const VersionedValue& vv) {
        if (vv.status == KeyStatus::kSet) got.emplace(std::string(k), vv);
      });
      require(got == want, "a caught-up replica holds its owner's values");
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in({data, size});
  World w;
  const std::uint8_t mode = in.byte();
  const bool corrupting = (mode & 1) != 0;
  if ((mode & 2) != 0) {
    w.tight = true;
    w.limits.max_nodes = 1 + in.byte() % 4;
    w.limits.max_keys_per_node = 1 + in.byte() % 6;
    w.limits.max_key_size = 1 + in.byte() % 3;
    w.limits.max_value_size = in.byte() % 3;
  }
  for (int ops = 0; !in.empty() && ops < 256; ++ops) {
    w.now += 1s;
    switch (in.byte() % 6) {
      case 0:
      case 1:
        w.mutate(in);
        break;
      case 2:
        w.digests.push_back(w.receiver.digest(65'000, w.rng));
        break;
      case 3: {  // cut a delta against some earlier digest, with some budget
        Owner& o = w.owners[in.byte() % kOwners];
        const Digest& digest = w.digests[in.byte() % w.digests.size()];
        const std::size_t budget = 60 + std::size_t{in.byte()} * 4;
        Delta d = w.cut(o, digest, budget);
        if (in.flag()) {  // merge with another owner's, as one packet carries many nodes
          Owner& other = w.owners[in.byte() % kOwners];
          for (auto& nd : w.cut(other, digest, budget).node_deltas)
            d.node_deltas.push_back(std::move(nd));
        }
        if (corrupting && in.byte() < 64) w.corrupt(d, in);
        w.in_flight.push_back(std::move(d));
        break;
      }
      case 4: {  // deliver one in-flight delta; keep it around to duplicate later, or not
        if (w.in_flight.empty()) break;
        const std::size_t i = in.byte() % w.in_flight.size();
        w.deliver(w.in_flight[i]);
        if (in.flag()) w.in_flight.erase(w.in_flight.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
      case 5:  // the receiver collects its own tombstones
        w.receiver.gc_tombstones(w.now, std::chrono::seconds(in.byte() % 8));
        w.check();
        break;
    }
  }
  if (!w.corrupted && !w.tight) w.converge();
  return 0;
}
