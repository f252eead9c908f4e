#include "failure_detector.h"

#include <doctest/doctest.h>

#include <cmath>

#include "harness.h"

using namespace testing;

TEST_CASE("phi is undefined until two arrivals") {
  FailureDetector fd(FailureDetectorConfig{});
  const FailureDetector::Slot n = 3;
  CHECK_FALSE(fd.phi(n, t0()));
  fd.report_heartbeat(n, t0());
  CHECK_FALSE(fd.phi(n, t0() + 1s));
  CHECK_FALSE(fd.is_live(n, t0() + 1s));
  fd.report_heartbeat(n, t0() + 1s);
  REQUIRE(fd.phi(n, t0() + 1s));
  CHECK(fd.is_live(n, t0() + 1s));
}

TEST_CASE("with a stated detection time, phi is defined from the first arrival") {
  FailureDetectorConfig config;
  config.detection_time = 1s;
  FailureDetector fd(config, 100ms);
  const FailureDetector::Slot n = 3;
  CHECK_FALSE(fd.is_live(n, t0()));
  fd.report_heartbeat(n, t0());
  // The prior is the round: 50 ms of silence is half a round.
  REQUIRE(fd.phi(n, t0() + 50ms));
  CHECK(*fd.phi(n, t0() + 50ms) == doctest::Approx(0.5));
  CHECK(fd.is_live(n, t0() + 50ms));
  CHECK_FALSE(fd.is_live(n, t0() + 1s));
}

TEST_CASE("phi = elapsed / smoothed mean, with the prior weighted as five samples") {
  FailureDetectorConfig config;  // initial_interval 5 s, threshold 8
  FailureDetector fd(config);
  const FailureDetector::Slot n = 3;
  fd.report_heartbeat(n, t0());
  fd.report_heartbeat(n, t0() + 1s);
  // mean = (1 s + 5 * 5 s) / (1 + 5) = 26/6 s
  const double mean = 26.0 / 6.0;
  CHECK(*fd.phi(n, t0() + 1s + 2s) == doctest::Approx(2.0 / mean));
  // Dead once elapsed > 8 * mean = 34.67 s.
  CHECK(fd.is_live(n, t0() + 1s + 34s));
  CHECK_FALSE(fd.is_live(n, t0() + 1s + 35s));
}

TEST_CASE("intervals above max_interval are not recorded, and the window is bounded") {
  FailureDetectorConfig config;
  config.sampling_window_size = 3;
  FailureDetector fd(config);
  const FailureDetector::Slot n = 3;
  Instant t = t0();
  fd.report_heartbeat(n, t);
  t += 20s;  // too long: not a sample
  fd.report_heartbeat(n, t);
  // No samples: the mean is the prior, 5 s.
  CHECK(*fd.phi(n, t + 5s) == doctest::Approx(1.0));
  for (int i = 0; i < 10; ++i) {
    t += 2s;
    fd.report_heartbeat(n, t);
  }
  // Three samples of 2 s: mean = (6 + 25) / 8 s.
  CHECK(*fd.phi(n, t + 1s) == doctest::Approx(1.0 / (31.0 / 8.0)));
  fd.forget(n);
  CHECK_FALSE(fd.phi(n, t));
}

TEST_CASE("the prior follows the gossip interval: five rounds, at most 5 s") {
  const FailureDetectorConfig config;
  CHECK(config.resolve(1s).initial_interval == 5s);
  CHECK(config.resolve(2s).initial_interval == 5s);
  CHECK(config.resolve(100ms).initial_interval == 500ms);
  FailureDetectorConfig chosen;
  chosen.initial_interval = 2s;
  CHECK(chosen.resolve(100ms).initial_interval == 2s);
  // The local pause threshold: three rounds unless set.
  CHECK(config.resolve(100ms).local_pause_threshold == 300ms);
}

