/* Losses: every case of tests/fixtures/loss_golden.txt (Keras 3's formulas evaluated by
 * tools/make_loss_fixtures.py in PyTorch float64): per-sample values, the reduced loss
 * and its gradient with respect to y_pred; then finite differences, a second derivative,
 * stability at logits of +-100, TF's 1-unit categorical cross-entropy (zero gradient),
 * custom losses, names, and every error message. */
#include <stdlib.h>

#include "fixture.h"
#include "gradcheck.h"

/* ---- the fixture ------------------------------------------------------------------------------ */
#define MAXV 256

typedef struct arr {
    bool present;
    tg_dtype dtype;
    tg_shape shape;
    int n;
    double v[MAXV];
} arr;

typedef struct lcase {
    char name[64];
    tg_loss loss;
    arr y_true, y_pred, sw;
    int n_values, n_grad;
    double values[MAXV], value, grad[MAXV];
} lcase;

/* "[DTYPE] RANK DIM... : V V ..." */
static bool parse_array(char *s, bool has_dtype, arr *a)
{
    char dt[8] = "f64";
    if (has_dtype && !fx_word(&s, dt, sizeof dt))
        return false;
    a->dtype = !strcmp(dt, "i32") ? TG_I32 : !strcmp(dt, "i64") ? TG_I64 : TG_F64;
    a->present = fx_array(&s, &a->shape, a->v, MAXV);
    a->n = (int)fx_size(&a->shape);
    return a->present;
}

/* The number of cases, or -1 with the reason printed. */
static int load_cases(lcase *cases, int max)
{
    fx_reader *r = malloc(sizeof *r);
    if (!r || !fx_open(r, "loss_golden.txt", "tools/make_loss_fixtures.py")) {
        printf("  %s\n", r ? r->error : "out of memory");
        free(r);
        return -1;
    }
    int n = 0;
    lcase *c = NULL;
    char tag[32], *rest;
    while (fx_next(r, tag, sizeof tag, &rest)) {
        bool ok = true;
        if (!strcmp(tag, "case")) {
            ok = n < max;
            if (ok) {
                c = &cases[n++];
                memset(c, 0, sizeof *c);
                ok = fx_word(&rest, c->name, sizeof c->name);
            }
        } else if (!c) {
            ok = false;
        } else if (!strcmp(tag, "loss")) {
            char kind[64];
            int logits = 0;
            ok = fx_word(&rest, kind, sizeof kind) && fx_int(&rest, &logits) &&
                 fx_number(&rest, &c->loss.label_smoothing) && fx_number(&rest, &c->loss.delta) &&
                 fx_number(&rest, &c->loss.alpha) && fx_number(&rest, &c->loss.gamma);
            c->loss.kind = tg_loss_kind_from_name(kind);
            c->loss.from_logits = logits;
        } else if (!strcmp(tag, "y_true")) {
            ok = parse_array(rest, true, &c->y_true);
        } else if (!strcmp(tag, "y_pred")) {
            ok = parse_array(rest, false, &c->y_pred);
        } else if (!strcmp(tag, "sample_weight")) {
            ok = parse_array(rest, false, &c->sw);
        } else if (!strcmp(tag, "values")) {
            ok = (c->n_values = fx_numbers(&rest, c->values, MAXV)) >= 0;
        } else if (!strcmp(tag, "value")) {
            ok = fx_number(&rest, &c->value);
        } else if (!strcmp(tag, "grad")) {
            ok = (c->n_grad = fx_numbers(&rest, c->grad, MAXV)) >= 0;
        } else if (!strcmp(tag, "end")) {
            c = NULL;
        } else {
            ok = false;
        }
        if (!ok)
            fx_fail(r, "a malformed `%s` record", tag);
    }
    fx_close(r);
    if (r->failed)
        printf("  %s\n", r->error);
    int result = r->failed ? -1 : n;
    free(r);
    return result;
}

