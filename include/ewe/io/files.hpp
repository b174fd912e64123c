// What is really at a path, checked before it is opened: require_file (a regular
// file: not missing, not a folder, never a FIFO or a device, which could block or
// read without end), require_folder (not missing, not a file), create_folder (made
// unless it exists, never over a file) and read_text_file, which reads a whole text
// file of bounded size. Each error names `who` (the caller's
// argument, e.g. "read_csv" or a program's flag), the path, and what is there instead.
// files_named lists the files of a folder by the start and end of their names.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "ewe/core/error.hpp"

namespace ewe::io {

// What a path holds, in words: "a folder", "a FIFO", "a character device", ...
inline const char* describe_file_type(std::filesystem::file_type type) {
    using std::filesystem::file_type;
    switch (type) {
        case file_type::regular: return "a regular file";
        case file_type::directory: return "a folder";
        case file_type::block: return "a block device";
        case file_type::character: return "a character device";
        case file_type::fifo: return "a FIFO (named pipe)";
        case file_type::socket: return "a socket";
        case file_type::not_found: return "nothing (no such file or folder)";
        default: return "something of unknown type";
    }
}

// Throws unless `path` is a regular file (symbolic links followed); returns its size.
inline std::uintmax_t require_file(const std::filesystem::path& path, const std::string& who) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (status.type() == std::filesystem::file_type::not_found)
        fail(who, ": ", path.string(), " does not exist (expected a file)");
    if (ec) fail(who, ": cannot inspect ", path.string(), ": ", ec.message());
    if (status.type() != std::filesystem::file_type::regular)
        fail(who, ": ", path.string(), " is ", describe_file_type(status.type()), ", expected a regular file");
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail(who, ": cannot read the size of ", path.string(), ": ", ec.message());
    return size;
}

// Throws unless `path` is a folder (symbolic links followed).
inline void require_folder(const std::filesystem::path& path, const std::string& who) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (status.type() == std::filesystem::file_type::not_found)
        fail(who, ": ", path.string(), " does not exist (expected a folder)");
    if (ec) fail(who, ": cannot inspect ", path.string(), ": ", ec.message());
    if (status.type() != std::filesystem::file_type::directory)
        fail(who, ": ", path.string(), " is ", describe_file_type(status.type()), ", expected a folder");
}

// Makes the folder `path` (and its parents) unless it exists; a file or anything else
// already at `path`, or at one of its parents, is an error saying what is there.
inline void create_folder(const std::filesystem::path& path, const std::string& who) {
    for (std::filesystem::path p = path; !p.empty(); p = p.parent_path()) {
        std::error_code ec;
        const auto type = std::filesystem::status(p, ec).type();
        if (type == std::filesystem::file_type::not_found) {
            if (p == p.parent_path()) break;
            continue;
        }
        if (type != std::filesystem::file_type::directory)
            fail(who, ": cannot make the folder ", path.string(), ": ", p.string(), " is ", describe_file_type(type),
                 ", expected a folder");
        break;
    }
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) fail(who, ": cannot make the folder ", path.string(), ": ", ec.message());
}

// The largest text file (configurations, CSV tables) read_text_file accepts by default.
inline constexpr std::uintmax_t kMaxTextFileBytes = std::uintmax_t(1) << 30;

// The whole content of the regular file `path`, refused (naming `who`) beyond
// `max_bytes` or when it holds binary content: a NUL byte or another control
// character than tab, line feed, carriage return, form feed or vertical tab.
inline std::string read_text_file(const std::filesystem::path& path, const std::string& who,
                                  std::uintmax_t max_bytes = kMaxTextFileBytes) {
    const std::uintmax_t size = require_file(path, who);
    if (size > max_bytes)
        fail(who, ": ", path.string(), " holds ", size, " bytes, more than the ", max_bytes,
             " a text file may have here");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(who, ": cannot open ", path.string());
    std::string text(static_cast<std::size_t>(size), '\0');
    if (size > 0 && !in.read(text.data(), static_cast<std::streamsize>(size)))
        fail(who, ": could not read ", size, " bytes from ", path.string());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') || c == 0x7f) {
            const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(i), '\n');
            char byte[8];
            std::snprintf(byte, sizeof byte, "0x%02x", c);
            fail(who, ": ", path.string(), " is not text: byte ", byte, " at line ", line, " (offset ", i, ")");
        }
    }
    return text;
}

// The entries of `folder` (whatever they are: a caller that opens them checks, e.g. with
// require_file, and says what is there instead) whose names start with `prefix` and end
// with one of `suffixes` (a name no longer than prefix and suffix together does not
// count), sorted; none when the folder is missing.
inline std::vector<std::filesystem::path> files_named(const std::filesystem::path& folder, const std::string& prefix,
                                                      const std::vector<std::string>& suffixes) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.starts_with(prefix)) continue;
        if (std::any_of(suffixes.begin(), suffixes.end(), [&](const std::string& s) {
                return name.size() > prefix.size() + s.size() && name.ends_with(s);
            }))
            files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace ewe::io
