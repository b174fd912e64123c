// The main() of every area test program (tests_<area>, one per folder tests/<area>/):
// doctest's own runner, compiled once and linked into each. ctest runs one source file's
// cases per entry with --source-file (tests/CMakeLists.txt).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
// Named too: <doctest/doctest.h> comes precompiled, included before the line above, and
// only its implementation part (with main) is read again here.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