static tg_tensor *make(const arr *a, tg_dtype float_dtype)
{
    if (!a->present)
        return NULL;
    if (a->dtype == TG_I32 || a->dtype == TG_I64) {
        int64_t v[MAXV];
        for (int i = 0; i < a->n; i++)
            v[i] = (int64_t)a->v[i];
        tg_tensor *t = tg_tensor_from(TG_I64, a->shape, v);
        return a->dtype == TG_I32 ? tg_cast(t, TG_I32) : t;
    }
    tg_tensor *t = tg_tensor_from(TG_F64, a->shape, a->v);
    return float_dtype == TG_F64 ? t : tg_cast(t, float_dtype);
}

/* t against the golden values (check.h's comparison), named by case and what. */
static bool close_all(const char *what, const char *name, const tg_tensor *t, const double *want, int n, double tol)
{
    char label[160];
    snprintf(label, sizeof label, "%s %s", name, what);
    return tensor_matches_(__FILE__, __LINE__, label, t, NULL, want, n, tol);
}

static int warnings_seen;
static void count_warning(const char *message, void *user)
{
    (void)message, (void)user;
    warnings_seen++;
}

static lcase cases[64];
static int n_cases;

static void test_fixture_loaded(void)
{
    n_cases = load_cases(cases, 64);
    CHECK(n_cases >= 34);
    bool kinds[TG_LOSS_COUNT] = {false};
    for (int i = 0; i < n_cases; i++) {
        CHECK(cases[i].loss.kind != TG_LOSS_NONE);
        kinds[cases[i].loss.kind] = true;
    }
    for (int k = TG_LOSS_MSE; k < TG_LOSS_CUSTOM; k++)
        CHECK(kinds[k]);
}

/* Each case in float64: values, loss and gradient to 1e-12 of the golden values; and in
 * float32, the loss to 1e-5. */
static void test_golden_values(void)
{
    int checked = 0;
    tg_set_warning_handler(count_warning, NULL); /* cce_one_unit warns */
    for (int i = 0; i < n_cases; i++) {
        const lcase *c = &cases[i];
        tg_scope *s = tg_scope_begin();
        tg_tensor *yt = make(&c->y_true, TG_F64), *yp = make(&c->y_pred, TG_F64), *sw = make(&c->sw, TG_F64);
        CHECK(close_all("values", c->name, tg_loss_values(&c->loss, yt, yp), c->values, c->n_values, 1e-12));
        tg_tape *t = tg_tape_begin();
        tg_watch(t, yp);
        tg_tensor *loss = tg_compute_loss(&c->loss, yt, yp, sw);
        tg_tape_end(t);
        CHECK(loss && tg_rank(loss) == 0 && tg_dtype_of(loss) == TG_F64);
        CHECK(close_all("loss", c->name, loss, &c->value, 1, 1e-12));
        CHECK(close_all("grad", c->name, tg_gradient(t, loss, yp), c->grad, c->n_grad, 1e-12));
        tg_tape_free(t);

        tg_tensor *yt32 = make(&c->y_true, TG_F32), *yp32 = make(&c->y_pred, TG_F32), *sw32 = make(&c->sw, TG_F32);
        tg_tensor *loss32 = tg_compute_loss(&c->loss, yt32, yp32, sw32);
        CHECK(loss32 && tg_dtype_of(loss32) == TG_F32);
        CHECK(close_all("float32 loss", c->name, loss32, &c->value, 1, 1e-5));
        tg_scope_end(s);
        checked++;
    }
    tg_set_warning_handler(NULL, NULL);
    CHECK(checked == n_cases && checked > 0);
}

/* ---- finite differences and second derivatives ----------------------------------------------------- */
typedef struct fd_case {
    tg_loss loss;
    const tg_tensor *y_true, *sw;
} fd_case;

static tg_tensor *apply_loss(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    const fd_case *c = user;
    return tg_compute_loss(&c->loss, c->y_true, xs[0], c->sw);
}

