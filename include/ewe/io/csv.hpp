// Comma-separated values (RFC 4180): write_csv writes whole files atomically, csv_field
// quoting a field that holds commas, quotes or line breaks; parse_csv and read_csv read
// quoted fields back (commas, quotes, newlines), refusing malformed quoting and binary
// files, and CsvTable finds a table's columns by name.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/atomic_file.hpp"
#include "ewe/io/files.hpp"

namespace ewe::io {

// A field as RFC 4180 writes it: in double quotes, its quotes doubled, when it holds a
// comma, a quote, CR or LF; else as it is.
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

// One record of a CSV file and the line it starts on (1-based; a quoted field may
// hold newlines, so a record can span lines).
struct CsvRecord {
    std::vector<std::string> fields;
    std::int64_t line = 0;
};

// The records of CSV text (RFC 4180): fields separated by commas, records by LF or
// CRLF; a field in double quotes may hold commas, CR, LF and quotes (doubled). Empty
// lines are skipped. `file` names the source in errors: a quote inside an unquoted
// field, text after a closing quote, or a quoted field never closed.
inline std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& file) {
    std::vector<CsvRecord> records;
    std::int64_t line = 1;
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
        if (text[i] == '\n' || (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')) {  // an empty line
            i += text[i] == '\r' ? 2 : 1;
            ++line;
            continue;
        }
        CsvRecord record{{}, line};
        while (true) {  // one field per pass
            std::string field;
            if (i < n && text[i] == '"') {
                const std::int64_t opened = line;
                ++i;
                while (true) {
                    if (i >= n) fail("read_csv: ", file, ": the quoted field opened on line ", opened, " is never closed");
                    if (text[i] == '"') {
                        if (i + 1 < n && text[i + 1] == '"') field += '"', i += 2;
                        else { ++i; break; }
                    } else {
                        if (text[i] == '\n') ++line;
                        field += text[i++];
                    }
                }
                if (i < n && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n'))
                    fail("read_csv: ", file, ": line ", line, ": expected ',' or the end of the line after a quoted "
                         "field, found '", text[i], "'");
            } else {
                while (i < n && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')) {
                    if (text[i] == '"')
                        fail("read_csv: ", file, ": line ", line, ": a quote inside an unquoted field (a field that "
                             "holds quotes must be quoted as a whole, its quotes doubled)");
                    field += text[i++];
                }
            }
            record.fields.push_back(std::move(field));
            if (i < n && text[i] == ',') {
                ++i;
                continue;
            }
            if (i < n) i += text[i] == '\r' ? 2 : 1;  // the record's line break
            ++line;
            break;
        }
        records.push_back(std::move(record));
    }
    return records;
}

// All records of the CSV file `path` (header included), read as text (read_text_file:
// a regular file of bounded size; binary content is refused naming the file and line).
inline std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& path) {
    std::vector<std::vector<std::string>> rows;
    for (CsvRecord& r : parse_csv(read_text_file(path, "read_csv"), path.string())) rows.push_back(std::move(r.fields));
    return rows;
}

// A CSV file with a header row, its columns found by name. Every row has the header's
// number of fields.
struct CsvTable {
    std::filesystem::path path;
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
    std::vector<std::int64_t> lines;  // the line each row starts on

    static CsvTable read(const std::filesystem::path& path) {
        std::vector<CsvRecord> records = parse_csv(read_text_file(path, "read_csv"), path.string());
        if (records.empty()) fail("read_csv: ", path.string(), ": empty file (expected a header row)");
        CsvTable t{path, std::move(records.front().fields), {}, {}};
        for (std::size_t r = 1; r < records.size(); ++r) {
            if (records[r].fields.size() != t.header.size())
                fail("read_csv: ", path.string(), ": line ", records[r].line, " has ", records[r].fields.size(),
                     " fields, the header ", t.header.size());
            t.rows.push_back(std::move(records[r].fields));
            t.lines.push_back(records[r].line);
        }
        return t;
    }
    bool has(const std::string& name) const { return std::find(header.begin(), header.end(), name) != header.end(); }
    std::size_t column(const std::string& name) const {
        const auto it = std::find(header.begin(), header.end(), name);
        if (it == header.end()) fail("read_csv: ", path.string(), ": no column '", name, "'");
        return std::size_t(it - header.begin());
    }
    // The column's values as numbers (nan, inf and -inf included).
    std::vector<double> numbers(const std::string& name) const {
        const std::size_t c = column(name);
        std::vector<double> v;
        for (std::size_t r = 0; r < rows.size(); ++r) {
            const std::string& cell = rows[r][c];
            char* end = nullptr;
            const double x = std::strtod(cell.c_str(), &end);
            if (cell.empty() || *end != '\0')
                fail("read_csv: ", path.string(), ": column '", name, "', line ", lines[r], ": expected a number, found '",
                     cell, "'");
            v.push_back(x);
        }
        return v;
    }
};

}  // namespace ewe::io
