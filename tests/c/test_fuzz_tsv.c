/* test_fuzz_tsv.c: the libFuzzer target tests/fuzz/fuzz_tsv.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/tsv/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_tsv.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("tsv", 10); }