static void test_finite_differences(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *onehot = tg_from_f64(TG_SHAPE(3, 4), 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1);
    tg_tensor *bin = tg_from_f64(TG_SHAPE(3, 4), 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0);
    tg_tensor *labels = tg_from_i32(TG_SHAPE(3), 2, 0, 3);
    tg_tensor *target = gc_input(3, TG_SHAPE(3, 4), -1, 1), *sw = tg_from_f64(TG_SHAPE(3), 0.5, 1, 2);
    tg_tensor *logits = gc_input(4, TG_SHAPE(3, 4), -2, 2), *probs = gc_input(5, TG_SHAPE(3, 4), 0.05, 0.95);
    tg_tensor *dist = gc_input(8, TG_SHAPE(3, 4), 0.05, 0.95);
    const struct {
        const char *name;
        fd_case c;
        tg_tensor *x;
    } runs[] = {
        {"mse", {{.kind = TG_LOSS_MSE}, target, sw}, logits},
        {"huber", {{.kind = TG_LOSS_HUBER, .delta = 0.7}, target, NULL}, logits},
        {"bce logits",
         {{.kind = TG_LOSS_BINARY_CROSSENTROPY, .from_logits = true, .label_smoothing = 0.1}, bin, sw},
         logits},
        {"bce probs", {{.kind = TG_LOSS_BINARY_CROSSENTROPY}, bin, NULL}, probs},
        {"cce logits", {{.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY, .from_logits = true}, onehot, sw}, logits},
        {"cce probs", {{.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY, .label_smoothing = 0.2}, onehot, NULL}, probs},
        {"scce logits", {{.kind = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true}, labels, sw}, logits},
        {"scce probs", {{.kind = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY}, labels, NULL}, probs},
        {"kld", {{.kind = TG_LOSS_KL_DIVERGENCE}, dist, sw}, probs},
        {"hinge", {{.kind = TG_LOSS_HINGE}, bin, sw}, logits},
        {"squared hinge", {{.kind = TG_LOSS_SQUARED_HINGE}, bin, NULL}, logits},
        {"log cosh", {{.kind = TG_LOSS_LOG_COSH}, target, sw}, logits},
        {"poisson", {{.kind = TG_LOSS_POISSON}, target, NULL}, probs},
        {"cosine", {{.kind = TG_LOSS_COSINE_SIMILARITY}, target, sw}, logits},
        {"focal logits",
         {{.kind = TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY, .from_logits = true, .gamma = 1.5}, onehot, sw},
         logits},
        {"focal probs",
         {{.kind = TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY, .label_smoothing = 0.1}, onehot, NULL},
         probs},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        tg_tensor *x = runs[i].x;
        CHECK(gradcheck(runs[i].name, apply_loss, &x, 1, (void *)&runs[i].c, 1e-6, 1e-7));
        CHECK(f32_matches_f64(runs[i].name, apply_loss, &x, 1, (void *)&runs[i].c, 1e-5));
    }
    tg_scope_end(s);
}

/* The gradient of the loss, differentiated again: losses are made of ops. */
static tg_tensor *loss_gradient(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    const fd_case *c = user;
    tg_tape *t = tg_tape_begin();
    tg_watch(t, xs[0]);
    tg_tensor *loss = tg_compute_loss(&c->loss, c->y_true, xs[0], c->sw);
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, loss, xs[0]);
    tg_tape_free(t);
    return g;
}

static void test_second_order(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = gc_input(6, TG_SHAPE(3, 4), -2, 2);
    fd_case cce = {{.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY, .from_logits = true},
                   tg_from_f64(TG_SHAPE(3, 4), 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1),
                   NULL};
    fd_case bce = {{.kind = TG_LOSS_BINARY_CROSSENTROPY, .from_logits = true},
                   tg_from_f64(TG_SHAPE(3, 4), 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0),
                   NULL};
    fd_case scce = {{.kind = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY}, tg_from_i64(TG_SHAPE(3), 1, 0, 3), NULL};
    tg_tensor *p = gc_input(7, TG_SHAPE(3, 4), 0.05, 0.95);
    CHECK(gradcheck("d2 cce logits", loss_gradient, &x, 1, &cce, 1e-5, 1e-6));
    CHECK(gradcheck("d2 bce logits", loss_gradient, &x, 1, &bce, 1e-5, 1e-6));
    CHECK(gradcheck("d2 scce probs", loss_gradient, &p, 1, &scce, 1e-5, 1e-6));
    fd_case focal = {{.kind = TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY, .from_logits = true}, cce.y_true, NULL};
    fd_case logcosh = {{.kind = TG_LOSS_LOG_COSH}, bce.y_true, NULL};
    CHECK(gradcheck("d2 focal logits", loss_gradient, &x, 1, &focal, 1e-5, 1e-6));
    CHECK(gradcheck("d2 log cosh", loss_gradient, &x, 1, &logcosh, 1e-5, 1e-6));
    tg_scope_end(s);
}

