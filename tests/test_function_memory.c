/* Graph mode's memory and inference (docs/function.md): a trace computes no values (TF's
 * tracing), so a traced training step holds less than the eager one, and gives its bits;
 * evaluate and predict run their batches as traced functions, equal to eager bit for bit,
 * traced once per batch size. */
#include "check.h"
#include "tensor/tensor_impl.h" /* the scopes' high-water mark */

static tg_model *small_mlp(void)
{
    tg_model *m =
        tg_sequential_with(tg_sequential_options(.seed = 7),
                           tg_dense(.units = 64, .activation = TG_RELU, .input_dim = 32), tg_dense(.units = 10));
    bool ok = m && tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                              .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) == 0;
    CHECK(ok);
    return ok ? m : NULL;
}

static tg_tensor *rows(int64_t n, int64_t d, uint64_t seed)
{
    tg_rng *r = tg_rng_new(seed);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(n, d));
    tg_rng_free(r);
    return x;
}

static tg_tensor *labels(int64_t n)
{
    int32_t v[256];
    for (int64_t i = 0; i < n; i++)
        v[i] = (int32_t)((i * 7 + 3) % 10);
    return tg_tensor_from(TG_I32, TG_SHAPE(n), v);
}

static tg_logs step_logs; /* the recorded metric logs write here at every call */

static int train_step(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)n, (void)out;
    return tg_train_step_default(user, in[0], in[1], NULL, &step_logs, NULL);
}

static bool same_weights(tg_model *a, tg_model *b)
{
    int n = 0, nb = 0;
    tg_tensor *const *va = tg_model_trainable_variables(a, &n), *const *vb = tg_model_trainable_variables(b, &nb);
    if (n != nb || n <= 0)
        return false;
    for (int i = 0; i < n; i++)
        if (tg_size(va[i]) != tg_size(vb[i]) ||
            memcmp(va[i]->data, vb[i]->data, (size_t)tg_size(va[i]) * sizeof(float)) != 0)
            return false;
    return true;
}

/* The scopes' high-water mark over one step (above what was live before), eagerly and as
 * a traced function's first call (trace and run) and its replay; the graph's planned
 * buffer is added to the traced ones. The trace itself holds headers, not values. */
static void a_traced_step_holds_less_than_the_eager_one(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *eager = small_mlp(), *traced = small_mlp();
    REQUIRE(eager && traced);
    tg_tensor *x = rows(128, 32, 1), *y = labels(128);
    tg_function *f = tg_function_new(train_step, traced, .name = "train_step");
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];

    tg_scope *e = tg_scope_begin();
    size_t base = tg__arena_peak_reset();
    tg_logs logs = {0};
    REQUIRE(tg_train_step_default(eager, x, y, NULL, &logs, NULL) == 0);
    size_t eager_peak = tg__arena_peak() - base;
    tg_scope_end(e);
    tg_logs_free(&logs);

    tg_scope *t = tg_scope_begin();
    base = tg__arena_peak_reset();
    REQUIRE(tg_function_call(f, (tg_tensor *[]){x, y}, 2, out) == 0);
    size_t first_peak = tg__arena_peak() - base;
    tg_scope_end(t);
    tg_function_stats st = tg_function_get_stats(f);
    CHECK(st.traces == 1 && st.buffer_bytes > 0);
    CHECK(st.value_bytes > st.buffer_bytes); /* the plan reuses buffers */
    /* eager keeps every intermediate (the tape's too) until the step's scope ends */
    CHECK(eager_peak >= st.value_bytes);
    CHECK(first_peak + st.buffer_bytes < eager_peak);
    CHECK(same_weights(eager, traced)); /* the first call's results are the graph's run */

    tg_scope *r = tg_scope_begin();
    base = tg__arena_peak_reset();
    REQUIRE(tg_function_call(f, (tg_tensor *[]){x, y}, 2, out) == 0);
    size_t replay_peak = tg__arena_peak() - base;
    tg_scope_end(r);
    CHECK(replay_peak + st.buffer_bytes < eager_peak);
    tg_scope *e2 = tg_scope_begin();
    REQUIRE(tg_train_step_default(eager, x, y, NULL, &logs, NULL) == 0);
    tg_scope_end(e2);
    tg_logs_free(&logs);
    CHECK(same_weights(eager, traced));
    printf("  step peak: eager %zu bytes; traced first call %zu + plan %zu, replay %zu + plan %zu\n", eager_peak,
           first_peak, st.buffer_bytes, replay_peak, st.buffer_bytes);

    tg_function_free(f);
    tg_model_free(eager);
    tg_model_free(traced);
    tg_scope_end(s);
    tg_logs_free(&step_logs);
}

/* While tracing, op outputs have no data: C code that reads one is refused, naming it. */
static int reads_a_value(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)n;
    int *line = user;
    tg_tensor *y = tg_mul(in[0], in[0]);
    *line = __LINE__ + 1;
    double v = tg_item(tg_sum(y));
    out[0] = tg_add(y, tg_scalar(isnan(v) ? 0.0f : (float)v));
    return 1;
}

