#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <google/protobuf/stubs/logging.h>

#include "support.h"

int main(int argc, char** argv) {
  simtest::set_program(argc > 0 ? argv[0] : nullptr);
  // The codec tests feed the generated parser invalid UTF-8 on purpose; its
  // complaints on stderr would only bury the test output.
  google::protobuf::SetLogHandler(nullptr);
  doctest::Context context(argc, argv);
  return context.run();
}
