/* fuzz_csv.c: libFuzzer target for lacos_pairset_read_csv (engine/datasets.c);
   input layout, invariants and replay: see fuzz_datasets.h. */
#define FUZZ_READER READ_CSV
#include "fuzz_datasets.h"
