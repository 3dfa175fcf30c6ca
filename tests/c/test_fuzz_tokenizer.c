/* test_fuzz_tokenizer.c: the libFuzzer target tests/fuzz/fuzz_tokenizer.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/tokenizer/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_tokenizer.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("tokenizer", 8); }