TEST_CASE("a stated detection time sets the linear threshold and a one-round prior") {
  FailureDetectorConfig config;
  config.detection_time = 1s;
  const FailureDetectorConfig r = config.resolve(100ms);
  CHECK(r.initial_interval == 100ms);
  // A round of the detection time goes to the last heartbeat's travel and
  // to waiting for the next round: nine rounds of silence are tolerated.
  CHECK(r.phi_threshold == doctest::Approx(9.0));
  // Heartbeats every 100 ms: convicted after about 900 ms of silence.
  FailureDetector fd(config, 100ms);
  Instant t = t0();
  for (int i = 0; i < 50; ++i, t += 100ms) fd.report_heartbeat(0, t);
  t -= 100ms;
  CHECK(fd.is_live(0, t + 880ms));
  CHECK_FALSE(fd.is_live(0, t + 920ms));
}

TEST_CASE("normal phi: small within the usual jitter, steep past the acceptable pause") {
  CHECK(normal_phi(0.0) == doctest::Approx(-std::log10(0.5)));
  CHECK(normal_phi(5.0) > 6.0);
  CHECK(normal_phi(40.0) > normal_phi(29.9));  // finite and increasing far out
  CHECK(std::isfinite(normal_phi(1000.0)));

  FailureDetectorConfig config;
  config.model = PhiModel::kNormal;
  config.initial_interval = 100ms;  // a prior unlike the intervals would widen the spread
  config.min_std_deviation = 50ms;
  config.acceptable_heartbeat_pause = 500ms;
  FailureDetector fd(config, 100ms);
  Instant t = t0();
  for (int i = 0; i < 200; ++i, t += 100ms) fd.report_heartbeat(0, t);
  t -= 100ms;
  // mean about 100 ms, spread at its floor of 50 ms: phi 8 at about
  // 100 + 500 + 5.6 x 50 = 880 ms of silence.
  CHECK(*fd.phi(0, t + 100ms) < 1.0);
  CHECK(*fd.phi(0, t + 600ms) == doctest::Approx(-std::log10(0.5)).epsilon(0.05));
  CHECK(fd.is_live(0, t + 840ms));
  CHECK_FALSE(fd.is_live(0, t + 920ms));
}

TEST_CASE("normal phi: a stated detection time becomes the acceptable pause") {
  FailureDetectorConfig config;
  config.model = PhiModel::kNormal;
  config.detection_time = 1s;
  const FailureDetectorConfig r = config.resolve(100ms);
  CHECK(r.phi_threshold == 8.0);
  CHECK(r.min_std_deviation == 25ms);
  // 900 ms of silence = mean 100 ms + pause + about 5.6 x 25 ms.
  CHECK(r.acceptable_heartbeat_pause > 600ms);
  CHECK(r.acceptable_heartbeat_pause < 700ms);
  FailureDetector fd(config, 100ms);
  Instant t = t0();
  for (int i = 0; i < 50; ++i, t += 100ms) fd.report_heartbeat(0, t);
  t -= 100ms;
  CHECK(fd.is_live(0, t + 850ms));
  CHECK_FALSE(fd.is_live(0, t + 950ms));
}

TEST_CASE("a stated detection time: beats faster than a round do not convict sooner") {
  // Nodes beat when they serve exchanges too, so heartbeats can come several
  // times a round; the stated time assumes one a round.
  for (const PhiModel model : {PhiModel::kLinear, PhiModel::kNormal}) {
    CAPTURE(static_cast<int>(model));
    FailureDetectorConfig config;
    config.model = model;
    config.detection_time = 1s;
    FailureDetector fd(config, 100ms);
    CHECK(fd.config().min_mean_interval == 100ms);
    Instant t = t0();
    for (int i = 0; i < 200; ++i, t += 25ms) fd.report_heartbeat(0, t);
    t -= 25ms;
    CHECK(fd.is_live(0, t + 850ms));
    CHECK_FALSE(fd.is_live(0, t + 950ms));
  }
  // Without a stated time there is no floor: phi divides by the mean heard.
  FailureDetector plain(FailureDetectorConfig{}, 100ms);
  CHECK_FALSE(plain.config().min_mean_interval);
  Instant t = t0();
  for (int i = 0; i < 200; ++i, t += 25ms) plain.report_heartbeat(0, t);
  t -= 25ms;
  // mean = (199 x 25 ms + 5 x 500 ms) / 204
  const double mean = (199 * 25.0 + 5 * 500.0) / 204.0;
  CHECK(*plain.phi(0, t + 100ms) == doctest::Approx(100.0 / mean).epsilon(0.001));
}

