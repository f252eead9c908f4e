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
