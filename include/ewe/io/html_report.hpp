// A self-contained HTML report: one file with a title, a table of contents, sections of
// paragraphs, tables and figures, that opens from disk with no network and no script.
// Text is HTML-escaped; figures are inline SVG markup made by the program (trusted,
// e.g. SvgPlot::str()) or images embedded as base64 data: URIs (RFC 2397, RFC 4648),
// which is how SVG and PNG files read from disk go in: inside an <img> an SVG cannot
// run scripts or reach the page. write() replaces the file atomically.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/atomic_file.hpp"
#include "ewe/io/files.hpp"

namespace ewe::io {

// `v` printed with the printf `format` (one double conversion, e.g. "%.4g"): the numbers
// a report quotes in its text and tables (messages use ewe::format_number).
inline std::string report_number(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

// `s` with & < > " ' replaced by character references: safe as element text and as a
// quoted attribute value.
inline std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

// Base64 with the standard alphabet and '=' padding (RFC 4648 section 4).
inline std::string base64(std::string_view bytes) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 3; ++k) v = v << 8 | (k < n ? std::uint8_t(bytes[i + k]) : 0u);
        for (std::size_t k = 0; k < 4; ++k) out += k <= n ? alphabet[(v >> (18 - 6 * k)) & 63] : '=';
    }
    return out;
}

// A data: URI of `bytes` with media type `mime` (e.g. "image/png").
inline std::string data_uri(std::string_view mime, std::string_view bytes) {
    return "data:" + std::string(mime) + ";base64," + base64(bytes);
}

// The whole file as bytes; `what` names it in the error.
inline std::string read_file_bytes(const std::filesystem::path& path, std::string_view what) {
    const std::uintmax_t size = require_file(path, std::string(what));
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(what, ": cannot read ", path.string());
    std::string bytes(static_cast<std::size_t>(size), '\0');
    if (size > 0 && !in.read(bytes.data(), static_cast<std::streamsize>(size)))
        fail(what, ": could not read ", size, " bytes from ", path.string());
    return bytes;
}

// The width and height in a PNG's IHDR chunk; an ewe::Error naming `what` when `bytes`
// do not start like a PNG file.
struct ImageSize {
    std::uint32_t width = 0, height = 0;
};
inline ImageSize png_size(std::string_view bytes, std::string_view what) {
    static constexpr char signature[] = "\x89PNG\r\n\x1a\n";
    if (bytes.size() < 24 || bytes.substr(0, 8) != std::string_view(signature, 8) || bytes.substr(12, 4) != "IHDR")
        fail(what, ": not a PNG file (no PNG signature and IHDR chunk)");
    const auto be32 = [&](std::size_t at) {
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) v = v << 8 | std::uint8_t(bytes[at + k]);
        return v;
    };
    const ImageSize size{be32(16), be32(20)};
    if (size.width == 0 || size.height == 0) fail(what, ": PNG of size ", size.width, "x", size.height);
    return size;
}

class HtmlReport {
public:
    explicit HtmlReport(std::string title) : title_(std::move(title)) {}