TEST_CASE("a local pause counts against nobody and leaves no interval behind") {
  FailureDetectorConfig config;
  config.detection_time = 1s;
  FailureDetector fd(config, 100ms);
  Instant t = t0();
  for (int i = 0; i < 20; ++i, t += 100ms) fd.report_heartbeat(0, t);
  t -= 100ms;
  // This node slept 5 s: without the note, node 0 looks long dead.
  const Instant resumed = t + 5s;
  CHECK_FALSE(fd.is_live(0, resumed));
  fd.note_local_pause(resumed);
  CHECK(fd.is_live(0, resumed));
  CHECK(fd.spared_by_pause(0, resumed));
  // A real death is still found: a detection time after the resumption.
  CHECK(fd.is_live(0, resumed + 850ms));
  CHECK_FALSE(fd.is_live(0, resumed + 950ms));
  // The interval spanning the pause is not recorded: the mean stays 100 ms.
  fd.report_heartbeat(0, resumed + 10ms);
  fd.report_heartbeat(0, resumed + 110ms);
  CHECK_FALSE(fd.spared_by_pause(0, resumed + 110ms));
  CHECK(*fd.phi(0, resumed + 110ms + 450ms) == doctest::Approx(4.5).epsilon(0.02));
}

namespace {

// Phi as computed before windows were fixed-point: from the exact
// intervals, in doubles.
struct ExactWindow {
  std::vector<double> intervals;  // seconds, the last `window` of them
  std::size_t window = 0;
  Instant last{};
  std::size_t arrivals = 0;

  void record(Instant now, const FailureDetectorConfig& config) {
    if (arrivals > 0 && now - last <= config.max_interval) {
      intervals.push_back(std::chrono::duration<double>(now - last).count());
      if (intervals.size() > window) intervals.erase(intervals.begin());
    }
    ++arrivals;
    last = now;
  }
  double phi(Instant now, const FailureDetectorConfig& config) const {
    const double prior = std::chrono::duration<double>(*config.initial_interval).count();
    const double weight = static_cast<double>(intervals.size()) + ArrivalWindow::kPriorWeight;
    double sum = ArrivalWindow::kPriorWeight * prior;
    double squares = ArrivalWindow::kPriorWeight * prior * prior;
    for (double i : intervals) {
      sum += i;
      squares += i * i;
    }
    const double mean = sum / weight;
    const double elapsed = std::chrono::duration<double>(now - last).count();
    if (config.model == PhiModel::kLinear) return elapsed / mean;
    const double std_dev =
        std::max(std::sqrt(std::max(0.0, squares / weight - mean * mean)),
                 std::chrono::duration<double>(*config.min_std_deviation).count());
    const double expected =
        mean + std::chrono::duration<double>(config.acceptable_heartbeat_pause).count();
    return normal_phi((elapsed - expected) / std_dev);
  }
};

}  // namespace