/* ---- stability and TF's special cases ------------------------------------------------------------- */
static void test_extreme_logits(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_scope *s = tg_scope_begin();
        tg_tensor *x = tg_cast(tg_from_f64(TG_SHAPE(4, 1), 100, -100, 100, -100), dt);
        tg_tensor *z = tg_cast(tg_from_f64(TG_SHAPE(4, 1), 1, 0, 0, 1), dt);
        tg_tape *t = tg_tape_begin();
        tg_watch(t, x);
        tg_loss bce = {.kind = TG_LOSS_BINARY_CROSSENTROPY, .from_logits = true};
        tg_tensor *v = tg_binary_crossentropy(z, x, .from_logits = true);
        tg_tensor *loss = tg_compute_loss(&bce, z, x, NULL);
        tg_tape_end(t);
        /* exp(-100) is 3.7e-44: the right answers are 0, 0, 100, 100. */
        CHECK_VALUES(v, 1e-6, 0, 0, 100, 100);
        CHECK_VALUES(loss, 1e-6, 50);
        /* sigmoid(x) - z, over the batch of 4. */
        CHECK_VALUES(tg_gradient(t, loss, x), 1e-6, 0, 0, 0.25, -0.25);
        tg_tape_free(t);

        tg_tensor *lg = tg_cast(tg_from_f64(TG_SHAPE(2, 3), 100, -100, 0, -100, 100, 50), dt);
        tg_tensor *oh = tg_cast(tg_from_f64(TG_SHAPE(2, 3), 1, 0, 0, 1, 0, 0), dt);
        t = tg_tape_begin();
        tg_watch(t, lg);
        tg_loss cce = {.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY, .from_logits = true};
        loss = tg_compute_loss(&cce, oh, lg, NULL);
        tg_tape_end(t);
        CHECK_VALUES(loss, 1e-6, 100); /* (0 + 200) / 2 */
        CHECK_VALUES(tg_gradient(t, loss, lg), 1e-6, 0, 0, 0, -0.5, 0.5, 0);
        tg_tape_free(t);
        /* Probabilities of exactly 0 and 1 are clipped to [1e-7, 1 - 1e-7] in the tensor's
         * dtype: about 16.118 and, in float32 where 1 - 1e-7 rounds to 1 - 2^-23, 15.942. */
        tg_tensor *p = tg_cast(tg_from_f64(TG_SHAPE(2, 1), 0, 1), dt);
        tg_tensor *y = tg_cast(tg_from_f64(TG_SHAPE(2, 1), 1, 0), dt);
        double lo = d ? (double)(float)1e-7 : 1e-7, hi = d ? (double)(float)(1 - 1e-7) : 1 - 1e-7;
        CHECK_VALUES(tg_binary_crossentropy(y, p), 1e-6, -log(lo), -log(1 - hi));
        CHECK(d == 0 || fabs(-log(1 - hi) - 15.9423847) < 1e-6);
        tg_scope_end(s);
    }
}

