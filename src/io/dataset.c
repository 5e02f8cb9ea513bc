/* In-memory data sets: rows of features and labels in malloc'd buffers the data set
 * owns, shuffled, split and cut into batches; and the Fashion-MNIST loader. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "io_impl.h"

typedef struct {
    void *data; /* rows * row_bytes, or NULL (no labels) */
    tg_dtype dtype;
    tg_shape shape; /* dims[0] is the number of rows */
    size_t row_bytes;
} part;

struct tg_dataset {
    int64_t rows;
    part x, y;
    int64_t batch, cursor;
};

static size_t row_bytes(const tg_shape *s, tg_dtype dtype)
{
    tg_shape row = *s;
    row.dims[0] = 1;
    return (size_t)tg__shape_size(&row) * tg_dtype_size(dtype);
}

tg_dataset *tg__dataset_adopt(tg_loc loc, void *x, tg_dtype x_dtype, tg_shape x_shape, void *y, tg_dtype y_dtype,
                              tg_shape y_shape)
{
    tg_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        free(x);
        free(y);
        return tg__fail(loc, "tg_dataset_new: out of memory");
    }
    ds->rows = x_shape.dims[0];
    ds->x = (part){x, x_dtype, x_shape, row_bytes(&x_shape, x_dtype)};
    if (y)
        ds->y = (part){y, y_dtype, y_shape, row_bytes(&y_shape, y_dtype)};
    ds->batch = 32;
    return ds;
}

static void *copy_data(const tg_tensor *t)
{
    size_t bytes = (size_t)t->size * tg_dtype_size(t->dtype);
    void *p = malloc(bytes ? bytes : 1);
    if (p)
        memcpy(p, t->data, bytes);
    return p;
}

tg_dataset *tg_dataset_new_at(tg_loc loc, const tg_tensor *x, const tg_tensor *y)
{
    if (!tg__check_input(loc, "tg_dataset_new", x, "x") || (y && !tg__check_input(loc, "tg_dataset_new", y, "y")))
        return NULL;
    if (x->rank < 1 || (y && y->rank < 1))
        return tg__fail(loc, "tg_dataset_new: %s is a scalar; a data set needs rows along axis 0",
                        x->rank < 1 ? "x" : "y");
    if (y && y->shape[0] != x->shape[0])
        return tg__fail(loc, "tg_dataset_new: x has %lld rows but y has %lld; they must match", (long long)x->shape[0],
                        (long long)y->shape[0]);
    void *xd = copy_data(x), *yd = y ? copy_data(y) : NULL;
    if (!xd || (y && !yd)) {
        free(xd);
        free(yd);
        return tg__fail(loc, "tg_dataset_new: out of memory");
    }
    return tg__dataset_adopt(loc, xd, x->dtype, tg__shape(x), yd, y ? y->dtype : TG_F32,
                             y ? tg__shape(y) : TG_SCALAR_SHAPE);
}

void tg_dataset_free(tg_dataset *ds)
{
    if (!ds)
        return;
    free(ds->x.data);
    free(ds->y.data);
    free(ds);
}

int64_t tg_dataset_size(const tg_dataset *ds) { return ds ? ds->rows : -1; }

static bool check_ds(const char *func, const tg_dataset *ds)
{
    if (!ds)
        tg__null_arg((tg_loc){0}, func, "ds");
    return ds != NULL;
}

