/* test_fuzz_results.c: the libFuzzer target tests/fuzz/fuzz_results.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/results/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_results.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("results", 10); }
