// Comma-separated values (RFC 4180): whole files written atomically, quoting fields
// that contain commas, quotes or newlines; a reader for simple files (one record per
// line, quotes honoured) that returns rows of strings.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/atomic_file.hpp"

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

// Writes `rows` (the header first) as one file, atomically (ewe/io/atomic_file.hpp):
// a failed write leaves the previous file intact. A file that grows, such as a log of
// epochs, is rewritten whole with every row it holds.
inline void write_csv(const std::filesystem::path& path, const std::vector<std::vector<std::string>>& rows) {
    std::string text;
    for (const std::vector<std::string>& fields : rows) {
        for (std::size_t i = 0; i < fields.size(); ++i) {
            if (i) text += ',';
            text += csv_field(fields[i]);
        }
        text += '\n';
    }
    write_file_atomically(path, "write_csv",
                          [&](std::ostream& out) { out.write(text.data(), std::streamsize(text.size())); });
}

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
