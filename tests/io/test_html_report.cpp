// ewe::io::HtmlReport and its helpers (ewe/io/html_report.hpp): escaping, base64 against
// RFC 4648's test vectors, PNG sizes, a page's structure (table of contents, sections,
// tables, figures), that every text from outside is escaped and every image is a data:
// URI, atomic writes and their errors; and svg_bar_chart (ewe/io/svg.hpp).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ewe/io/html_report.hpp>
#include <ewe/io/png.hpp>
#include <ewe/io/svg.hpp>

namespace fs = std::filesystem;
using namespace ewe::io;

namespace {

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
}

std::string tiny_png(int w, int h) {
    std::vector<std::uint8_t> pixels(std::size_t(w * h), 128);
    const std::vector<std::uint8_t> png = encode_png(w, h, 1, pixels.data());
    return std::string(png.begin(), png.end());
}

}  // namespace

TEST_CASE("html_escape replaces the five special characters and nothing else") {
    CHECK(html_escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#39;");
    CHECK(html_escape("plain text ± é") == "plain text ± é");
    CHECK(html_escape("") == "");
}

TEST_CASE("base64 matches RFC 4648's test vectors, and binary bytes") {
    CHECK(base64("") == "");
    CHECK(base64("f") == "Zg==");
    CHECK(base64("fo") == "Zm8=");
    CHECK(base64("foo") == "Zm9v");
    CHECK(base64("foob") == "Zm9vYg==");
    CHECK(base64("fooba") == "Zm9vYmE=");
    CHECK(base64("foobar") == "Zm9vYmFy");
    CHECK(base64(std::string("\xff\xfe\x00\x80", 4)) == "//4AgA==");
    CHECK(data_uri("image/png", "foo") == "data:image/png;base64,Zm9v");
}

TEST_CASE("png_size reads the IHDR of a PNG and refuses other bytes, naming them") {
    const ImageSize s = png_size(tiny_png(7, 3), "x");
    CHECK(s.width == 7);
    CHECK(s.height == 3);
    CHECK_THROWS_WITH(png_size("GIF89a....................", "--generate g.gif"),
                      doctest::Contains("--generate g.gif: not a PNG file"));
    std::string truncated = tiny_png(2, 2).substr(0, 20);
    CHECK_THROWS_WITH(png_size(truncated, "t.png"), doctest::Contains("t.png: not a PNG file"));
}

TEST_CASE("a page: table of contents, sections, escaped text, tables, figures as data: URIs") {
    HtmlReport page("Title <&>");
    page.section("First & best").paragraph("x < y").note("missing: <run it>");
    page.table({"a<", "b"}, {{"1", "<i>2</i>"}, {"3", "4"}}, {1}, 200);
    page.section("Figures");
    page.png(tiny_png(5, 4), "png \"caption\"", "tiny");
    page.svg_image("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><script>alert(1)</script></svg>",
                   "svg caption", "s.svg");
    page.inline_svg("<svg width=\"5\" height=\"5\"></svg>", "inline");
    const std::string html = page.str();
    CHECK(html.starts_with("<!DOCTYPE html>"));
    CHECK(html.ends_with("</html>\n"));
    CHECK(count(html, "<title>Title &lt;&amp;&gt;</title>") == 1);
    CHECK(count(html, "<li><a href=\"#s1\">First &amp; best</a></li>") == 1);
    CHECK(count(html, "<li><a href=\"#s2\">Figures</a></li>") == 1);
    CHECK(count(html, "<section id=") == 2);
    CHECK(count(html, "</section>") == 2);
    CHECK(count(html, "<p>x &lt; y</p>") == 1);
    CHECK(count(html, "<p class=\"missing\">missing: &lt;run it&gt;</p>") == 1);
    CHECK(count(html, "<th>a&lt;</th>") == 1);
    CHECK(count(html, "<td>&lt;i&gt;2&lt;/i&gt;</td>") == 1);
    CHECK(count(html, "<tr class=\"marked\"><td>3</td>") == 1);
    CHECK(count(html, "max-height:200px") == 1);
    CHECK(count(html, "src=\"data:image/png;base64,iVBORw0KGgo") == 1);  // the PNG signature in base64
    CHECK(count(html, "width=\"5\" height=\"4\"") == 1);
    CHECK(count(html, "alt=\"png &quot;caption&quot;\"") == 1);
    // The SVG file goes in as an image: its script is inert base64, not markup.
    CHECK(count(html, "src=\"data:image/svg+xml;base64,") == 1);
    CHECK(count(html, "<script") == 0);
    CHECK(count(html, "<svg width=\"5\" height=\"5\"></svg>") == 1);
    CHECK(count(html, "<div class=\"figures\">") == 1);  // the three figures share one row
    CHECK(count(html, "<figure>") == 3);
}

TEST_CASE("figures refuse what they are not, naming the source") {
    HtmlReport page("t");
    CHECK_THROWS_WITH(page.png("not a png at all, but long enough", "c", "--generate x.png"),
                      doctest::Contains("--generate x.png: not a PNG file"));
    CHECK_THROWS_WITH(page.svg_image("<html></html>", "c", "a.svg"), doctest::Contains("a.svg: not an SVG file"));
    CHECK_THROWS_WITH(page.inline_svg("<p>", "c"), doctest::Contains("no <svg>"));
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_html_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "x.txt") << "hello";
    CHECK_THROWS_WITH(page.image_file(dir / "x.txt", "c"), doctest::Contains("expected a .png or .svg file"));
    CHECK_THROWS_WITH(page.image_file(dir / "none.png", "c"), doctest::Contains("does not exist"));
    fs::remove_all(dir);
}

TEST_CASE("write replaces the file atomically; an unwritable path is an error naming the caller's flag") {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_html_write_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    HtmlReport page("one");
    page.section("s").paragraph("first");
    page.write(dir / "r.html", "--out");
    HtmlReport again("two");
    again.paragraph("second");
    again.write(dir / "r.html", "--out");
    std::ifstream in(dir / "r.html");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text == again.str());
    CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);  // no temporary left
    CHECK_THROWS_WITH(page.write(dir / "no_such_folder" / "r.html", "--out"), doctest::Contains("--out: cannot create"));
    fs::remove_all(dir);
}

TEST_CASE("svg_bar_chart: one bar per finite value, labels escaped, n/a for the rest") {
    const std::string svg = svg_bar_chart("AUC <by run>", {"a", "b<c", "d"}, {0.5, 0.9, std::nan("")});
    CHECK(svg.starts_with("<svg"));
    CHECK(count(svg, "<rect") == 1 + 2);  // the background and two bars
    CHECK(count(svg, ">b&lt;c</text>") == 1);
    CHECK(count(svg, ">AUC &lt;by run&gt;</text>") == 1);
    CHECK(count(svg, ">0.9</text>") == 1);
    CHECK(count(svg, ">n/a</text>") == 1);
    CHECK_THROWS(svg_bar_chart("t", {"a"}, {1.0, 2.0}));
}
