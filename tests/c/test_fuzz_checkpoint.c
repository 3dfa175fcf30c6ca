/* test_fuzz_checkpoint.c: the libFuzzer target tests/fuzz/fuzz_checkpoint.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/checkpoint/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_checkpoint.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("checkpoint", 10); }
