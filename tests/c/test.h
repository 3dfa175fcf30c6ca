/* test.h: the C test harness. Each test is a function; RUN() prints one
   TAP-style line per test ("ok - name" / "not ok - name") and the checks
   print "#" diagnostics under it. tests/run.sh counts the lines. */
#ifndef LACOS_TEST_H
#define LACOS_TEST_H
#include "engine.h"
#include <math.h>
#include <unistd.h>

static int test_failed_now, test_failures;
static inline int test_has_text(const char *hay, const char *needle) { return !needle || strstr(hay, needle); }

#define CHECK(cond) do { if (!(cond)) { \
  printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); test_failed_now = 1; } } while (0)
#define CHECK_OK(expr) do { int st_ = (expr); if (st_ != LACOS_OK) { \
  printf("#   %s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #expr, st_, lacos_last_error()); test_failed_now = 1; } } while (0)
#define CHECK_FAIL(expr, status, needle) do { int st_ = (expr); \
  if (st_ != (status)) { printf("#   %s:%d: %s returned %d, expected %d (%s)\n", __FILE__, __LINE__, #expr, st_, (status), lacos_last_error()); test_failed_now = 1; } \
  else if (!test_has_text(lacos_last_error(), (needle))) { \
    printf("#   %s:%d: error message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, lacos_last_error(), (const char *)(needle)); test_failed_now = 1; } } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); if (!(fabs(a_ - b_) <= (tol))) { \
  printf("#   %s:%d: %s = %.9g, expected %.9g (tolerance %g)\n", __FILE__, __LINE__, #a, a_, b_, (double)(tol)); test_failed_now = 1; } } while (0)

static void run_test(const char *name, void (*fn)(void)) {
  test_failed_now = 0;
  lacos_error_clear();
  fn();
  printf("%s - %s\n", test_failed_now ? "not ok" : "ok", name);
  fflush(stdout);
  if (test_failed_now) test_failures++;
}
#define RUN(fn) run_test(#fn, fn)
#define SKIP(name, reason) printf("ok - %s # SKIP %s\n", name, reason)
#define TEST_EXIT() return test_failures ? 1 : 0

/* A scratch directory for this test program (removed by the runner). */
static inline const char *test_tmpdir(void) {
  const char *d = getenv("LACOS_TEST_TMP");
  return d ? d : "/tmp";
}
#endif
