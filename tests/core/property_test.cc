// Randomized: datagrams lost, duplicated and reordered while nodes mutate
// their keys. Every packet stays within the budget and every replica's
// (last_gc_version, max_version) only grows; once the network heals, the
// nodes agree.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "harness.h"

using namespace testing;

namespace {

struct Datagram {
  Instant at;
  std::uint64_t order;
  int to;
  Address from;
  Bytes payload;
};

struct Net {
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<Datagram> queue;
  Rng rng;
  Instant now = t0();
  double loss = 0.2;
  double duplication = 0.1;
  std::size_t max_payload = 0;
  std::size_t max_seen = 0;
  std::uint64_t order = 0;
  std::map<std::pair<int, std::string>, std::pair<std::uint64_t, std::uint64_t>> last_pair;

  explicit Net(std::uint64_t seed) : rng(seed) {}

  int index_of(const Address& a) const {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i]->self_id().gossip_advertise_addr == a) return static_cast<int>(i);
    }
    return -1;
  }

  void send(int from, const Address& to_addr, Bytes payload) {
    max_seen = std::max(max_seen, payload.size());
    CHECK(payload.size() <= max_payload);
    const int to = index_of(to_addr);
    if (to < 0) return;
    const int copies = rng.chance(loss) ? 0 : (rng.chance(duplication) ? 2 : 1);
    for (int i = 0; i < copies; ++i) {
      const auto delay = std::chrono::milliseconds(1 + rng.below(400));  // reorders
      queue.push_back(
          {now + delay, order++, to, nodes[from]->self_id().gossip_advertise_addr, payload});
    }
  }

  void check_monotonic() {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      for (const auto& [id, st] : nodes[i]->cluster_state().nodes()) {
        auto key = std::make_pair(static_cast<int>(i), id.name);
        const auto now_pair = std::make_pair(st.last_gc_version(), st.max_version());
        auto it = last_pair.find(key);
        if (it != last_pair.end()) CHECK(now_pair >= it->second);
        last_pair[key] = now_pair;
      }
    }
  }

  void drain(int i) {
    while (auto tx = nodes[i]->poll_transmit()) send(i, tx->to, std::move(tx->payload));
    while (nodes[i]->poll_event()) {
    }
  }

  void run_until(Instant end) {
    while (now < end) {
      now += 100ms;
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        nodes[i]->handle_timeout(now);
        drain(static_cast<int>(i));
      }
      std::sort(queue.begin(), queue.end(), [](const Datagram& a, const Datagram& b) {
        return std::tie(a.at, a.order) < std::tie(b.at, b.order);
      });
      std::vector<Datagram> due;
      auto split =
          std::find_if(queue.begin(), queue.end(), [&](const Datagram& d) { return d.at > now; });
      due.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(split));
      queue.erase(queue.begin(), split);
      for (auto& d : due) {
        auto reply = nodes[d.to]->handle_packet(d.payload, now, {d.from, Stage::kDatagram});
        if (reply) send(d.to, d.from, std::move(reply->payload));
        drain(d.to);
        check_monotonic();
      }
    }
  }
};

}  // namespace

TEST_CASE("budget and monotonic invariants under loss, duplication and reordering") {
  const int seeds = 12;
  for (int seed = 1; seed <= seeds; ++seed) {
    CAPTURE(seed);
    Net net(static_cast<std::uint64_t>(seed));
    net.max_payload = 1200;  // small, so deltas are cut at the budget all the time
    const int n = 4;
    for (int i = 0; i < n; ++i) {
      Config config = make_config(i, {(i + 1) % n});
      config.max_payload_size = net.max_payload;
      config.marked_for_deletion_grace_period = 20s;
      KeyValues initial;  // more than one packet's worth, so early deltas are cut
      for (int k = 0; k < 30; ++k)
        initial.emplace_back("init" + std::to_string(k), std::string(50, 'i'));
      net.nodes.push_back(std::make_unique<Node>(config, net.now, 1000 * seed + i, initial));
    }
    Rng ops(static_cast<std::uint64_t>(seed) * 77);
    for (int step = 0; step < 60; ++step) {
      for (int k = 0; k < 3; ++k) {
        Node& node = *net.nodes[ops.below(n)];
        const std::string key = "k" + std::to_string(ops.below(40));
        switch (ops.below(4)) {
          case 0:
            node.set(key, std::string(ops.below(60), 'v') + std::to_string(step));
            break;
          case 1:
            node.remove(key);
            break;
          case 2:
            node.set_with_ttl(key, "ttl");
            break;
          default:
            node.delete_after_ttl(key);
            break;
        }
      }
      net.run_until(net.now + 1s);
    }
    // Heal: no loss, no duplication, let it settle.
    net.loss = 0;
    net.duplication = 0;
    net.run_until(net.now + 60s);
    CHECK(net.max_seen > net.max_payload * 3 / 4);
    for (int owner = 0; owner < n; ++owner) {
      const NodeState& truth = net.nodes[owner]->cluster_state().self();
      for (int i = 0; i < n; ++i) {
        const NodeState* replica = net.nodes[i]->node_state(truth.id());
        REQUIRE(replica != nullptr);
        CHECK(replica->max_version() == truth.max_version());
        truth.for_each([&](std::string_view key, const VersionedValue& vv) {
          const std::optional<VersionedValue> got = replica->find(key);
          // A replica may have collected a tombstone the owner still holds.
          if (!got) {
            CHECK(vv.is_tombstone());
          } else {
            CHECK(*got == vv);
          }
        });
        replica->for_each([&](std::string_view key, const VersionedValue& vv) {
          if (!truth.find(key)) CHECK(vv.is_tombstone());
        });
      }
    }
  }
}
