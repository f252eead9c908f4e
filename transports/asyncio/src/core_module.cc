// aiocluster._core: the sans-IO Node and StreamExchange of aiocluster::core
// for Python. Whole packets go in and out as bytes; time goes in as
// time.monotonic() seconds (float) or time.monotonic_ns() (int) and comes out
// as float seconds. Node ids are tuples (name, generation_id, host, port,
// tls_name or None) and values (value, version, status, status_change_ts);
// the Python package (aiocluster/) turns them into its public types.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "aiocluster/config.h"
#include "aiocluster/exchange.h"
#include "aiocluster/framing.h"
#include "aiocluster/node.h"
#include "aiocluster/sealing.h"
#include "aiocluster/stats.h"
#include "aiocluster/types.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace aiocluster::python {
namespace {

// --- Time ---

Instant to_instant(const py::handle& now) {
  if (py::isinstance<py::int_>(now))
    return Instant(std::chrono::nanoseconds(now.cast<std::int64_t>()));
  const double seconds = now.cast<double>();
  return Instant(std::chrono::nanoseconds(std::llround(seconds * 1e9)));
}

double to_seconds(Instant at) {
  return std::chrono::duration<double>(at.time_since_epoch()).count();
}

Duration to_duration(double seconds, const char* field) {
  if (!std::isfinite(seconds)) throw ConfigError(std::string(field) + ": must be a finite number");
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

// --- Values ---

// Values travel as proto strings: valid UTF-8 from a well-behaved peer, and
// anything else must not raise out of an event.
py::str to_str(std::string_view text) {
  PyObject* s = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
  if (s == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

py::bytes to_bytes(const Bytes& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

ByteView view(const py::bytes& bytes) {
  char* data = nullptr;
  Py_ssize_t size = 0;
  PyBytes_AsStringAndSize(bytes.ptr(), &data, &size);
  return {reinterpret_cast<const std::uint8_t*>(data), static_cast<std::size_t>(size)};
}

py::tuple id_tuple(const NodeId& id) {
  py::object tls = id.tls_name.empty() ? py::object(py::none()) : py::object(to_str(id.tls_name));
  return py::make_tuple(to_str(id.name), id.generation_id, to_str(id.gossip_advertise_addr.host),
                        id.gossip_advertise_addr.port, tls);
}

NodeId id_from(const py::tuple& t) {
  if (t.size() != 5)
    throw py::value_error("node_id: expected (name, generation_id, host, port, tls_name)");
  NodeId id;
  id.name = t[0].cast<std::string>();
  id.generation_id = t[1].cast<std::uint64_t>();
  id.gossip_advertise_addr = Address{t[2].cast<std::string>(), t[3].cast<std::uint16_t>()};
  if (!t[4].is_none()) id.tls_name = t[4].cast<std::string>();
  return id;
}

// status_change_ts: when a tombstone's status changed, in the clock the
// driver feeds the core (time.monotonic() seconds); 0.0 for a SET value, and
// for a value the state no longer holds at that version.
double status_change_ts(const Node& node, const NodeId& id, std::string_view key,
                        const VersionedValue& v) {
  if (!v.is_tombstone()) return 0.0;
  const NodeState* state = node.node_state(id);
  if (state == nullptr) return 0.0;
  const auto held = state->find(key);
  if (!held || held->version != v.version) return 0.0;
  const auto at = state->status_changed_at(key);
  return at ? to_seconds(*at) : 0.0;
}

py::tuple value_tuple(const VersionedValue& v, double changed_at) {
  return py::make_tuple(to_str(v.value), v.version, static_cast<int>(v.status), changed_at);
}

py::tuple value_tuple(const Node& node, const NodeId& id, std::string_view key,
                      const VersionedValue& v) {
  return value_tuple(v, status_change_ts(node, id, key, v));
}

// ("join", id) | ("leave", id) | ("key", id, key, old or None, new). An old
// value's tombstone time is gone with it: it reads 0.0.
py::tuple event_tuple(const Node& node, const Event& event) {
  if (const auto* joined = std::get_if<NodeJoined>(&event))
    return py::make_tuple("join", id_tuple(joined->node));
  if (const auto* left = std::get_if<NodeLeft>(&event))
    return py::make_tuple("leave", id_tuple(left->node));
  const auto& changed = std::get<KeyChanged>(event);
  py::object old =
      changed.old_value ? py::object(value_tuple(*changed.old_value, 0.0)) : py::object(py::none());
  return py::make_tuple("key", id_tuple(changed.node), to_str(changed.key), old,
                        value_tuple(node, changed.node, changed.key, changed.new_value));
}

py::list id_list(const std::vector<NodeId>& ids) {
  py::list out;
  for (const auto& id : ids) out.append(id_tuple(id));
  return out;
}

// --- Node ---

struct NodeArgs {
  std::string cluster_id;
  py::tuple node_id;
  std::vector<std::pair<std::string, std::uint16_t>> seeds;
  double gossip_interval;
  std::size_t gossip_count;
  std::size_t max_payload_size;
  double marked_for_deletion_grace_period;
  double phi_threshold;
  std::size_t sampling_window_size;
  double max_interval;
  double initial_interval;
  double dead_node_grace_period;
  // Sealed gossip: no keys, no sealing.
  std::vector<SealKey> seal_keys;
  int seal_mode = 2;
  double replay_window = 60;
  std::optional<std::int64_t> wall_clock_at_start_ns;
};

// A 32-byte key from Python bytes (the package checks sizes; this refuses
// anything else rather than read past it).
SealKey seal_key(const py::bytes& bytes) {
  const ByteView v = view(bytes);
  SealKey key;
  if (v.size() != key.size()) throw py::value_error("a seal key is 32 bytes");
  std::copy(v.begin(), v.end(), key.begin());
  return key;
}

std::vector<SealKey> seal_keys(const py::list& list) {
  std::vector<SealKey> keys;
  for (const auto& item : list) keys.push_back(seal_key(item.cast<py::bytes>()));
  return keys;
}

SealMode seal_mode(int mode) {
  switch (mode) {
    case 0:
      return SealMode::kOpenOnly;
    case 1:
      return SealMode::kPermissive;
    case 2:
      return SealMode::kRequired;
    default:
      throw py::value_error("seal_mode: 0 (open only), 1 (permissive) or 2 (required)");
  }
}

// The Node's settings from a dict (see _core.pyi).
NodeArgs args_from(const py::dict& d) {
  NodeArgs a;
  a.cluster_id = d["cluster_id"].cast<std::string>();
  a.node_id = d["node_id"].cast<py::tuple>();
  a.seeds = d["seeds"].cast<decltype(a.seeds)>();
  a.gossip_interval = d["gossip_interval"].cast<double>();
  a.gossip_count = d["gossip_count"].cast<std::size_t>();
  a.max_payload_size = d["max_payload_size"].cast<std::size_t>();
  a.marked_for_deletion_grace_period = d["marked_for_deletion_grace_period"].cast<double>();
  a.phi_threshold = d["phi_threshold"].cast<double>();
  a.sampling_window_size = d["sampling_window_size"].cast<std::size_t>();
  a.max_interval = d["max_interval"].cast<double>();
  a.initial_interval = d["initial_interval"].cast<double>();
  a.dead_node_grace_period = d["dead_node_grace_period"].cast<double>();
  if (d.contains("seal_keys")) {
    a.seal_keys = seal_keys(d["seal_keys"].cast<py::list>());
    a.seal_mode = d["seal_mode"].cast<int>();
    a.replay_window = d["replay_window"].cast<double>();
    a.wall_clock_at_start_ns = d["wall_clock_at_start_ns"].cast<std::int64_t>();
  }
  return a;
}

Config make_config(const NodeArgs& a) {
  Config c;
  c.cluster_id = a.cluster_id;
  c.node_id = id_from(a.node_id);
  for (const auto& [host, port] : a.seeds) c.seeds.push_back(Address{host, port});
  c.gossip_interval = to_duration(a.gossip_interval, "gossip_interval");
  c.gossip_count = a.gossip_count;
  c.max_payload_size = a.max_payload_size;
  c.max_inbound_payload_size = std::max(c.max_inbound_payload_size, a.max_payload_size);
  c.marked_for_deletion_grace_period =
      to_duration(a.marked_for_deletion_grace_period, "marked_for_deletion_grace_period");
  c.dead_node_grace_period =
      to_duration(a.dead_node_grace_period, "failure_detector.dead_node_grace_period");
  c.failure_detector.phi_threshold = a.phi_threshold;
  c.failure_detector.sampling_window_size = a.sampling_window_size;
  c.failure_detector.max_interval = to_duration(a.max_interval, "failure_detector.max_interval");
  c.failure_detector.initial_interval =
      to_duration(a.initial_interval, "failure_detector.initial_interval");
  if (!a.seal_keys.empty()) {
    c.sealing.keyring = Keyring(a.seal_keys);
    c.sealing.mode = seal_mode(a.seal_mode);
    c.sealing.replay_window = to_duration(a.replay_window, "sealing.replay_window");
    c.sealing.wall_clock_at_start = std::chrono::nanoseconds(*a.wall_clock_at_start_ns);
  }
  return c;
}

py::dict stats_dict(const Stats& s) {
  py::dict d;
  d["packets_in"] =
      s.packets_in.syn + s.packets_in.synack + s.packets_in.ack + s.packets_in.bad_cluster;
  d["packets_out"] =
      s.packets_out.syn + s.packets_out.synack + s.packets_out.ack + s.packets_out.bad_cluster;
  d["bytes_in"] = s.bytes_in;
  d["bytes_out"] = s.bytes_out;
  d["packets_dropped"] = s.packets_dropped();
  for (std::size_t i = 0; i < kDropReasonCount; ++i) {
    const auto reason = static_cast<DropReason>(i);
    d[py::str("dropped_" + std::string(to_string(reason)))] = s.dropped(reason);
  }
  d["node_deltas_applied"] = s.node_deltas_applied;
  d["key_values_applied"] = s.key_values_applied;
  d["rounds"] = s.rounds;
  d["nodes_removed"] = s.nodes_removed;
  d["tombstones_removed"] = s.tombstones_removed;
  return d;
}

py::object own_value(const Node& node, std::string_view key) {
  const NodeState* self = node.node_state(node.self_id());
  const auto v = self ? self->find(key) : std::nullopt;
  return v ? py::object(value_tuple(node, node.self_id(), key, *v)) : py::object(py::none());
}

py::list snapshot_list(const Node& node) {
  py::list out;
  for (const NodeSnapshot& n : node.snapshot().nodes) {
    py::dict kvs;
    for (const auto& [key, value] : n.key_values)
      kvs[to_str(key)] = value_tuple(node, n.id, key, value);
    out.append(
        py::make_tuple(id_tuple(n.id), n.heartbeat, n.max_version, n.last_gc_version, n.live, kvs));
  }
  return out;
}

void bind_node(py::module_& m) {
  py::class_<Node>(m, "Node")
      .def(py::init([](const py::dict& config, const py::handle& now, std::uint64_t seed,
                       const KeyValues& initial) {
             return Node(make_config(args_from(config)), to_instant(now), seed, initial);
           }),
           "config"_a, "now"_a, "seed"_a, "initial_key_values"_a = KeyValues{})
      // Inputs
      .def("handle_timeout",
           [](Node& n, const py::handle& now) { n.handle_timeout(to_instant(now)); })
      // Outputs, in the drain order of node.h: transmits, timeout, events.
      .def("poll_transmit",
           [](Node& n) -> py::object {
             auto tx = n.poll_transmit();
             if (!tx) return py::none();
             py::object tls =
                 tx->tls_name.empty() ? py::object(py::none()) : py::object(to_str(tx->tls_name));
             return py::make_tuple(tx->to.host, tx->to.port, tls, to_bytes(tx->payload));
           })
      .def("poll_timeout",
           [](const Node& n) -> std::optional<double> {
             auto t = n.poll_timeout();
             return t ? std::optional<double>(to_seconds(*t)) : std::nullopt;
           })
      .def("poll_event",
           [](Node& n) -> py::object {
             auto ev = n.poll_event();
             return ev ? py::object(event_tuple(n, *ev)) : py::object(py::none());
           })
      .def("poll_events",
           [](Node& n) {
             py::list out;
             while (auto ev = n.poll_event()) out.append(event_tuple(n, *ev));
             return out;
           })
      .def("discard_events",
           [](Node& n) {
             std::size_t count = 0;
             while (n.poll_event()) ++count;
             return count;
           })
      // Own key-values
      .def("set", [](Node& n, std::string_view k, std::string_view v) { n.set(k, v); })
      .def("delete", [](Node& n, std::string_view k) { n.remove(k); })
      .def("set_with_ttl",
           [](Node& n, std::string_view k, std::string_view v) { n.set_with_ttl(k, v); })
      .def("delete_after_ttl", [](Node& n, std::string_view k) { n.delete_after_ttl(k); })
      // Sealed gossip's keyring
      .def("install_key", [](Node& n, const py::bytes& key) { n.install_key(seal_key(key)); })
      .def("make_primary_key",
           [](Node& n, const py::bytes& key) { n.make_primary_key(seal_key(key)); })
      .def("remove_key", [](Node& n, const py::bytes& key) { return n.remove_key(seal_key(key)); })
      .def("set_keyring",
           [](Node& n, const py::list& keys) { n.set_keyring(Keyring(seal_keys(keys))); })
      .def("set_seal_mode", [](Node& n, int mode) { n.set_seal_mode(seal_mode(mode)); })
      .def("seal_keys",
           [](const Node& n) {
             py::list out;
             for (const SealKey& key : n.config().sealing.keyring.keys())
               out.append(py::bytes(reinterpret_cast<const char*>(key.data()), key.size()));
             return out;
           })
      .def("get",
           [](const Node& n, std::string_view k) -> py::object {
             auto v = n.get(k);
             return v ? py::object(to_str(*v)) : py::object(py::none());
           })
      .def("get_versioned", &own_value)
      // Getters
      .def_property_readonly("self_id", [](const Node& n) { return id_tuple(n.self_id()); })
      .def_property_readonly("max_inbound_payload_size",
                             [](const Node& n) { return n.config().max_inbound_payload_size; })
      .def("live_nodes", [](const Node& n) { return id_list(n.live_nodes()); })
      .def("dead_nodes", [](const Node& n) { return id_list(n.dead_nodes()); })
      .def("snapshot", &snapshot_list)
      .def("stats", [](const Node& n) { return stats_dict(n.stats()); });
}

// --- StreamExchange and framing ---

void bind_exchange(py::module_& m) {
  py::class_<StreamExchange> exchange(m, "StreamExchange");
  py::enum_<StreamExchange::Action>(exchange, "Action")
      .value("WRITE", StreamExchange::Action::kWrite)
      .value("READ", StreamExchange::Action::kRead)
      .value("CLOSE", StreamExchange::Action::kClose);
  exchange
      .def_static("initiate",
                  [](const py::bytes& syn) {
                    auto v = view(syn);
                    return StreamExchange::initiate(Bytes(v.begin(), v.end()));
                  })
      .def_static("respond", &StreamExchange::respond)
      .def("set_peer_names", &StreamExchange::set_peer_names, "names"_a)
      // (action, frame): a WRITE's frame is the whole frame, length prefix
      // included, ready for one write.
      .def("next",
           [](StreamExchange& ex) {
             auto step = ex.next();
             if (step.action != StreamExchange::Action::kWrite)
               return py::make_tuple(step.action, py::none());
             Bytes frame = encode_frame(step.packet);
             return py::make_tuple(step.action, to_bytes(frame));
           })
      .def(
          "on_frame",
          [](StreamExchange& ex, Node& node, const py::bytes& payload, const py::handle& now) {
            auto v = view(payload);
            ex.on_frame(node, Bytes(v.begin(), v.end()), to_instant(now));
          },
          "node"_a, "payload"_a, "now"_a)
      .def_property_readonly("completed", &StreamExchange::completed)
      .def_property_readonly(
          "initiator",
          [](const StreamExchange& ex) { return ex.role() == StreamExchange::Role::kInitiator; })
      .def_property_readonly("dropped", [](const StreamExchange& ex) -> std::optional<std::string> {
        auto reason = ex.dropped();
        return reason ? std::optional<std::string>(std::string(to_string(*reason))) : std::nullopt;
      });

  // Frames from a byte stream in arbitrary chunks, within a maximum payload
  // size; after an error the connection must be closed.
  py::class_<FrameDecoder>(m, "FrameDecoder")
      .def(py::init<std::size_t>(), "max_payload_size"_a)
      // Takes bytes up to the end of the next whole frame; returns how many.
      .def("feed",
           [](FrameDecoder& decoder, const py::buffer& data) {
             py::buffer_info info = data.request();
             if (info.ndim != 1 || info.itemsize != 1)
               throw py::value_error("feed: expected bytes");
             return decoder.feed(
                 {static_cast<const std::uint8_t*>(info.ptr), static_cast<std::size_t>(info.size)});
           })
      .def("next_frame",
           [](FrameDecoder& decoder) -> py::object {
             auto frame = decoder.next_frame();
             return frame ? py::object(to_bytes(*frame)) : py::object(py::none());
           })
      .def_property_readonly(
          "error", [](const FrameDecoder& decoder) -> std::optional<std::string> {
            auto error = decoder.error();
            if (!error) return std::nullopt;
            return *error == FrameError::kEmpty ? "empty frame" : "frame too large";
          });
}

}  // namespace
}  // namespace aiocluster::python

PYBIND11_MODULE(_core, m) {
  m.doc() = "The sans-IO aiocluster core (C++): Node and StreamExchange.";
  py::register_exception<aiocluster::ConfigError>(m, "ConfigError", PyExc_ValueError);
  aiocluster::python::bind_node(m);
  aiocluster::python::bind_exchange(m);
}
