/* test_fuzz_npy.c: the libFuzzer target tests/fuzz/fuzz_npy.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/npy/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_npy.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("npy", 20); }