/* Copies rows order[0..n) (or first..first+n when order is NULL) of p into dst. */
static void gather(const part *p, const int64_t *order, int64_t first, int64_t n, void *dst)
{
    if (!order) {
        memcpy(dst, (const char *)p->data + (size_t)first * p->row_bytes, (size_t)n * p->row_bytes);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy((char *)dst + (size_t)i * p->row_bytes, (const char *)p->data + (size_t)order[i] * p->row_bytes,
               p->row_bytes);
}

static void *gather_new(const part *p, const int64_t *order, int64_t first, int64_t n)
{
    size_t bytes = (size_t)n * p->row_bytes;
    void *d = malloc(bytes ? bytes : 1);
    if (d)
        gather(p, order, first, n, d);
    return d;
}

/* An unbiased integer in [0, bound). */
static uint64_t below(tg_rng *rng, uint64_t bound)
{
    uint64_t threshold = -bound % bound, r;
    do
        r = tg_rng_next(rng);
    while (r < threshold);
    return r % bound;
}

int tg_dataset_shuffle(tg_dataset *ds, uint64_t seed)
{
    if (!check_ds("tg_dataset_shuffle", ds))
        return -1;
    int64_t n = ds->rows, *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    tg_rng *rng = tg_rng_new(seed);
    void *x = NULL, *y = NULL;
    if (order && rng) {
        for (int64_t i = 0; i < n; i++)
            order[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)below(rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        x = gather_new(&ds->x, order, 0, n);
        y = ds->y.data ? gather_new(&ds->y, order, 0, n) : NULL;
    }
    bool ok = x && (y || !ds->y.data);
    free(order);
    tg_rng_free(rng);
    if (!ok) {
        free(x);
        free(y);
        return tg__failf((tg_loc){0}, "tg_dataset_shuffle: out of memory");
    }
    free(ds->x.data);
    free(ds->y.data);
    ds->x.data = x;
    ds->y.data = y;
    ds->cursor = 0;
    return 0;
}

static tg_dataset *slice(const tg_dataset *ds, int64_t first, int64_t n)
{
    tg_shape xs = ds->x.shape, ys = ds->y.shape;
    xs.dims[0] = ys.dims[0] = n;
    void *x = gather_new(&ds->x, NULL, first, n), *y = ds->y.data ? gather_new(&ds->y, NULL, first, n) : NULL;
    if (!x || (ds->y.data && !y)) {
        free(x);
        free(y);
        return tg__fail((tg_loc){0}, "tg_dataset_split: out of memory");
    }
    tg_dataset *s = tg__dataset_adopt((tg_loc){0}, x, ds->x.dtype, xs, y, ds->y.dtype, ys);
    if (s)
        s->batch = ds->batch;
    return s;
}

int tg_dataset_split(const tg_dataset *ds, double fraction, tg_dataset **train, tg_dataset **val)
{
    if (!check_ds("tg_dataset_split", ds))
        return -1;
    if (!train || !val)
        return tg__failf((tg_loc){0}, "tg_dataset_split: `train` and `val` must point to where the parts go");
    *train = *val = NULL;
    if (!(fraction > 0 && fraction < 1))
        return tg__failf((tg_loc){0}, "tg_dataset_split: the fraction must be between 0 and 1 (exclusive), got %g",
                         fraction);
    int64_t at = (int64_t)floor((double)ds->rows * (1.0 - fraction));
    if (at == 0 || at == ds->rows)
        return tg__failf((tg_loc){0},
                         "tg_dataset_split: the data set has %lld rows, which is not sufficient to split "
                         "it into a training and a validation set with fraction %g: provide more data, or another "
                         "fraction",
                         (long long)ds->rows, fraction);
    *train = slice(ds, 0, at);
    *val = *train ? slice(ds, at, ds->rows - at) : NULL;
    if (!*val) {
        tg_dataset_free(*train);
        *train = NULL;
        return -1;
    }
    return 0;
}

int tg_dataset_batch(tg_dataset *ds, int64_t batch_size)
{
    if (!check_ds("tg_dataset_batch", ds))
        return -1;
    if (batch_size < 1)
        return tg__failf((tg_loc){0}, "tg_dataset_batch: the batch size must be at least 1, got %lld",
                         (long long)batch_size);
    ds->batch = batch_size;
    ds->cursor = 0;
    return 0;
}

void tg_dataset_rewind(tg_dataset *ds)
{
    if (ds)
        ds->cursor = 0;
}

static tg_tensor *rows_tensor(tg_loc loc, const part *p, int64_t first, int64_t n)
{
    tg_shape s = p->shape;
    s.dims[0] = n;
    tg_tensor *t = tg__tensor_new(loc, p->dtype, &s);
    if (t)
        gather(p, NULL, first, n, t->data);
    return t;
}

int tg_dataset_next_at(tg_loc loc, tg_dataset *ds, tg_tensor **xb, tg_tensor **yb)
{
    if (!ds || !xb)
        return tg__null_arg(loc, "tg_dataset_next", ds ? "xb" : "ds"), -1;
    *xb = NULL;
    if (yb)
        *yb = NULL;
    if (ds->cursor >= ds->rows) {
        ds->cursor = 0;
        return 0;
    }
    int64_t n = ds->rows - ds->cursor < ds->batch ? ds->rows - ds->cursor : ds->batch;
    tg_tensor *x = rows_tensor(loc, &ds->x, ds->cursor, n);
    tg_tensor *y = x && yb && ds->y.data ? rows_tensor(loc, &ds->y, ds->cursor, n) : NULL;
    if (!x || (yb && ds->y.data && !y))
        return -1;
    ds->cursor += n;
    *xb = x;
    if (yb)
        *yb = y;
    return 1;
}

int tg_dataset_scale(tg_dataset *ds, double factor)
{
    if (!check_ds("tg_dataset_scale", ds))
        return -1;
    int64_t n = tg__shape_size(&ds->x.shape);
    if (ds->x.dtype == TG_F32) {
        float *p = ds->x.data;
        for (int64_t i = 0; i < n; i++)
            p[i] = (float)(p[i] * factor);
    } else if (ds->x.dtype == TG_F64) {
        double *p = ds->x.data;
        for (int64_t i = 0; i < n; i++)
            p[i] *= factor;
    } else {
        return tg__failf((tg_loc){0},
                         "tg_dataset_scale: the features are %s; scaling needs float32 or float64 "
                         "features",
                         tg_dtype_name(ds->x.dtype));
    }
    return 0;
}

int tg_dataset_reshape(tg_dataset *ds, tg_shape row)
{
    if (!check_ds("tg_dataset_reshape", ds))
        return -1;
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    tg_shape old = ds->x.shape;
    old.rank--;
    memmove(old.dims, old.dims + 1, sizeof old.dims - sizeof old.dims[0]);
    if (row.rank < 0 || row.rank >= TG_MAX_RANK)
        return tg__failf((tg_loc){0}, "tg_dataset_reshape: a row shape has rank 0 to %d, got %d", TG_MAX_RANK - 1,
                         row.rank);
    for (int i = 0; i < row.rank; i++)
        if (row.dims[i] < 0)
            return tg__failf((tg_loc){0}, "tg_dataset_reshape: dimension %d of the row shape is negative", i);
    if (tg__shape_size(&row) != tg__shape_size(&old))
        return tg__failf((tg_loc){0}, "tg_dataset_reshape: rows of shape %s have %lld elements; shape %s has %lld",
                         tg__shape_str(&old, a, sizeof a), (long long)tg__shape_size(&old),
                         tg__shape_str(&row, b, sizeof b), (long long)tg__shape_size(&row));
    ds->x.shape.rank = row.rank + 1;
    memcpy(ds->x.shape.dims + 1, row.dims, (size_t)row.rank * sizeof row.dims[0]);
    return 0;
}

tg_tensor *tg_dataset_x_at(tg_loc loc, const tg_dataset *ds)
{
    return ds ? rows_tensor(loc, &ds->x, 0, ds->rows) : tg__null_arg(loc, "tg_dataset_x", "ds");
}

tg_tensor *tg_dataset_y_at(tg_loc loc, const tg_dataset *ds)
{
    if (!ds)
        return tg__null_arg(loc, "tg_dataset_y", "ds");
    return ds->y.data ? rows_tensor(loc, &ds->y, 0, ds->rows) : NULL;
}

/* A header over the part's rows, in place: fit, evaluate and predict read a data set's
 * rows through these without copying them. */
static tg_tensor *part_view(tg_loc loc, const part *p) { return tg__tensor_wrap(loc, p->dtype, &p->shape, p->data); }

tg_tensor *tg_dataset_x_view_at(tg_loc loc, const tg_dataset *ds)
{
    return ds ? part_view(loc, &ds->x) : tg__null_arg(loc, "tg_dataset_x_view", "ds");
}

tg_tensor *tg_dataset_y_view_at(tg_loc loc, const tg_dataset *ds)
{
    if (!ds)
        return tg__null_arg(loc, "tg_dataset_y_view", "ds");
    return ds->y.data ? part_view(loc, &ds->y) : NULL;
}

bool tg_dataset_has_labels(const tg_dataset *ds) { return ds && ds->y.data; }

/* ---- Fashion-MNIST ------------------------------------------------------------------------ */
static const char *FMNIST = "tg_load_fashion_mnist";

/* dir/name.gz, or dir/name when only the uncompressed file exists. */
static void fmnist_path(char *buf, size_t size, const char *dir, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
    FILE *f = fopen(buf, "rb");
    if (f) {
        fclose(f);
        return;
    }
    snprintf(buf, size, "%s/%s.gz", dir, name);
}

static tg_dataset *fmnist_part(tg_loc loc, const char *dir, const char *images, const char *labels)
{
    char ip[4096], lp[4096];
    fmnist_path(ip, sizeof ip, dir, images);
    fmnist_path(lp, sizeof lp, dir, labels);
    FILE *probe = fopen(ip, "rb");
    if (!probe)
        return tg__fail(loc,
                        "%s: cannot open '%s': %s. Fashion-MNIST is in Debian's package: apt-get install "
                        "dataset-fashion-mnist (or pass the folder that holds its four IDX files, or set FMNIST_DIR)",
                        FMNIST, ip, strerror(errno));
    fclose(probe);
    tg_shape xs, ys;
    tg__raw_type xr, yr;
    void *x = tg__idx_load(loc, ip, TG_F32, 1.0 / 255, &xs, &xr);
    void *y = x ? tg__idx_load(loc, lp, TG_I32, 1.0, &ys, &yr) : NULL;
    const char *why = NULL;
    if (!x || !y)
        why = ""; /* the reader's message stands */
    else if (xr.kind != TG__RAW_UINT || xr.size != 1 || xs.rank != 3 || yr.kind != TG__RAW_UINT || yr.size != 1 ||
             ys.rank != 1)
        why = "expected u8 images of rank 3 and u8 labels of rank 1";
    else if (xs.dims[0] != ys.dims[0])
        why = "the image and label files have different numbers of rows";
    for (int64_t i = 0; !why && i < ys.dims[0]; i++)
        if (((int32_t *)y)[i] > 9)
            why = "a label is not in 0..9";
    if (why) {
        if (*why)
            tg__fail(loc, "%s: '%s' and '%s' are not Fashion-MNIST: %s", FMNIST, ip, lp, why);
        free(x);
        free(y);
        return NULL;
    }
    return tg__dataset_adopt(loc, x, TG_F32, xs, y, TG_I32, ys);
}

int tg_load_fashion_mnist_at(tg_loc loc, const char *dir, tg_dataset **train, tg_dataset **test)
{
    if (train)
        *train = NULL;
    if (test)
        *test = NULL;
    if (!dir)
        dir =
            getenv("FMNIST_DIR") && *getenv("FMNIST_DIR") ? getenv("FMNIST_DIR") : "/usr/share/datasets/fashion-mnist";
    if (train && !(*train = fmnist_part(loc, dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")))
        return -1;
    if (test && !(*test = fmnist_part(loc, dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))) {
        if (train) {
            tg_dataset_free(*train);
            *train = NULL;
        }
        return -1;
    }
    return 0;
}
