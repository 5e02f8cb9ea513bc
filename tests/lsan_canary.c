/* A program that leaks on purpose: make test-asan runs it as the test lsan_canary, which
 * passes only when LeakSanitizer reports the leak, so a suite that passes there is known
 * to have been checked for leaks (a sanitizer build where leak checking is off, or does
 * not work, fails this test instead of passing everything silently). */
#include <stdio.h>
#include <stdlib.h>

#include <tapegrad.h>

static void *volatile keep;

int main(void)
{
    keep = tg_rng_new(42); /* a library allocation, never freed */
    keep = NULL;
    keep = malloc(64);
    keep = NULL;
    puts("leaked a generator and 64 bytes");
    return 0;
}
