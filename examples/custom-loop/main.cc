// The core in a hand-written event loop: three nodes in one process, each on
// its own UDP socket, driven by poll(2) and the public Node API alone. This is
// the whole contract a driver has to honour:
//   1. feed the Node every datagram and every expired timeout, with `now`;
//   2. after each input, drain: transmits, then the next timeout, then events;
//   3. name each datagram peer by a key (here its numeric endpoint), the same
//      for a Syn sent to it and a reply received from it.
//
// Usage: aiocluster-custom-loop [SECONDS] [BASE_PORT]   (defaults: 10, 7000)
#include <aiocluster/aiocluster.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace ac = aiocluster;
using Clock = std::chrono::steady_clock;

namespace {

struct Peer {
  std::unique_ptr<ac::Node> node;
  int fd = -1;
};

sockaddr_in to_sockaddr(const ac::Address& a) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(a.port);
  inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
  return sa;
}

ac::Address from_sockaddr(const sockaddr_in& sa) {
  char host[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
  return ac::Address{host, ntohs(sa.sin_port)};
}

// Step 3: the core matches a reply to its Syn by this key alone.
ac::PeerKey key_of(const sockaddr_in& sa) { return ac::PeerKey::of(from_sockaddr(sa)); }

int bind_udp(const ac::Address& a) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  const sockaddr_in sa = to_sockaddr(a);
  if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    std::perror(("bind " + a.to_string()).c_str());
    std::exit(1);
  }
  return fd;
}

void send_to(int fd, const sockaddr_in& sa, const ac::Bytes& payload) {
  sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

// Step 2: everything the node wants done after an input.
void drain(Peer& p) {
  while (auto tx = p.node->poll_transmit()) {
    const sockaddr_in to = to_sockaddr(tx->to);
    send_to(p.fd, to, tx->payload);
    p.node->handle_datagram_sent(key_of(to));
  }
  while (auto ev = p.node->poll_event()) {
    const std::string& self = p.node->self_id().name;
    if (auto* j = std::get_if<ac::NodeJoined>(&*ev))
      std::printf("[%s] joined: %s\n", self.c_str(), j->node.name.c_str());
    if (auto* l = std::get_if<ac::NodeLeft>(&*ev))
      std::printf("[%s] left: %s\n", self.c_str(), l->node.name.c_str());
  }
}

void print_view(const ac::Node& node) {
  std::string line = "[" + node.self_id().name + "] live:";
  for (const auto& id : node.live_nodes()) {
    const ac::NodeState* st = node.node_state(id);
    const auto value = st ? st->value("cluster") : std::nullopt;
    line += " " + id.name + "(cluster=" + value.value_or("?") + ")";
  }
  std::puts(line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const auto run_for = std::chrono::seconds(argc > 1 ? std::atoi(argv[1]) : 10);
  const int base_port = argc > 2 ? std::atoi(argv[2]) : 7000;
  std::array<Peer, 3> peers;
  for (int i = 0; i < 3; ++i) {
    ac::Config config;
    config.cluster_id = "simple-aiocluster";
    config.node_id = {"simple" + std::to_string(i + 1),
                      static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()),
                      ac::Address{"127.0.0.1", static_cast<std::uint16_t>(base_port + i)}, ""};
    // simple1 seeds with base+2, simple2 with base, simple3 with base+1.
    config.seeds = {ac::Address{"127.0.0.1", static_cast<std::uint16_t>(base_port + (i + 2) % 3)}};
    peers[i].fd = bind_udp(config.node_id.gossip_advertise_addr);
    peers[i].node = std::make_unique<ac::Node>(config, Clock::now(), 1234 + i,
                                               ac::KeyValues{{"cluster", std::to_string(i + 1)}});
    // All three run on this thread, one call at a time: they can share one
    // set of working buffers (sized by the membership) instead of one each.
    if (i > 0) peers[i].node->share_workspace(*peers[0].node);
  }

  const auto start = Clock::now();
  auto next_print = start + std::chrono::seconds(1);
  while (Clock::now() - start < run_for) {
    // Sleep until the earliest deadline of any node, or a datagram.
    auto wake = next_print;
    for (auto& p : peers) wake = std::min(wake, p.node->poll_timeout().value_or(wake));
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now());
    std::array<pollfd, 3> fds{};
    for (int i = 0; i < 3; ++i) fds[i] = {peers[i].fd, POLLIN, 0};
    poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(0, wait.count())));

    for (int i = 0; i < 3; ++i) {
      Peer& p = peers[i];
      if (fds[i].revents & POLLIN) {
        std::array<std::uint8_t, 65536> buf;
        sockaddr_in src{};
        socklen_t len = sizeof src;
        ssize_t n;
        while ((n = recvfrom(p.fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&src),
                             &len)) > 0) {
          const ac::Outcome outcome =
              p.node->handle_packet(ac::ByteView(buf.data(), static_cast<std::size_t>(n)),
                                    Clock::now(), {ac::Stage::kDatagram, key_of(src)});
          if (outcome.reply) send_to(p.fd, src, outcome.reply->payload);
          drain(p);
          len = sizeof src;
        }
      }
      p.node->handle_timeout(Clock::now());
      drain(p);
    }
    if (Clock::now() >= next_print) {
      for (auto& p : peers) print_view(*p.node);
      next_print += std::chrono::seconds(1);
    }
  }
  for (auto& p : peers) close(p.fd);
  return 0;
}