    // Starts a section (<h2>, listed in the table of contents).
    HtmlReport& section(const std::string& heading) {
        close_figures();
        if (!sections_.empty()) body_ += "</section>\n";
        sections_.push_back(heading);
        body_ += "<section id=\"s" + std::to_string(sections_.size()) + "\">\n<h2>" + html_escape(heading) + "</h2>\n";
        return *this;
    }
    HtmlReport& paragraph(const std::string& text) {
        close_figures();
        body_ += "<p>" + html_escape(text) + "</p>\n";
        return *this;
    }
    // A paragraph set apart: what is missing and how to produce it.
    HtmlReport& note(const std::string& text) {
        close_figures();
        body_ += "<p class=\"missing\">" + html_escape(text) + "</p>\n";
        return *this;
    }
    // A table with a header row; rows listed in `highlight` (indices into `rows`) are
    // marked. Long tables scroll inside a box of about `max_height_px` (0: no limit).
    HtmlReport& table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                      const std::vector<std::size_t>& highlight = {}, int max_height_px = 0) {
        close_figures();
        body_ += max_height_px > 0 ? "<div class=\"scroll\" style=\"max-height:" + std::to_string(max_height_px) + "px\">"
                                   : std::string("<div>");
        body_ += "<table>\n<thead><tr>";
        for (const std::string& h : header) body_ += "<th>" + html_escape(h) + "</th>";
        body_ += "</tr></thead>\n<tbody>\n";
        for (std::size_t r = 0; r < rows.size(); ++r) {
            const bool marked = std::find(highlight.begin(), highlight.end(), r) != highlight.end();
            body_ += marked ? "<tr class=\"marked\">" : "<tr>";
            for (const std::string& cell : rows[r]) body_ += "<td>" + html_escape(cell) + "</td>";
            body_ += "</tr>\n";
        }
        body_ += "</tbody></table></div>\n";
        return *this;
    }
    // A figure of SVG markup made by the program itself (not read from an untrusted
    // file: the markup goes into the page as it is).
    HtmlReport& inline_svg(const std::string& svg, const std::string& caption) {
        EWE_REQUIRE(svg.find("<svg") != std::string::npos, "HtmlReport::inline_svg: the markup has no <svg> element");
        return figure(svg, caption);
    }
    // A figure of a PNG image given as bytes; `what` names their origin in errors.
    HtmlReport& png(std::string_view bytes, const std::string& caption, std::string_view what) {
        const ImageSize size = png_size(bytes, what);
        return figure("<img class=\"pixels\" src=\"" + data_uri("image/png", bytes) + "\" width=\"" +
                          std::to_string(size.width) + "\" height=\"" + std::to_string(size.height) + "\" alt=\"" +
                          html_escape(caption) + "\">",
                      caption);
    }
    // A figure of an SVG document given as bytes, embedded as an image.
    HtmlReport& svg_image(std::string_view bytes, const std::string& caption, std::string_view what) {
        if (bytes.find("<svg") == std::string_view::npos) fail(what, ": not an SVG file (no <svg> element)");
        return figure("<img class=\"plot\" src=\"" + data_uri("image/svg+xml", bytes) + "\" alt=\"" + html_escape(caption) + "\">",
                      caption);
    }
    // A PNG or SVG file (by its extension) as a figure.
    HtmlReport& image_file(const std::filesystem::path& path, const std::string& caption) {
        const std::string bytes = read_file_bytes(path, "HtmlReport");
        const std::string ext = path.extension().string();
        if (ext == ".png") return png(bytes, caption, path.string());
        if (ext == ".svg") return svg_image(bytes, caption, path.string());
        fail("HtmlReport::image_file: ", path.string(), ": expected a .png or .svg file");
    }

    // The figure `dir/name` when that file exists, else a note naming it and what writes
    // it: "No DIR/NAME (written by PRODUCED_BY)."
    HtmlReport& image_file_or_note(const std::filesystem::path& dir, const std::string& name, const std::string& caption,
                                   const std::string& produced_by) {
        if (std::filesystem::is_regular_file(dir / name)) return image_file(dir / name, caption);
        return note("No " + (dir / name).string() + " (written by " + produced_by + ").");
    }

    std::string str() const {
        std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                          html_escape(title_) + "</title>\n<style>\n" + style() + "</style>\n</head>\n<body>\n<h1>" +
                          html_escape(title_) + "</h1>\n";
        if (!sections_.empty()) {
            out += "<nav><ol>\n";
            for (std::size_t i = 0; i < sections_.size(); ++i)
                out += "<li><a href=\"#s" + std::to_string(i + 1) + "\">" + html_escape(sections_[i]) + "</a></li>\n";
            out += "</ol></nav>\n";
        }
        out += body_;
        if (in_figures_) out += "</div>\n";
        if (!sections_.empty()) out += "</section>\n";
        return out + "</body>\n</html>\n";
    }

    // Writes the page to `path` atomically; errors start with `what`.
    void write(const std::filesystem::path& path, std::string_view what = "HtmlReport::write") const {
        const std::string page = str();
        write_file_atomically(path, what, [&](std::ostream& out) { out.write(page.data(), std::streamsize(page.size())); });
    }

private:
    // Consecutive figures share one wrapping row.
    HtmlReport& figure(const std::string& content, const std::string& caption) {
        if (!in_figures_) body_ += "<div class=\"figures\">\n", in_figures_ = true;
        body_ += "<figure>" + content + "<figcaption>" + html_escape(caption) + "</figcaption></figure>\n";
        return *this;
    }
    void close_figures() {
        if (in_figures_) body_ += "</div>\n", in_figures_ = false;
    }
    static const char* style() {
        return "body{font-family:sans-serif;max-width:1280px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\n"
               "h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\n"
               "nav ol{columns:2}\n"
               ".figures{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}\n"
               "figure{margin:0}figcaption{font-size:.85em;color:#555;max-width:640px}\n"
               "figure img,figure svg{display:block;max-width:100%;height:auto}\n"
               "img.pixels{image-rendering:pixelated}img.plot{width:600px}\n"
               "table{border-collapse:collapse;font-size:.9em;margin:.5em 0}\n"
               "th,td{border:1px solid #ddd;padding:.2em .6em;text-align:right}th{background:#f4f4f4;position:sticky;top:0}\n"
               "td:first-child,th:first-child{text-align:left}\n"
               "tr.marked td{background:#fff3c4;font-weight:bold}\n"
               ".scroll{overflow-y:auto;display:inline-block;border:1px solid #ddd}\n"
               ".missing{background:#f6f6f6;border-left:4px solid #bbb;padding:.4em .8em;color:#555}\n";
    }

    std::string title_, body_;
    std::vector<std::string> sections_;
    bool in_figures_ = false;
};

}  // namespace ewe::io
