#include "failure_detector.h"

#include <doctest/doctest.h>

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
