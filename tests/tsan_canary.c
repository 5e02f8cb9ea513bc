/* A program with a data race on purpose: make test-tsan runs it as the test tsan_canary,
 * which passes only when ThreadSanitizer reports the race, so a suite that passes there
 * is known to have been checked for races (a build where the checker is off fails this
 * test instead of passing everything silently). */
#include <pthread.h>
#include <stdio.h>

static int shared; /* written by two threads with no synchronisation */

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        shared++;
    return NULL;
}

int main(void)
{
    pthread_t a, b;
    if (pthread_create(&a, NULL, bump, NULL) || pthread_create(&b, NULL, bump, NULL))
        return 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("raced to %d\n", shared);
    return 0;
}
