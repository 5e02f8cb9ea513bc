/* Handles that outlive their object: see tg__retire in tensor_impl.h. */
#include <pthread.h>
#include <stdlib.h>

#include "tensor_impl.h"

static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static void **retired; /* reachable for ever, so leak checkers see no leak */
static size_t n_retired, cap_retired;

void tg__retire(void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&retired_lock);
    if (n_retired == cap_retired) {
        size_t cap = cap_retired ? cap_retired * 2 : 64;
        void **r = realloc(retired, cap * sizeof *r);
        if (r) {
            retired = r;
            cap_retired = cap;
        }
    }
    if (n_retired < cap_retired)
        retired[n_retired++] = p;
    /* else out of memory: the struct is still never freed, only unlisted */
    pthread_mutex_unlock(&retired_lock);
}