/* TF's K8: categorical cross-entropy on one unit is a constant with zero gradients. */
static void test_one_unit_categorical(void)
{
    tg_scope *s = tg_scope_begin();
    tg_set_warning_handler(count_warning, NULL);
    tg_clear_warning();
    warnings_seen = 0;
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2, 1), 0.5f, -1.0f), .name = "w");
    tg_tensor *x = tg_from_f32(TG_SHAPE(3, 2), 1, 2, -1, 0.5f, 0.3f, 0.7f), *y = tg_from_f32(TG_SHAPE(3, 1), 1, 0, 1);
    tg_loss cce = {.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY};
    for (int step = 0; step < 3; step++) {
        tg_tape *t = tg_tape_begin();
        tg_tensor *loss = tg_compute_loss(&cce, y, tg_sigmoid(tg_matmul(x, w)), NULL);
        tg_tape_end(t);
        /* float32: -log(float(1 - 1e-7)) = 1.1920929e-07 for each positive label. */
        CHECK_NEAR(tg_item(loss), 2 * 1.1920929e-07 / 3, 1e-12);
        tg_tensor *g = tg_gradient(t, loss, w);
        CHECK(g != NULL);
        CHECK_VALUES(g, 0, 0, 0);
        tg_tape_free(t);
    }
    CHECK(warnings_seen == 1); /* once per call site, as Python's warnings */
    CHECK(tg_last_warning() && strstr(tg_last_warning(), "In loss categorical_crossentropy, expected y_pred.shape "
                                                         "to be (batch_size, num_classes) with num_classes > 1. "
                                                         "Received: y_pred.shape=(3, 1)"));
    tg_set_warning_handler(NULL, NULL);
    tg_variable_free(w);
    tg_scope_end(s);
}

static void test_reduction_and_shapes(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *yt = tg_from_f64(TG_SHAPE(3, 2), 1, 2, 3, 4, 5, 6), *yp = tg_from_f64(TG_SHAPE(3, 2), 2, 2, 3, 6, 5, 3);
    tg_loss mse = {.kind = TG_LOSS_MSE};
    CHECK_VALUES(tg_mean_squared_error(yt, yp), 0, 0.5, 2, 4.5);
    CHECK_VALUES(tg_compute_loss(&mse, yt, yp, NULL), 1e-15, 7.0 / 3);
    /* The divisor is the number of values, not the sum of the weights. */
    CHECK_VALUES(tg_compute_loss(&mse, yt, yp, tg_from_f64(TG_SHAPE(3), 2, 0, 1)), 1e-15, 5.5 / 3);
    CHECK_VALUES(tg_compute_loss(&mse, yt, yp, tg_from_f64(TG_SHAPE(3, 1), 2, 0, 1)), 1e-15, 5.5 / 3);
    CHECK_VALUES(tg_compute_loss(&mse, yt, yp, tg_from_i32(TG_SHAPE(3), 2, 0, 1)), 1e-15, 5.5 / 3);
    CHECK_VALUES(tg_compute_loss(&mse, yt, yp, tg_scalar_of(TG_F64, 3)), 1e-15, 7.0);
    /* Labels [B] against a prediction [B, 1]. */
    tg_tensor *col = tg_from_f64(TG_SHAPE(3, 1), 1, 1, 1), *vec = tg_from_f64(TG_SHAPE(3), 0, 2, 4);
    CHECK_VALUES(tg_mean_absolute_error(vec, col), 0, 1, 1, 3);
    CHECK_VALUES(tg_mean_absolute_error(col, vec), 0, 1, 1, 3);
    CHECK(tg_rank(tg_mean_absolute_error(vec, col)) == 1);
    CHECK_VALUES(tg_huber(vec, col, .delta = 2), 1e-15, 0.5, 0.5, 4);
    CHECK_VALUES(tg_huber(vec, col), 1e-15, 0.5, 0.5, 2.5);
    /* Integer or bool labels are cast to y_pred's dtype, as Keras does. */
    tg_tensor *ib = tg_from_i32(TG_SHAPE(2, 1), 1, 0), *pb = tg_from_f64(TG_SHAPE(2, 1), 0.8, 0.4);
    CHECK_VALUES(tg_binary_crossentropy(ib, pb), 1e-12, -log(0.8), -log(0.6));
    /* An empty batch gives 0, not NaN. */
    tg_tensor *e = tg_zeros(TG_F64, TG_SHAPE(0, 3));
    CHECK_VALUES(tg_compute_loss(&mse, e, e, NULL), 0, 0);
    /* Rank 3: values [B, T], divided by B * T. */
    tg_tensor *a = tg_ones(TG_F64, TG_SHAPE(2, 3, 2)), *b = tg_zeros(TG_F64, TG_SHAPE(2, 3, 2));
    CHECK(tg_rank(tg_mean_squared_error(a, b)) == 2);
    CHECK_VALUES(tg_compute_loss(&mse, a, b, tg_from_f64(TG_SHAPE(2, 1), 3, 0)), 1e-15, 9.0 / 6);
    /* A single sample's one-hot vector gives one value. */
    tg_tensor *one = tg_from_f64(TG_SHAPE(3), 0, 1, 0), *lg = tg_from_f64(TG_SHAPE(3), 0, 0, 0);
    CHECK(tg_rank(tg_categorical_crossentropy(one, lg, .from_logits = true)) == 0);
    CHECK_VALUES(tg_categorical_crossentropy(one, lg, .from_logits = true), 1e-12, log(3.0));
    tg_scope_end(s);
}