static void an_abstract_trace_refuses_reads(void)
{
    tg_scope *s = tg_scope_begin();
    int line = 0;
    tg_function *f = tg_function_new(reads_a_value, &line, .name = "reads");
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    CHECK(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), 1, 2)}, 1, out) == -1);
    char where[64];
    snprintf(where, sizeof where, "test_function_memory.c:%d", line);
    CHECK(strstr(tg_last_error(), where) != NULL);
    CHECK(strstr(tg_last_error(), "tg_item") != NULL);
    tg_clear_error();
    tg_function_free(f);
    tg_scope_end(s);
}

/* A loss that looks at its labels' values (hinge: 0/1 labels become -1/1) on labels the
 * trace computed: the graph makes the choice at every call, as eagerly. */
static int hinge_of_cast_labels(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_loss hinge = {.kind = TG_LOSS_HINGE};
    out[0] = tg_compute_loss(&hinge, tg_cast(in[1], TG_F32), in[0], NULL);
    return 1;
}

static void a_loss_reading_labels_follows_them_at_every_call(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(hinge_of_cast_labels, NULL, .name = "hinge");
    tg_tensor *p = tg_from_f32(TG_SHAPE(4), 0.5f, -2, 0.25f, 3), *out[TG_FUNCTION_MAX_OUTPUTS];
    tg_tensor *binary = tg_tensor_from(TG_I32, TG_SHAPE(4), ((int32_t[]){0, 1, 1, 0}));
    tg_tensor *signs = tg_tensor_from(TG_I32, TG_SHAPE(4), ((int32_t[]){-1, 1, 1, -1}));
    tg_tensor *other = tg_tensor_from(TG_I32, TG_SHAPE(4), ((int32_t[]){2, 1, 1, 0}));
    tg_loss hinge = {.kind = TG_LOSS_HINGE};
    tg_tensor *labels[] = {binary, signs, other};
    for (int k = 0; k < 3; k++) {
        REQUIRE(tg_function_call(f, (tg_tensor *[]){p, labels[k]}, 2, out) == 1);
        float want = (float)tg_item(tg_compute_loss(&hinge, tg_cast(labels[k], TG_F32), p, NULL));
        CHECK(tg_item(out[0]) == want);
    }
    /* by hand: 0/1 labels are -1/1: max(1 - t p, 0) = 1.5, 3, 0.75, 4 */
    REQUIRE(tg_function_call(f, (tg_tensor *[]){p, binary}, 2, out) == 1);
    CHECK(tg_item(out[0]) == (1.5f + 3 + 0.75f + 4) / 4);
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_scope_end(s);
}

/* Side effects are recorded, not done, while tracing: each call does them once, the first
 * (trace, then the graph's run) included. */
typedef struct effects {
    FILE *file;
    tg_tensor *counter;
} effects;

static int has_effects(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)n;
    effects *e = user;
    tg_fprint(e->file, in[0]);
    if (tg_assign_add(e->counter, tg_sum(in[0])) != 0)
        return -1;
    out[0] = tg_mul(e->counter, tg_scalar(2.0f)); /* reads the counter after the assign */
    return 1;
}

static void side_effects_happen_once_per_call(void)
{
    tg_scope *s = tg_scope_begin();
    effects e = {.file = tmpfile(), .counter = tg_variable(tg_scalar(0.0f))};
    REQUIRE(e.file && e.counter);
    tg_function *f = tg_function_new(has_effects, &e, .name = "effects");
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), 1, 2)}, 1, out) == 1);
    CHECK(tg_item(e.counter) == 3 && tg_item(out[0]) == 6);
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), 3, 4)}, 1, out) == 1);
    CHECK(tg_item(e.counter) == 10 && tg_item(out[0]) == 20);
    char text[1024] = {0};
    rewind(e.file);
    size_t got = fread(text, 1, sizeof text - 1, e.file);
    fclose(e.file);
    int prints = 0;
    for (const char *p = text; (p = strstr(p, "tg.Tensor(")) != NULL; p++)
        prints++;
    CHECK(got > 0 && prints == 2);
    CHECK(strstr(text, "[1. 2.]") != NULL && strstr(text, "[3. 4.]") != NULL);
    tg_function_free(f);
    tg_scope_end(s);
}

/* fit's default step is traced abstractly with eager_fallback: RandomFlip draws in C, so the
 * step runs eagerly from the first, whose eager rerun draws from where the trace began. */
static tg_model *flipping_model(void)
{
    tg_model *m =
        tg_sequential_with(tg_sequential_options(.seed = 5),
                           tg_random_flip(.mode = TG_FLIP_HORIZONTAL, .seed = 9, .input_shape = TG_SHAPE(4, 4, 1)),
                           tg_flatten(), tg_dense(.units = 3));
    bool ok = m && tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                              .from_logits = true) == 0;
    CHECK(ok);
    return ok ? m : NULL;
}

static void quiet(const char *msg, void *user) { (void)msg, (void)user; }

