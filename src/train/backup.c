/* Keras's BackupAndRestore callback (keras/src/callbacks/backup_and_restore.py) on the
 * checkpoints of checkpoint.c: the backup is a model file with the optimizer's state and
 * the fit position, the file the command's --resume reads, and fit resumes from its
 * position (tg__fit_position.resume). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tensor/tensor_impl.h"
#include "train_impl.h"

typedef struct backup {
    tg_callback cb;
    char *dir, *path;
    int64_t save_freq, since_save;
    bool delete_checkpoint;
} backup;

static const tg_loc here = {__FILE__, __LINE__};

static int save(backup *b, tg_model *m)
{
    if (!tg__writes_files(m)) /* a distributed fit: rank 0 writes */
        return 0;
    if (mkdir(b->dir, 0777) != 0 && errno != EEXIST)
        return tg__failf(here, "BackupAndRestore: cannot make the folder \"%s\": %s", b->dir, strerror(errno));
    return tg_model_save_at(here, m, b->path, NULL) == 0 ? 0 : -1;
}

static int backup_train_begin(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)logs;
    backup *b = (backup *)cb;
    b->since_save = 0;
    if (access(b->path, F_OK) != 0)
        return 0; /* a fresh start */
    if (tg_model_load_at(here, m, b->path) != 0)
        return -1;
    tg__fit_position *p = tg__model_fit_position(m);
    if (p && p->set)
        p->resume = true;
    return 0;
}

static int backup_epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)epoch, (void)logs;
    backup *b = (backup *)cb;
    return b->save_freq == 0 ? save(b, m) : 0;
}

static int backup_batch_end(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)batch, (void)logs;
    backup *b = (backup *)cb;
    if (b->save_freq == 0 || ++b->since_save < b->save_freq)
        return 0;
    b->since_save = 0;
    return save(b, m);
}

/* Keras removes the folder; here the file, and the folder once empty (never others' files). */
static int backup_train_end(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)logs;
    backup *b = (backup *)cb;
    if (!b->delete_checkpoint || !tg__writes_files(m))
        return 0;
    if (remove(b->path) != 0 && errno != ENOENT)
        return tg__failf(here, "BackupAndRestore: cannot delete \"%s\": %s", b->path, strerror(errno));
    rmdir(b->dir); /* fails, harmlessly, when the folder holds other files */
    return 0;
}

static void backup_free(tg_callback *cb)
{
    backup *b = (backup *)cb;
    free(b->dir);
    free(b->path);
    tg__callback_retire(&b->cb);
}

tg_callback *tg_backup_and_restore_at(tg_loc loc, tg_backup_and_restore_opts o)
{
    if (!o.backup_dir || !*o.backup_dir)
        return tg__fail(loc, "tg_backup_and_restore: Empty `backup_dir` argument passed: give .backup_dir");
    if (o.save_freq < 0)
        return tg__fail(loc, "tg_backup_and_restore: save_freq must be 0 (\"epoch\") or a number of batches, got %lld",
                        (long long)o.save_freq);
    backup *b = calloc(1, sizeof *b);
    size_t n = strlen(o.backup_dir) + sizeof "/model.safetensors";
    if (!b || !(b->dir = strdup(o.backup_dir)) || !(b->path = malloc(n))) {
        if (b)
            backup_free(&b->cb);
        return tg__fail(loc, "tg_backup_and_restore: out of memory");
    }
    snprintf(b->path, n, "%s/model.safetensors", o.backup_dir);
    b->save_freq = o.save_freq;
    b->delete_checkpoint = o.delete_checkpoint;
    b->cb = (tg_callback){.on_train_begin = backup_train_begin,
                          .on_epoch_end = backup_epoch_end,
                          .on_batch_end = backup_batch_end,
                          .on_train_end = backup_train_end,
                          .free = backup_free};
    return &b->cb;
}
