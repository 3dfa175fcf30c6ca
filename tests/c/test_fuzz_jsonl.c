/* test_fuzz_jsonl.c: the libFuzzer target tests/fuzz/fuzz_jsonl.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/jsonl/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_jsonl.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("jsonl", 5); }
