/* test_fuzz_lora.c: the libFuzzer target tests/fuzz/fuzz_lora.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/lora/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_lora.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("lora", 5); }
