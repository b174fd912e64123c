// JsonLine: one JSON object on one line, built field by field, for results that scripts
// read (a benchmark's numbers, a program's --json output). Numbers are written with
// %.6g; a NaN or an infinity is null; strings and keys are escaped.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ewe::io {

class JsonLine {
public:
    JsonLine& add(const std::string& key, double v) {
        char text[64];
        if (std::isfinite(v)) std::snprintf(text, sizeof text, "%.6g", v);
        else std::snprintf(text, sizeof text, "null");
        return raw(key, text);
    }
    JsonLine& add(const std::string& key, std::int64_t v) { return raw(key, std::to_string(v)); }
    JsonLine& add(const std::string& key, int v) { return raw(key, std::to_string(v)); }
    JsonLine& add(const std::string& key, const std::string& v) { return raw(key, "\"" + escape(v) + "\""); }
    JsonLine& add(const std::string& key, const char* v) { return add(key, std::string(v)); }
    std::string str() const { return "{" + body_ + "}"; }

private:
    static std::string escape(const std::string& s) {
        std::string out;
        for (char c : s) {
            if (c == '"' || c == '\\') out += '\\', out += c;
            else if (static_cast<unsigned char>(c) < 0x20) {
                char code[8];
                std::snprintf(code, sizeof code, "\\u%04x", c);
                out += code;
            } else out += c;
        }
        return out;
    }
    JsonLine& raw(const std::string& key, const std::string& v) {
        body_ += (body_.empty() ? "\"" : ", \"") + escape(key) + "\": " + v;
        return *this;
    }
    std::string body_;
};

}  // namespace ewe::io
