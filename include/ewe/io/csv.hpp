// Comma-separated values (RFC 4180): quoting of fields that contain commas, quotes
// or newlines on write; a reader for simple files (one record per line, quotes
// honoured) that returns rows of strings.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ewe/core/error.hpp"

namespace ewe::io {

inline std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

inline std::string csv_number(double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

// Writes rows one at a time; append mode keeps existing rows.
class CsvWriter {
public:
    CsvWriter(const std::filesystem::path& path, bool append = false)
        : path_(path), out_(path, append ? std::ios::app : std::ios::trunc) {
        if (!out_) fail("CsvWriter: cannot open ", path.string(), " for writing");
    }
    void row(const std::vector<std::string>& fields) {
        for (std::size_t i = 0; i < fields.size(); ++i) out_ << (i ? "," : "") << csv_field(fields[i]);
        out_ << '\n';
        out_.flush();
        if (!out_) fail("CsvWriter: could not write ", path_.string());
    }

private:
    std::filesystem::path path_;
    std::ofstream out_;
};

// All records of a CSV file (header included).
inline std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) fail("read_csv: cannot open ", path.string());
    std::vector<std::vector<std::string>> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::vector<std::string> fields(1);
        bool quoted = false;
        for (std::size_t i = 0; i < line.size(); ++i) {
            const char c = line[i];
            if (quoted) {
                if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
                else if (c == '"') quoted = false;
                else fields.back() += c;
            } else if (c == '"') quoted = true;
            else if (c == ',') fields.emplace_back();
            else fields.back() += c;
        }
        rows.push_back(std::move(fields));
    }
    return rows;
}

}  // namespace ewe::io
