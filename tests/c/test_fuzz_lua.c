/* test_fuzz_lua.c: the libFuzzer target tests/fuzz/fuzz_lua.c run inside the
   normal test suite: its whole seed corpus and every saved finding
   (tests/fuzz/regressions/lua/), then truncations of its hand-made seeds
   (see fuzz_replay.h). */
#include "../fuzz/fuzz_lua.c"
#include "fuzz_replay.h"

int main(void) { return fuzz_replay_main("lua", 6); }