/* ---- custom losses --------------------------------------------------------------------------------- */
static tg_tensor *cubed_error(const tg_tensor *y_true, const tg_tensor *y_pred, void *user)
{
    double *scale = user;
    tg_tensor *d = tg_abs(tg_sub(y_pred, y_true));
    return tg_mul(tg_mean(tg_mul(d, tg_square(d)), .axes = TG_AXES(-1)), tg_scalar_like(y_pred, *scale));
}

static tg_tensor *scalar_loss(const tg_tensor *y_true, const tg_tensor *y_pred, void *user)
{
    (void)user;
    return tg_sum(tg_square(tg_sub(y_pred, y_true)));
}

static tg_tensor *failing_loss(const tg_tensor *y_true, const tg_tensor *y_pred, void *user)
{
    (void)y_true, (void)user;
    return tg_reshape(y_pred, TG_SHAPE(7)); /* fails with tg_reshape's message */
}

static tg_tensor *int_loss(const tg_tensor *y_true, const tg_tensor *y_pred, void *user)
{
    (void)y_true, (void)y_pred, (void)user;
    return tg_from_i32(TG_SHAPE(1), 3);
}

static void test_custom_loss(void)
{
    tg_scope *s = tg_scope_begin();
    double scale = 2;
    tg_loss custom = {.kind = TG_LOSS_CUSTOM, .fn = cubed_error, .user = &scale, .name = "cubed"};
    tg_tensor *yt = tg_from_f64(TG_SHAPE(2, 2), 0, 1, 2, 3), *yp = tg_from_f64(TG_SHAPE(2, 2), 1, 1, 0, 4);
    /* per sample: 2 * mean(1, 0) = 1, 2 * mean(8, 1) = 9; weights 1 and 0.5. */
    tg_tape *t = tg_tape_begin();
    tg_watch(t, yp);
    tg_tensor *loss = tg_compute_loss(&custom, yt, yp, tg_from_f64(TG_SHAPE(2), 1, 0.5));
    tg_tape_end(t);
    CHECK_VALUES(loss, 1e-15, (1 + 4.5) / 2);
    /* d/dp of 2 * w * |d|^3 / 2 / B = 3 w d|d| / 2. */
    CHECK_VALUES(tg_gradient(t, loss, yp), 1e-15, 1.5, 0, -3, 0.75);
    tg_tape_free(t);
    /* Labels [B] reach the function as [B, 1], as Keras's wrapper matches ranks. */
    CHECK_VALUES(tg_compute_loss(&custom, tg_from_f64(TG_SHAPE(2), 1, 2), tg_from_f64(TG_SHAPE(2, 1), 0, 0), NULL),
                 1e-15, (2 + 16) / 2.0);
    /* A scalar result is the loss itself. */
    tg_loss sc = {.kind = TG_LOSS_CUSTOM, .fn = scalar_loss};
    CHECK_VALUES(tg_compute_loss(&sc, yt, yp, NULL), 1e-15, 6);
    tg_loss bad = {.kind = TG_LOSS_CUSTOM, .fn = failing_loss};
    EXPECT_ERROR(tg_compute_loss(&bad, yt, yp, NULL) == NULL, "tg_reshape: cannot reshape a tensor of shape (2, 2)");
    tg_loss ints = {.kind = TG_LOSS_CUSTOM, .fn = int_loss, .name = "ints"};
    EXPECT_ERROR(tg_compute_loss(&ints, yt, yp, NULL) == NULL,
                 "custom loss `ints` must return a live float tensor (got int32)");
    tg_scope_end(s);
}

