/* A temporary folder for a test program, and files in it. */
#ifndef TG_TEST_TMPFILES_H
#define TG_TEST_TMPFILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

/* Makes /tmp/<prefix>-XXXXXX; false when it cannot. */
static inline bool make_tmpdir(const char *prefix)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s-XXXXXX", prefix);
    return mkdtemp(tmpdir) != NULL;
}

/* A path in the temporary folder (a few rotating buffers, so several can be live at once). */
static inline const char *at(const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

static inline const char *write_file(const char *name, const void *data, size_t n)
{
    const char *p = at(name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n)
        printf("  cannot write %s\n", p);
    if (f)
        fclose(f);
    return p;
}

/* A folder and everything in it (remove() deletes files and empty folders). */
static inline void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[1024];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
            continue;
        if (remove(sub) != 0)
            remove_tree(sub);
    }
    if (d)
        closedir(d);
    remove(path);
}

static inline void remove_tmpdir(void)
{
    if (tmpdir[0])
        remove_tree(tmpdir);
}

#endif