static void a_default_step_that_draws_in_c_runs_eagerly_with_the_eager_stream(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *eager = flipping_model(), *traced = flipping_model();
    REQUIRE(eager && traced);
    tg_tensor *x = tg_reshape(rows(48, 16, 2), TG_SHAPE(48, 4, 4, 1)),
              *y = tg_floormod(labels(48), tg_scalar_like(labels(1), 3));
    tg_set_warning_handler(quiet, NULL);
    tg_history *he =
        tg_fit(eager, x, y, .epochs = 2, .batch_size = 16, .verbose = TG_VERBOSE_SILENT, .run_eagerly = true);
    tg_clear_warning();
    tg_history *ht = tg_fit(traced, x, y, .epochs = 2, .batch_size = 16, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(he && ht);
    tg_history_free(he);
    tg_history_free(ht);
    CHECK(tg_last_warning() && strstr(tg_last_warning(), "runs eagerly from now on") != NULL);
    CHECK(same_weights(eager, traced));
    tg_model_free(eager);
    tg_model_free(traced);
    tg_scope_end(s);
}

/* ---- evaluate and predict ------------------------------------------------------------------- */
static int counted_calls; /* C code of a layer's call: runs each eager batch, once per trace */

static tg_tensor *counted_call(tg_layer *l, const tg_tensor *x, bool training, const tg_tensor *mask)
{
    (void)l, (void)training, (void)mask;
    counted_calls++;
    return tg_tanh(x);
}

static int same_shape(tg_layer *l, tg_shape in, tg_shape *out)
{
    (void)l;
    *out = in;
    return 0;
}

static const tg_layer_class counted_class = {
    .class_name = "Counted", .call = counted_call, .compute_output_shape = same_shape};

static tg_model *counted_model(void)
{
    tg_model *m = tg_sequential_with(
        tg_sequential_options(.seed = 3), tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 8),
        tg_batch_normalization(), tg_custom_layer(&counted_class), tg_dropout(.rate = 0.5), tg_dense(.units = 4));
    bool ok = m && tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                              .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) == 0;
    CHECK(ok);
    return ok ? m : NULL;
}

static void evaluate_and_predict_traced_equal_eager(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = counted_model();
    REQUIRE(m);
    tg_tensor *x = rows(72, 8, 5), *y = tg_floormod(labels(72), tg_scalar_like(labels(1), 4));
    tg_history *warm = tg_fit(m, x, y, .epochs = 1, .batch_size = 24, .verbose = TG_VERBOSE_SILENT); /* moving stats */
    REQUIRE(warm);
    tg_history_free(warm);

    tg_logs eager = {0}, traced = {0};
    counted_calls = 0;
    REQUIRE(tg_evaluate(m, x, y, &eager, .batch_size = 16, .run_eagerly = true) == 0);
    CHECK(counted_calls == 1 + 5); /* the data's check, then 72 rows: 4 batches of 16 and one of 8 */
    counted_calls = 0;
    REQUIRE(tg_evaluate(m, x, y, &traced, .batch_size = 16) == 0);
    CHECK(counted_calls == 1 + 1); /* traced for 16 rows; the last 8 replay it (the batch dim is unknown) */
    REQUIRE(eager.n == traced.n && eager.n >= 2);
    for (int i = 0; i < eager.n; i++)
        CHECK(!strcmp(eager.names[i], traced.names[i]) && eager.values[i] == traced.values[i]);

    counted_calls = 0;
    tg_tensor *pe = tg_predict(m, x, .batch_size = 24, .run_eagerly = true);
    CHECK(counted_calls == 1 + 3);
    counted_calls = 0;
    tg_tensor *pt = tg_predict(m, x, .batch_size = 24);
    CHECK(counted_calls == 1 + 1); /* 3 batches of 24: one trace */
    REQUIRE(pe && pt && tg_size(pe) == tg_size(pt));
    CHECK(memcmp(pe->data, pt->data, (size_t)tg_size(pe) * sizeof(float)) == 0);

    /* fit's validation pass runs traced too: its logs are evaluate's */
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .batch_size = 24, .validation_x = x, .validation_y = y,
                           .verbose = TG_VERBOSE_SILENT, .shuffle = false);
    REQUIRE(h);
    tg_logs after = {0};
    REQUIRE(tg_evaluate(m, x, y, &after, .batch_size = 24, .run_eagerly = true) == 0);
    const double *val_loss = tg_history_get(h, "val_loss", NULL);
    CHECK(val_loss && val_loss[0] == tg_logs_get(&after, "loss"));
    tg_history_free(h);
    tg_logs_free(&eager);
    tg_logs_free(&traced);
    tg_logs_free(&after);
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    RUN(a_traced_step_holds_less_than_the_eager_one);
    RUN(an_abstract_trace_refuses_reads);
    RUN(side_effects_happen_once_per_call);
    RUN(a_loss_reading_labels_follows_them_at_every_call);
    RUN(a_default_step_that_draws_in_c_runs_eagerly_with_the_eager_stream);
    RUN(evaluate_and_predict_traced_equal_eager);
    return TEST_SUMMARY();
}