static void test_names(void)
{
    CHECK(!strcmp(tg_loss_name(TG_LOSS_MSE), "mean_squared_error"));
    CHECK(!strcmp(tg_loss_name(TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), "sparse_categorical_crossentropy"));
    CHECK(!strcmp(tg_loss_name(TG_LOSS_HUBER), "huber"));
    CHECK(!strcmp(tg_loss_name((tg_loss_kind)99), "?"));
    CHECK(tg_loss_kind_from_name("mse") == TG_LOSS_MSE);
    CHECK(tg_loss_kind_from_name("MAE") == TG_LOSS_MAE);
    CHECK(tg_loss_kind_from_name("binary_crossentropy") == TG_LOSS_BINARY_CROSSENTROPY);
    CHECK(tg_loss_kind_from_name("categorical_crossentropy") == TG_LOSS_CATEGORICAL_CROSSENTROPY);
    CHECK(tg_loss_kind_from_name("sparse_categorical_crossentropy") == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
    CHECK(tg_loss_kind_from_name("nonsense") == TG_LOSS_NONE);
    CHECK(tg_loss_kind_from_name(NULL) == TG_LOSS_NONE);
}

/* ---- errors ------------------------------------------------------------------------------------------ */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *y10 = tg_zeros(TG_F32, TG_SHAPE(4, 10)), *p1 = tg_zeros(TG_F32, TG_SHAPE(4, 1));
    tg_loss cce = {.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY}, mse = {.kind = TG_LOSS_MSE};
    CHECK(tg_compute_loss(&cce, y10, p1, NULL) == NULL);
    CHECK_ERROR("tg_categorical_crossentropy: Arguments `target` and `output` must have the same shape. Received: "
                "target.shape=(4, 10), output.shape=(4, 1)");
    CHECK(tg_mean_squared_error(tg_zeros(TG_F32, TG_SHAPE(4, 2)), tg_zeros(TG_F32, TG_SHAPE(4, 3))) == NULL);
    CHECK_ERROR("tg_mean_squared_error: Arguments `target` and `output` must have the same shape. Received: "
                "target.shape=(4, 2), output.shape=(4, 3)");

    tg_tensor *logits = tg_zeros(TG_F32, TG_SHAPE(3, 10));
    CHECK(tg_sparse_categorical_crossentropy(tg_from_i32(TG_SHAPE(3), 1, 10, 2), logits, .from_logits = true) == NULL);
    CHECK_ERROR("tg_sparse_categorical_crossentropy: Received a label value of 10 (y_true[1]) which is outside the "
                "valid range of [0, 10): y_pred of shape (3, 10) has 10 classes");
    EXPECT_ERROR(tg_sparse_categorical_crossentropy(tg_from_i64(TG_SHAPE(3, 1), 0, -1, 2), logits) == NULL,
                 "Received a label value of -1 (y_true[1]) which is outside the valid range of [0, 10)");
    EXPECT_ERROR(tg_sparse_categorical_crossentropy(tg_from_f32(TG_SHAPE(3), 0, 1.5f, 2), logits) == NULL,
                 "tg_sparse_categorical_crossentropy: label y_true[1] = 1.5 is not a whole number");
    CHECK(tg_sparse_categorical_crossentropy(tg_from_i32(TG_SHAPE(2), 0, 1), logits) == NULL);
    CHECK_ERROR("tg_sparse_categorical_crossentropy: Arguments `target` and `output` must have the same shape up "
                "until the last dimension: target.shape=(2,), output.shape=(3, 10) (integer labels for y_pred "
                "(3, 10) need shape (3,)");
    EXPECT_ERROR(tg_sparse_categorical_crossentropy(tg_zeros(TG_F32, TG_SHAPE(3, 10)), logits) == NULL,
                 "target.shape=(3, 10), output.shape=(3, 10)");
    EXPECT_ERROR(tg_sparse_categorical_crossentropy(tg_zeros(TG_BOOL, TG_SHAPE(3)), logits) == NULL,
                 "y_true must hold integer class indices (int32 or int64), not bool");
    /* Floats holding whole numbers are accepted, as Keras casts them. */
    CHECK(tg_sparse_categorical_crossentropy(tg_from_f32(TG_SHAPE(3), 0, 9, 2), logits) != NULL);

    EXPECT_ERROR(tg_mean_squared_error(tg_zeros(TG_I32, TG_SHAPE(2, 2)), tg_zeros(TG_I32, TG_SHAPE(2, 2))) == NULL,
                 "tg_mean_squared_error: y_pred must be float32 or float64, not int32");
    EXPECT_ERROR(tg_compute_loss(&mse, tg_scalar(1), tg_scalar(2), NULL) == NULL,
                 "tg_mean_squared_error: y_pred is a scalar; a loss needs a batch axis");
    CHECK(tg_compute_loss(&mse, p1, p1, tg_ones(TG_F32, TG_SHAPE(5))) == NULL);
    CHECK_ERROR("tg_compute_loss: sample_weight of shape (5,) does not fit the per-sample losses of shape (4,) "
                "(y_pred (4, 1)); give one weight per sample, shape (4,)");
    EXPECT_ERROR(tg_compute_loss(NULL, p1, p1, NULL) == NULL, "tg_compute_loss: `loss` is NULL");
    EXPECT_ERROR(tg_compute_loss(&(tg_loss){0}, p1, p1, NULL) == NULL, "tg_compute_loss: no loss to compute");
    EXPECT_ERROR(tg_compute_loss(&(tg_loss){.kind = (tg_loss_kind)42}, p1, p1, NULL) == NULL,
                 "tg_compute_loss: 42 is not a tg_loss_kind");
    EXPECT_ERROR(tg_compute_loss(&(tg_loss){.kind = TG_LOSS_CUSTOM}, p1, p1, NULL) == NULL,
                 "tg_compute_loss: TG_LOSS_CUSTOM needs .fn");
    EXPECT_ERROR(tg_binary_crossentropy(p1, p1, .label_smoothing = 1.5) == NULL,
                 "tg_binary_crossentropy: label_smoothing 1.5 must lie in [0, 1]");
    EXPECT_ERROR(tg_huber(p1, p1, .delta = -1) == NULL, "tg_huber: delta -1 must be positive");
    tg_clear_error();
    EXPECT_ERROR(tg_compute_loss(&mse, NULL, p1, NULL) == NULL, "tg_mean_squared_error: `y_true` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_compute_loss(&mse, p1, NULL, NULL) == NULL, "tg_mean_squared_error: `y_pred` is NULL");
    /* A NULL from an earlier failing call keeps that call's message. */
    tg_tensor *broken = tg_reshape(p1, TG_SHAPE(3));
    EXPECT_ERROR(tg_compute_loss(&mse, broken, p1, NULL) == NULL, "tg_reshape: cannot reshape");
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_fixture_loaded);
    RUN(test_golden_values);
    RUN(test_finite_differences);
    RUN(test_second_order);
    RUN(test_extreme_logits);
    RUN(test_one_unit_categorical);
    RUN(test_reduction_and_shapes);
    RUN(test_custom_loss);
    RUN(test_names);
    RUN(test_errors);
    return TEST_SUMMARY();
}
