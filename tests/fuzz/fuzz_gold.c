/* fuzz_gold.c: libFuzzer target for lacos_pairset_read_gold (engine/datasets.c);
   input layout, invariants and replay: see fuzz_datasets.h. */
#define FUZZ_READER READ_GOLD
#include "fuzz_datasets.h"
