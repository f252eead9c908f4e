# Writes a C++ source that holds a file's bytes (cmake -P, at build time):
#   cmake -DINPUT=page.html -DOUTPUT=page.cc -DNAMESPACE=ns -DFUNCTION=page -P embed_file.cmake
# defines std::string_view ns::page() returning the file's contents.
file(READ "${INPUT}" bytes HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${bytes}")
# One line per 16 bytes keeps the generated file readable by tools.
string(REGEX REPLACE "(('[^']*',){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by embed_file.cmake; do not edit.
#include <string_view>

namespace ${NAMESPACE} {

namespace {
constexpr char kBytes[] = {
${bytes}};
}  // namespace

std::string_view ${FUNCTION}() { return {kBytes, sizeof kBytes}; }

}  // namespace ${NAMESPACE}
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