TEST_CASE("fixed-point windows give the phi of exact intervals, up to rounding") {
  for (const PhiModel model : {PhiModel::kLinear, PhiModel::kNormal}) {
    for (const Duration interval : {Duration(1s), Duration(100ms)}) {
      CAPTURE(static_cast<int>(model));
      CAPTURE(interval.count());
      FailureDetectorConfig config;
      config.model = model;
      config.sampling_window_size = 50;
      FailureDetector fd(config, interval);
      const FailureDetectorConfig& resolved = fd.config();
      // The rounding: half a unit per interval, a small part of a round. At
      // 1 s rounds the default 10 s max_interval is 250 units of a 25th of
      // a round, one byte each; at 100 ms it is 100 rounds, too many for a
      // byte at a 16th, so two bytes of a 4096th, or of what fits
      // max_interval in 16 bits.
      const bool narrow = interval == Duration(1s);
      CHECK(fd.sample_bytes() == (narrow ? 1 : 2));
      CHECK(fd.unit() == (narrow ? interval / 25
                                 : std::max(interval / 4096, resolved.max_interval / 65535 + 1ns)));
      // A relative error of half a unit over half an interval, at most, in
      // the mean; the normal model's spread moves by about as much, and phi
      // steepens with the silence.
      const double unit_error =
          static_cast<double>(fd.unit().count()) / static_cast<double>(interval.count());
      ExactWindow exact;
      exact.window = resolved.sampling_window_size;
      Rng rng(42);
      Instant t = t0();
      // Jittered beats, past the window's size so that the ring wraps.
      for (int i = 0; i < 120; ++i) {
        t += interval / 2 + Duration(static_cast<Duration::rep>(
                                rng.below(static_cast<std::uint64_t>(interval.count()))));
        fd.report_heartbeat(0, t);
        exact.record(t, resolved);
        if (i == 0) continue;  // phi needs two beats
        for (const double silence : {0.3, 1.0, 2.5, 6.0}) {
          const Instant now =
              t + std::chrono::duration_cast<Duration>(silence * Duration(interval));
          const double want = exact.phi(now, resolved);
          REQUIRE(fd.phi(0, now));
          const double tolerance =
              model == PhiModel::kLinear ? unit_error : unit_error * (2 + silence);
          CHECK(*fd.phi(0, now) == doctest::Approx(want).epsilon(tolerance));
        }
      }
    }
  }
}

TEST_CASE("a window is small and grows with its intervals, by an eighth") {
  CHECK(sizeof(ArrivalWindow) <= 24);
  const FailureDetectorConfig config = FailureDetectorConfig{}.resolve(1s);
  const Duration unit = FailureDetector::unit_for(config, 1s);
  const std::size_t width = ArrivalWindow::sample_bytes(config, unit);
  CHECK(width == 1);
  RingPool pool;
  ArrivalWindow w;
  Instant t = t0();
  for (int i = 0; i <= 40; ++i, t += 1s) w.record(t, config, unit, pool);
  // 40 intervals of the default window of 1000, in 40 bytes with little
  // room to spare, from the pool: its rings, old and new, fill no more
  // than its first slab.
  CHECK(w.intervals() == 40);
  CHECK(w.capacity(1000, width) >= 40);
  CHECK(w.capacity(1000, width) <= 40 + 40 / 8 + 8);
  CHECK(pool.held() == SlabPool::kSlab);
  const std::size_t window = ArrivalWindow::window_of(config);
  ArrivalWindow copy = w.copy(window, width, pool);
  CHECK(copy.intervals() == 40);
  CHECK(*copy.phi(t, config, unit) == *w.phi(t, config, unit));
  // The last beat was a second before t.
  CHECK(*w.phi(t + 1s, config, unit) == doctest::Approx(2.0 / ((40.0 + 25) / 45)));
  copy.release(window, width, pool);
  CHECK(copy.intervals() == 0);
  CHECK_FALSE(copy.phi(t, config, unit));
  w.release(window, width, pool);
}

