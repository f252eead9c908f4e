# Fails when a core source mentions something a sans-IO core must not use.
file(GLOB_RECURSE sources ${CORE_DIR}/*.h ${CORE_DIR}/*.cc)
set(forbidden
  "<sys/socket.h>" "<netinet/" "<arpa/inet.h>" "<thread>" "<mutex>" "<atomic>" "<iostream>"
  "<cstdio>" "<random>" "::now\\(" "std::rand" "srand\\(" "printf\\(" "std::cout" "std::cerr"
  "time\\(nullptr\\)" "gettimeofday" "clock_gettime" "getenv")
set(failures "")
foreach(file IN LISTS sources)
  file(READ ${file} text)
  foreach(pattern IN LISTS forbidden)
    if(text MATCHES "${pattern}")
      string(APPEND failures "${file}: ${pattern}\n")
    endif()
  endforeach()
endforeach()
if(failures)
  message(FATAL_ERROR "core/ is not sans-IO:\n${failures}")
endif()
message(STATUS "checked ${CMAKE_MATCH_COUNT} patterns in core/: clean")
