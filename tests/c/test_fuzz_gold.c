/* test_fuzz_gold.c: the libFuzzer target tests/fuzz/fuzz_gold.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/gold/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_gold.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("gold", 6); }