TEST_CASE("a ring's room is a size class: the room it was given when it last grew") {
  // record() grows the ring when the count reaches the room: that is sound
  // only if the room is the same for every count the ring has room for.
  for (const std::size_t width : {std::size_t{1}, std::size_t{2}}) {
    for (const std::size_t window :
         {std::size_t{1}, std::size_t{10}, std::size_t{1000}, ArrivalWindow::kMaxWindow}) {
      CAPTURE(width);
      CAPTURE(window);
      CHECK(ArrivalWindow::room(0, window, width) == 0);
      std::size_t last = 0;
      for (std::size_t count = 1; count <= window; ++count) {
        const std::size_t room = ArrivalWindow::room(count, window, width);
        REQUIRE(room >= count);
        REQUIRE(room <= window);
        REQUIRE(room >= last);
        REQUIRE(ArrivalWindow::room(room, window, width) == room);
        // Whole 16-byte granules less an 8-byte header, or the window.
        if (room < window) REQUIRE(room * width % 16 == 8);
        // About an eighth more than the last class.
        if (room > last && last * width >= 256) REQUIRE(room - last <= last / 8);
        last = room;
      }
    }
  }
}

TEST_CASE("the largest window holds 65535 intervals of 65535 units, summed exactly") {
  for (const PhiModel model : {PhiModel::kLinear, PhiModel::kNormal}) {
    CAPTURE(static_cast<int>(model));
    FailureDetectorConfig config;
    config.model = model;
    config.max_interval = 1h;
    config.sampling_window_size = 1'000'000;  // more than a window keeps
    FailureDetector fd(config, 1s);
    const Duration unit = fd.unit();
    REQUIRE(unit == Duration(1s) / 64);
    // 1024 s is 65536 units: clamped to 65535, the largest sample, so the
    // sum reaches 65535 x 65535, just below 2^32.
    Instant t = t0();
    for (std::size_t i = 0; i < ArrivalWindow::kMaxWindow + 100; ++i, t += 1024s) {
      fd.report_heartbeat(0, t);
    }
    t -= 1024s;
    const double samples = static_cast<double>(ArrivalWindow::kMaxWindow);
    const double weight = samples + ArrivalWindow::kPriorWeight;
    const double sample = 65535.0 * std::chrono::duration<double>(unit).count();
    const double mean = (samples * sample + ArrivalWindow::kPriorWeight * 5.0) / weight;
    const double elapsed = 2000.0;
    const Instant now = t + 2000s;
    if (model == PhiModel::kLinear) {
      CHECK(*fd.phi(0, now) == doctest::Approx(elapsed / mean).epsilon(1e-12));
    } else {
      const double squares =
          (samples * sample * sample + ArrivalWindow::kPriorWeight * 25.0) / weight;
      const double std_dev = std::max(std::sqrt(std::max(0.0, squares - mean * mean)), 0.25);
      CHECK(*fd.phi(0, now) == doctest::Approx(normal_phi((elapsed - mean) / std_dev)));
    }
  }
}

TEST_CASE("the normal model's spread follows the ring as it wraps and as it is forgotten") {
  FailureDetectorConfig config;
  config.model = PhiModel::kNormal;
  config.sampling_window_size = 3;
  FailureDetector fd(config, 1s);
  const FailureDetectorConfig& resolved = fd.config();
  const Duration unit = fd.unit();
  // Whole units (a 25th of a round, one byte each): no rounding, so phi is
  // that of the exact intervals.
  REQUIRE(fd.sample_bytes() == 1);
  const std::vector<int> units{25, 50, 12, 37, 25, 250, 6};
  ExactWindow exact;
  exact.window = 3;
  for (int round = 0; round < 2; ++round) {
    Instant t = t0() + Duration(1h) * round;
    fd.report_heartbeat(1, t);
    exact.record(t, resolved);
    for (const int u : units) {
      t += unit * u;
      fd.report_heartbeat(1, t);
      exact.record(t, resolved);
      for (const Duration silence : {Duration(500ms), Duration(3s), Duration(9s)}) {
        CHECK(*fd.phi(1, t + silence) ==
              doctest::Approx(exact.phi(t + silence, resolved)).epsilon(1e-12));
      }
    }
    // Forgotten, the node starts afresh: no spread left from its past.
    fd.forget(1);
    CHECK_FALSE(fd.phi(1, t));
    exact = ExactWindow{};
    exact.window = 3;
  }
}

