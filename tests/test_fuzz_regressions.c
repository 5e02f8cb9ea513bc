/* Replays the fuzz targets' seed corpora (fuzz/corpus/<target>/) and every input a fuzzer
 * once crashed on (fuzz/regressions/<target>-<what>) through the same entry points
 * (fuzz/targets.c), in the normal test build: each must be read or refused with a message,
 * without a crash (and without a leak or a bad access under make test-asan). */
#include <dirent.h>
#include <stdlib.h>

#include "../fuzz/targets.h"
#include "check.h"

#ifndef TG_FUZZ_DIR
#error "CMake defines TG_FUZZ_DIR, the fuzz/ folder of the sources"
#endif

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0)
        if ((len += r) == cap) {
            unsigned char *p = realloc(buf, cap *= 2);
            if (!p)
                free(buf);
            buf = p;
        }
    fclose(f);
    *n = len;
    return buf;
}

/* Runs every file of `folder` whose name starts with `prefix` through fn; the count run. */
static int replay(const char *folder, const char *prefix, const tg_fuzz_target *t)
{
    DIR *d = opendir(folder);
    if (!d)
        return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
        size_t n = 0;
        unsigned char *data = slurp(path, &n);
        CHECK(data != NULL);
        if (!data)
            continue;
        int rc = t->fn(data, n);
        if (rc != 0)
            printf("  %s: target %s broke a promise\n", path, t->name);
        CHECK(rc == 0);
        free(data);
        count++;
    }
    closedir(d);
    return count;
}

static void seed_corpora(void)
{
    for (const tg_fuzz_target *t = tg_fuzz_targets; t->name; t++) {
        char folder[512];
        snprintf(folder, sizeof folder, "%s/corpus/%s", TG_FUZZ_DIR, t->name);
        long rejected = tg_fuzz_rejected;
        int n = replay(folder, "", t);
        if (n < 5)
            printf("  %s: only %d seeds\n", folder, n);
        CHECK(n >= 5);
        /* Every corpus holds files that read and files that are refused. */
        CHECK(tg_fuzz_rejected > rejected && tg_fuzz_rejected - rejected < n);
    }
}

static void regressions(void)
{
    char folder[512], prefix[64];
    snprintf(folder, sizeof folder, "%s/regressions", TG_FUZZ_DIR);
    int total = 0;
    for (const tg_fuzz_target *t = tg_fuzz_targets; t->name; t++) {
        snprintf(prefix, sizeof prefix, "%s-", t->name);
        total += replay(folder, prefix, t);
    }
    /* Every file belongs to a target: a misnamed one would silently not be replayed. */
    DIR *d = opendir(folder);
    int files = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        files += e->d_name[0] != '.' && strcmp(e->d_name, "README.md") != 0;
    if (d)
        closedir(d);
    CHECK(files == total);
}

int main(void)
{
    RUN(seed_corpora);
    RUN(regressions);
    printf("%ld inputs, %ld refused with a message\n", tg_fuzz_runs, tg_fuzz_rejected);
    printf("opgraph: %ld derivatives matched finite differences, %ld points skipped as not smooth\n",
           tg_fuzz_opgraph_checked, tg_fuzz_opgraph_skipped);
    return TEST_SUMMARY();
}
