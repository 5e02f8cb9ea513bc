/* Files. Written atomically, by every writer of tapegrad (checkpoints, and through
 * tg_write_file the command's history and plot): a temporary file beside the target,
 * written, flushed, renamed over it, then the folder flushed; a failure or a kill at any
 * point leaves the old file or the new one, whole. Opened for reading data only when they
 * can end: regular files, pipes and FIFOs, never devices. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_impl.h"

#define MAX_LINKS 40 /* the kernel's limit on a chain of symbolic links (ELOOP) */

bool tg__write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* A symbolic link's target, relative to the link's folder when it is relative. */
static char *link_target(const char *link)
{
    size_t cap = 256;
    for (;;) {
        char *t = malloc(cap);
        ssize_t n = t ? readlink(link, t, cap) : -1;
        if (n >= 0 && (size_t)n < cap) {
            t[n] = 0;
            const char *slash = strrchr(link, '/');
            if (t[0] == '/' || !slash)
                return t;
            size_t dir = (size_t)(slash - link) + 1;
            char *joined = malloc(dir + (size_t)n + 1);
            if (joined) {
                memcpy(joined, link, dir);
                memcpy(joined + dir, t, (size_t)n + 1);
            }
            free(t);
            return joined;
        }
        free(t);
        if (n < 0 || cap > (1u << 20))
            return NULL;
        cap *= 2;
    }
}

/* The file a write to `path` replaces: path itself or, for a symbolic link, the end of
 * its chain (renaming over the link would replace the link). *exists tells whether that
 * file exists (its status in *st). NULL with errno on failure. */
static char *resolve(const char *path, struct stat *st, bool *exists)
{
    char *cur = strdup(path);
    for (int hops = 0; cur; hops++) {
        if (lstat(cur, st) != 0) {
            *exists = false;
            if (errno == ENOENT)
                return cur;
            break;
        }
        *exists = true;
        if (!S_ISLNK(st->st_mode))
            return cur;
        char *next = hops < MAX_LINKS ? link_target(cur) : (errno = ELOOP, NULL);
        free(cur);
        cur = next;
    }
    int err = errno;
    free(cur);
    errno = err;
    return NULL;
}

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m)                 ? "a folder"
           : S_ISFIFO(m)              ? "a FIFO (named pipe)"
           : S_ISSOCK(m)              ? "a socket"
           : S_ISCHR(m) || S_ISBLK(m) ? "a device"
                                      : "not a regular file";
}

/* The mode a new file gets: the old file's, or 0666 less the umask (read without
 * changing it, which umask() cannot do). */
static mode_t file_mode(const struct stat *old, bool exists)
{
    if (exists)
        return old->st_mode & 07777;
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[128];
        unsigned m;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &m) == 1)
                mask = (mode_t)m;
        fclose(f);
    }
    return 0666 & ~mask;
}

/* `dir` has room for path: no allocation can fail once the file is in place. */
static void sync_folder(tg_loc loc, const char *func, const char *path, char *dir)
{
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        tg__warn(loc, "%s: '%s' was saved, but flushing its folder failed (%s): a crash now could lose the rename",
                 func, path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Writes the temporary file `tmp` (a mkostemp template beside `target`) and renames it
 * over target. Returns the failing step, or NULL; errno holds the reason. */
static const char *write_and_rename(char *tmp, const char *target, mode_t mode, tg__fill_fn fill, void *ctx)
{
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return "creating";
    const char *step = NULL;
    if (fchmod(fd, mode) != 0)
        step = "setting the mode of";
    else if (!fill(fd, ctx))
        step = "writing";
    else if (fsync(fd) != 0)
        step = "flushing";
    int err = errno;
    if (close(fd) != 0 && !step) {
        step = "closing";
        err = errno;
    }
    if (!step && rename(tmp, target) != 0) {
        step = "renaming";
        err = errno;
    }
    if (step)
        unlink(tmp);
    errno = err;
    return step;
}

int tg__write_atomic(tg_loc loc, const char *func, const char *path, tg__fill_fn fill, void *ctx)
{
    if (!path || !*path)
        return tg__failf(loc, "%s: the file name is %s: give the file to write", func, path ? "empty" : "NULL");
    struct stat st;
    bool exists = false;
    char *target = resolve(path, &st, &exists);
    if (!target)
        return tg__failf(loc, "%s: cannot save '%s': %s; nothing was written", func, path,
                         errno == ENOMEM ? "out of memory" : strerror(errno));
    if (exists && !S_ISREG(st.st_mode)) {
        tg__fail(loc,
                 "%s: cannot save '%s': it exists and is %s, which tapegrad does not replace; nothing was "
                 "written (give the name of a regular file)",
                 func, path, kind_of(st.st_mode));
        free(target);
        return -1;
    }
    char *tmp = malloc(strlen(target) + 16);
    if (!tmp) {
        free(target);
        return tg__failf(loc, "%s: out of memory", func);
    }
    sprintf(tmp, "%s.tmpXXXXXX", target);
    const char *step = write_and_rename(tmp, target, file_mode(&st, exists), fill, ctx);
    int err = errno;
    if (step && !strcmp(step, "creating"))
        tg__fail(loc, "%s: cannot create a temporary file beside '%s': %s; nothing was written", func, target,
                 strerror(err));
    else if (step)
        tg__fail(loc, "%s: cannot save '%s': %s while %s the temporary file '%s'; any previous file is unchanged", func,
                 path, strerror(err), step, tmp);
    else
        sync_folder(loc, func, target, tmp);
    free(tmp);
    free(target);
    return step ? -1 : 0;
}

typedef struct {
    const void *data;
    size_t size;
} bytes;

static bool fill_bytes(int fd, void *ctx)
{
    const bytes *b = ctx;
    return tg__write_all(fd, b->data, b->size);
}

int tg_write_file_at(tg_loc loc, const char *path, const void *data, size_t size)
{
    if (!data && size)
        return tg__failf(loc, "tg_write_file: `data` is NULL");
    bytes b = {data, size};
    return tg__write_atomic(loc, "tg_write_file", path, fill_bytes, &b);
}

/* ---- reading ------------------------------------------------------------------------------ */
static bool readable_kind(tg_loc loc, const char *func, const char *path, mode_t m)
{
    if (S_ISREG(m) || S_ISFIFO(m) || S_ISSOCK(m))
        return true;
    return tg__failb(loc,
                     "%s: cannot read '%s': it is %s, not a file of data (tapegrad reads regular files, "
                     "pipes and FIFOs)",
                     func, path, kind_of(m));
}

FILE *tg__open_data(tg_loc loc, const char *func, const char *path)
{
    struct stat st;
    /* Looked at before opening: opening some devices has effects (a tape rewinds). */
    if (stat(path, &st) == 0 && !readable_kind(loc, func, path, st.st_mode))
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg__fail(loc, "%s: cannot open '%s': %s", func, path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !readable_kind(loc, func, path, st.st_mode)) {
        fclose(f);
        return NULL;
    }
    return f;
}
