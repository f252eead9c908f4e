// A small JSON reader for the node agent's report lines: enough of RFC 8259
// (objects, arrays, strings with escapes, numbers, literals) to check what
// the agent prints. Throws std::runtime_error on malformed input.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace aiocluster::testing {

struct Json {
  using Object = std::map<std::string, Json>;
  using Array = std::vector<Json>;
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> value;

  const Json& operator[](const std::string& key) const {
    const auto& object = std::get<Object>(value);
    auto it = object.find(key);
    if (it == object.end()) throw std::runtime_error("no key " + key);
    return it->second;
  }
  const Object& object() const { return std::get<Object>(value); }
  const Array& array() const { return std::get<Array>(value); }
  const std::string& string() const { return std::get<std::string>(value); }
  double number() const { return std::get<double>(value); }

  static Json parse(std::string_view text) {
    std::size_t pos = 0;
    Json out = parse_value(text, pos);
    skip(text, pos);
    if (pos != text.size()) throw std::runtime_error("trailing characters");
    return out;
  }

 private:
  static void skip(std::string_view t, std::size_t& p) {
    while (p < t.size() && (t[p] == ' ' || t[p] == '\t' || t[p] == '\n' || t[p] == '\r')) ++p;
  }
  static void expect(std::string_view t, std::size_t& p, char c) {
    skip(t, p);
    if (p >= t.size() || t[p] != c) throw std::runtime_error(std::string("expected ") + c);
    ++p;
  }
  static std::string parse_string(std::string_view t, std::size_t& p) {
    expect(t, p, '"');
    std::string out;
    while (true) {
      if (p >= t.size()) throw std::runtime_error("unterminated string");
      const char c = t[p++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20)
        throw std::runtime_error("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p >= t.size()) throw std::runtime_error("bad escape");
      const char e = t[p++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          if (p + 4 > t.size()) throw std::runtime_error("bad \\u escape");
          const unsigned code =
              static_cast<unsigned>(std::stoul(std::string(t.substr(p, 4)), nullptr, 16));
          p += 4;
          if (code >= 0x80) throw std::runtime_error("only ASCII \\u escapes are expected");
          out += static_cast<char>(code);
          break;
        }
        default:
          throw std::runtime_error("bad escape");
      }
    }
  }
  static Json parse_value(std::string_view t, std::size_t& p) {
    skip(t, p);
    if (p >= t.size()) throw std::runtime_error("unexpected end");
    const char c = t[p];
    if (c == '{') {
      ++p;
      Object object;
      skip(t, p);
      if (p < t.size() && t[p] == '}') {
        ++p;
        return Json{std::move(object)};
      }
      while (true) {
        std::string key = parse_string(t, p);
        expect(t, p, ':');
        object.emplace(std::move(key), parse_value(t, p));
        skip(t, p);
        if (p < t.size() && t[p] == ',') {
          ++p;
          continue;
        }
        expect(t, p, '}');
        return Json{std::move(object)};
      }
    }
    if (c == '[') {
      ++p;
      Array array;
      skip(t, p);
      if (p < t.size() && t[p] == ']') {
        ++p;
        return Json{std::move(array)};
      }
      while (true) {
        array.push_back(parse_value(t, p));
        skip(t, p);
        if (p < t.size() && t[p] == ',') {
          ++p;
          continue;
        }
        expect(t, p, ']');
        return Json{std::move(array)};
      }
    }
    if (c == '"') return Json{parse_string(t, p)};
    for (const auto& [word, value] : {std::pair<std::string_view, Json>{"true", Json{true}},
                                      {"false", Json{false}},
                                      {"null", Json{nullptr}}}) {
      if (t.substr(p, word.size()) == word) {
        p += word.size();
        return value;
      }
    }
    const std::string rest(t.substr(p, 64));
    char* end = nullptr;
    const double number = std::strtod(rest.c_str(), &end);
    if (end == rest.c_str()) throw std::runtime_error("bad value");
    p += static_cast<std::size_t>(end - rest.c_str());
    return Json{number};
  }
};

}  // namespace aiocluster::testing
