# Every installed header compiles alone, with the installed include directory
# as the only one added to the system's: so it includes nothing private (the
# core's src/ headers are not installed), and it pulls in no protobuf header
# (-H lists every header a file reads). The installed tree holds no generated
# protobuf header either. Run by check_package.cmake after the install, or
# alone: cmake -DPREFIX=... -DCXX=... -P check_headers.cmake
file(GLOB_RECURSE headers RELATIVE ${PREFIX}/include ${PREFIX}/include/*)
list(FILTER headers INCLUDE REGEX "\\.h$")
if(NOT headers)
  message(FATAL_ERROR "no headers installed under ${PREFIX}/include")
endif()
set(failures "")
foreach(header IN LISTS headers)
  if(header MATCHES "\\.pb\\.h$")
    string(APPEND failures "${header}: generated protobuf code installed\n")
    continue()
  endif()
  execute_process(
    COMMAND ${CXX} -std=c++20 -fsyntax-only -H -x c++ -I${PREFIX}/include ${PREFIX}/include/${header}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(APPEND failures "${header}: does not compile alone from the install\n${err}\n")
  elseif(err MATCHES "[^\n]*google/protobuf[^\n]*")
    string(APPEND failures "${header}: includes protobuf (${CMAKE_MATCH_0})\n")
  endif()
endforeach()
if(failures)
  message(FATAL_ERROR "installed headers:\n${failures}")
endif()
list(LENGTH headers count)
message(STATUS "${count} installed headers compile alone, without protobuf")
