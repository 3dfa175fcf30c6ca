/* test_fuzz_lines.c: the libFuzzer target tests/fuzz/fuzz_lines.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/lines/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_lines.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("lines", 4); }
