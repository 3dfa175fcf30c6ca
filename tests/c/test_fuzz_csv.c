/* test_fuzz_csv.c: the libFuzzer target tests/fuzz/fuzz_csv.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/csv/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_csv.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("csv", 5); }
