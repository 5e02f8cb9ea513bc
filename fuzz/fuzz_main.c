/* The libFuzzer driver of one target, chosen at build time with -DTG_FUZZ_ENTRY=... */
#include <stdio.h>
#include <stdlib.h>

#include "targets.h"

static void report(void)
{
    fprintf(stderr, "tapegrad fuzz: %ld inputs, %ld refused with a message\n", tg_fuzz_runs, tg_fuzz_rejected);
    if (tg_fuzz_opgraph_checked || tg_fuzz_opgraph_skipped)
        fprintf(stderr, "tapegrad fuzz: %ld derivatives matched finite differences, %ld points skipped as not smooth\n",
                tg_fuzz_opgraph_checked, tg_fuzz_opgraph_skipped);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(report);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (TG_FUZZ_ENTRY(data, size) != 0)
        abort(); /* a broken promise: libFuzzer keeps the input as a crash */
    return 0;
}
