/* fuzz_lines.c: libFuzzer target for lacos_pairset_read_lines (engine/datasets.c);
   input layout, invariants and replay: see fuzz_datasets.h. */
#define FUZZ_READER READ_LINES
#include "fuzz_datasets.h"
