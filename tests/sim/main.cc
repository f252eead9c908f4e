#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "support.h"

int main(int argc, char** argv) {
  simtest::set_program(argc > 0 ? argv[0] : nullptr);
  doctest::Context context(argc, argv);
  return context.run();
}