TEST_CASE("intervals longer than 65535 units are clamped, and shorter ones are rounded") {
  FailureDetectorConfig config;
  config.max_interval = 1h;  // more than 65535 units of a 64th of a round
  FailureDetector fd(config, 1s);
  CHECK(fd.unit() == Duration(1s) / 64);
  fd.report_heartbeat(0, t0());
  fd.report_heartbeat(0, t0() + 30min);
  // The mean is (65535 units + 5 x 5 s) / 6, not (30 min + 25 s) / 6.
  const double clamped = (65535.0 / 64 + 25) / 6;
  CHECK(*fd.phi(0, t0() + 30min + 100s) == doctest::Approx(100.0 / clamped));
}

TEST_CASE("a copied detector has the same windows, and they grow apart") {
  for (const Duration interval : {Duration(1s), Duration(100ms)}) {
    CAPTURE(interval.count());
    FailureDetector fd(FailureDetectorConfig{}, interval);
    Instant t = t0();
    for (int i = 0; i < 30; ++i, t += interval) fd.report_heartbeat(0, t);
    t -= interval;
    FailureDetector copy(fd);
    CHECK(copy.sample_bytes() == fd.sample_bytes());
    CHECK(*copy.phi(0, t + interval) == *fd.phi(0, t + interval));
    // The copy records on past its ring's size class; the original keeps
    // what it had.
    const double before = *fd.phi(0, t + interval);
    Instant u = t;
    for (int i = 0; i < 100; ++i) copy.report_heartbeat(0, u += 2 * interval);
    CHECK(*fd.phi(0, t + interval) == before);
    CHECK(*copy.phi(0, u + interval) < *fd.phi(0, t + interval));
  }
}

TEST_CASE("rings that grow are moved into fresh slabs, phi unchanged") {
  // Every window grows at about the same time and leaves a block of a size
  // no ring asks for again: the detector moves its rings together once the
  // slabs hold a 32nd more than the rings use. A window of 50 fills
  // within the run, so phi reads the samples it drops from the moved rings.
  FailureDetectorConfig config;
  config.sampling_window_size = 50;
  FailureDetector fd(config, 1s);
  REQUIRE(fd.sample_bytes() == 1);
  constexpr std::size_t kNodes = 2000;
  constexpr std::size_t kBeats = 60;
  Instant t = t0();
  for (std::size_t beat = 0; beat <= kBeats; ++beat, t += 1s) {
    // Uneven intervals, so that every window has a phi of its own.
    for (FailureDetector::Slot s = 0; s < kNodes; ++s) {
      if ((beat + s) % 7 != 0) fd.report_heartbeat(s, t + std::chrono::milliseconds(s % 500));
    }
  }
  std::size_t ring_bytes = 0;
  for (FailureDetector::Slot s = 0; s < kNodes; ++s) {
    // The same beats alone in a detector of their own: nothing to move.
    FailureDetector alone(config, 1s);
    Instant u = t0();
    std::size_t intervals = 0;
    for (std::size_t beat = 0; beat <= kBeats; ++beat, u += 1s) {
      if ((beat + s) % 7 != 0) {
        alone.report_heartbeat(0, u + std::chrono::milliseconds(s % 500));
        ++intervals;
      }
    }
    CHECK(fd.phi(s, t) == alone.phi(0, t));
    // Rings of 50 bytes take blocks of 56.
    ring_bytes += SlabPool::block_size(ArrivalWindow::room(intervals - 1, 50, 1));
  }
  CHECK(fd.ring_slab_bytes() <= ring_bytes + ring_bytes / 32 + 2 * SlabPool::kSlab);
  // A copy (a forked node) holds its rings in slabs of its own.
  const FailureDetector copy(fd);
  CHECK(copy.phi(kNodes - 1, t) == fd.phi(kNodes - 1, t));
  CHECK(copy.ring_slab_bytes() <= ring_bytes + ring_bytes / 32 + 2 * SlabPool::kSlab);
}
