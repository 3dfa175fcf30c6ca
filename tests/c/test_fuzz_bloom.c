/* test_fuzz_bloom.c: the libFuzzer target tests/fuzz/fuzz_bloom.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/bloom/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_bloom.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("bloom", 10); }
