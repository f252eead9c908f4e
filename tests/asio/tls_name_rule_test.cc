// The core side of TLS: the tls_name rule on Syns (Inbound::peer_names) and
// the name a driver must verify a server against (Transmit::tls_name).
// Pure core, no sockets: two Nodes exchange packets by hand.
#include <doctest/doctest.h>

#include "aiocluster/node.h"

namespace ac = aiocluster;
using namespace std::chrono_literals;

namespace {

ac::Config config_for(const std::string& name, std::uint16_t port, const std::string& tls_name,
                      std::vector<ac::Address> seeds = {}) {
  ac::Config c;
  c.cluster_id = "tls-rule";
  c.node_id = ac::NodeId{name, 1, ac::Address{"127.0.0.1", port}, tls_name};
  c.seeds = std::move(seeds);
  return c;
}

// B's first Syn (to its seed A).
ac::Bytes first_syn(ac::Node& b, ac::Instant now) {
  b.handle_timeout(now);
  auto tx = b.poll_transmit();
  REQUIRE(tx);
  return tx->payload;
}

}  // namespace

TEST_CASE("tls_name rule: a Syn is accepted only when the certificate names a node of its digest") {
  const ac::Instant t0{};
  const ac::Address a_addr{"127.0.0.1", 7001};
  ac::Node b(config_for("b", 7002, "b.test", {a_addr}), t0, 2);
  const ac::Bytes syn = first_syn(b, t0);

  auto accepts = [&](std::optional<std::vector<std::string>> names) {
    ac::Node a(config_for("a", 7001, "a.test"), t0, 1);
    auto reply =
        a.handle_packet(syn, t0, ac::Inbound{{"127.0.0.1", 40000}, ac::Stage::kStreamOpen, names});
    const bool accepted = reply.has_value();
    const bool nameless = names && names->empty();
    CHECK(a.stats().dropped_tls_name == (accepted || nameless ? 0u : 1u));
    CHECK(a.stats().dropped_tls_nameless == (nameless ? 1u : 0u));
    CHECK(a.stats().packets_out.synack == (accepted ? 1u : 0u));
    return accepted;
  };
  CHECK(accepts(std::nullopt));  // no certificate checked: plain TCP or TLS without client auth
  CHECK(accepts(std::vector<std::string>{"b.test"}));
  CHECK(accepts(
      std::vector<std::string>{"other.test", "B.Test"}));  // host names compare without case
  // A verified certificate that names nothing: refused, counted apart.
  CHECK_FALSE(accepts(std::vector<std::string>{}));
  CHECK_FALSE(accepts(std::vector<std::string>{"a.test.evil", "b.tes"}));
}

TEST_CASE(
    "tls_name rule: a node without a tls_name cannot pass it, nor can a wrong cluster get a "
    "reply") {
  const ac::Instant t0{};
  const ac::Address a_addr{"127.0.0.1", 7001};
  ac::Node anonymous(config_for("anon", 7003, "", {a_addr}), t0, 3);
  const ac::Bytes syn = first_syn(anonymous, t0);
  ac::Node a(config_for("a", 7001, "a.test"), t0, 1);
  // Even a certificate naming the empty string matches nothing.
  CHECK_FALSE(a.handle_packet(
      syn, t0,
      ac::Inbound{{"127.0.0.1", 1}, ac::Stage::kStreamOpen, std::vector<std::string>{""}}));
  CHECK(a.stats().dropped_tls_name == 1);

  ac::Config other = config_for("x", 7004, "x.test", {a_addr});
  other.cluster_id = "another";
  ac::Node x(other, t0, 4);
  const ac::Bytes foreign = first_syn(x, t0);
  // Identity first: a peer that fails the rule learns nothing, not even our cluster id.
  CHECK_FALSE(a.handle_packet(
      foreign, t0,
      ac::Inbound{{"127.0.0.1", 2}, ac::Stage::kStreamOpen, std::vector<std::string>{"y"}}));
  CHECK(a.stats().dropped_tls_name == 2);
  CHECK(a.stats().packets_out.bad_cluster == 0);
}

TEST_CASE("Transmit::tls_name: empty for a bare seed, the node's tls_name once it is known") {
  const ac::Instant t0{};
  const ac::Address b_addr{"127.0.0.1", 7002};
  ac::Node a(config_for("a", 7001, "a.test", {b_addr}), t0, 1);
  ac::Node b(config_for("b", 7002, "b.test"), t0, 2);

  a.handle_timeout(t0);
  auto tx = a.poll_transmit();
  REQUIRE(tx);
  CHECK(tx->to == b_addr);
  CHECK(tx->tls_name.empty());

  // One whole exchange: A learns B's id from the SynAck digest.
  auto synack = b.handle_packet(
      tx->payload, t0, ac::Inbound{a.self_id().gossip_advertise_addr, ac::Stage::kStreamOpen, {}});
  REQUIRE(synack);
  auto ack = a.handle_packet(synack->payload, t0, ac::Inbound{b_addr, ac::Stage::kStreamReply, {}});
  REQUIRE(ack);
  b.handle_packet(ack->payload, t0,
                  ac::Inbound{a.self_id().gossip_advertise_addr, ac::Stage::kStreamAck, {}});

  const ac::Instant t1 = t0 + a.config().gossip_interval;
  a.handle_timeout(t1);
  bool saw_b = false;
  while (auto next = a.poll_transmit()) {
    if (next->to == b_addr) {
      saw_b = true;
      CHECK(next->tls_name == "b.test");
    }
  }
  CHECK(saw_b);
}
