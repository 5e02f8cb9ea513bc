/* Graph mode (tg_function, TF's tf.function): traced once per signature, replayed after,
 * with TF's semantics (docs/function.md): C code runs only while tracing, variables by
 * reference, reads refused, tg_print recorded; the same bits as eager where the ops are
 * the same. */
#include "check.h"
#include "malloc_count.h"
#include "tmpfiles.h"

static int warnings_seen;
static char last_warning[2048];

static void count_warning(const char *msg, void *user)
{
    (void)user;
    warnings_seen++;
    snprintf(last_warning, sizeof last_warning, "%s", msg);
}

/* ---- trace once, replay after ---------------------------------------------------------------- */
static int c_runs; /* C code between ops: runs only while tracing */

static int square_plus_one(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    out[0] = tg_add(tg_mul(in[0], in[0]), tg_scalar_like(in[0], 1.0));
    return 1;
}

static void replay_gives_new_values_without_running_c(void)
{
    tg_scope *s = tg_scope_begin();
    c_runs = 0;
    /* exact shapes: a rank-1 input's dim 0 would otherwise be an unknown batch dim */
    tg_function *f = tg_function_new(square_plus_one, NULL, .name = "square_plus_one", .exact_shapes = true);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(3), 1, 2, 3)}, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 2, 5, 10);
    CHECK(c_runs == 1);
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(3), -1, 0.5f, 4)}, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 2, 1.25, 17);
    CHECK(c_runs == 1); /* replayed: fn did not run */
    CHECK(tg_function_trace_count(f) == 1);
    /* a new shape (or dtype) is a new signature: traced again */
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), 3, 4)}, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 10, 17);
    CHECK(c_runs == 2);
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f64(TG_SHAPE(2), 3, 4)}, 1, out) == 1);
    CHECK(tg_dtype_of(out[0]) == TG_F64);
    CHECK(c_runs == 3);
    /* each signature keeps its graph */
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(3), 2, 2, 2)}, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 5, 5, 5);
    CHECK(c_runs == 3 && tg_function_trace_count(f) == 3);
    tg_function_free(f);
    tg_scope_end(s);
}

static void run_eagerly_runs_c_every_time(void)
{
    tg_scope *s = tg_scope_begin();
    c_runs = 0;
    tg_function *f = tg_function_new(square_plus_one, NULL, .run_eagerly = true);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    for (int i = 0; i < 3; i++)
        REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(1), (float)i)}, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 5);
    CHECK(c_runs == 3 && tg_function_trace_count(f) == 0);
    tg_function_free(f);
    tg_scope_end(s);
}

static void many_retraces_warn_once(void)
{
    tg_scope *s = tg_scope_begin();
    warnings_seen = 0;
    tg_set_warning_handler(count_warning, NULL);
    tg_function *f = tg_function_new(square_plus_one, NULL, .name = "shapes", .exact_shapes = true);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    for (int n = 1; n <= 5; n++)
        REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_fill(TG_F32, TG_SHAPE(n), 1)}, 1, out) == 1);
    CHECK(warnings_seen == 0); /* TF: five traces are fine */
    for (int n = 6; n <= 8; n++)
        REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_fill(TG_F32, TG_SHAPE(n), 1)}, 1, out) == 1);
    CHECK(warnings_seen == 1);
    CHECK(strstr(last_warning, "triggered retracing") && strstr(last_warning, "'shapes'"));
    tg_set_warning_handler(NULL, NULL);
    tg_function_free(f);
    tg_scope_end(s);
}

/* ---- variables by reference, assigns at every call --------------------------------------------- */
typedef struct {
    tg_tensor *v, *w;
} vars2;

static int accumulate_and_scale(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    vars2 *p = user;
    (void)n;
    if (tg_assign_add(p->v, in[0]) != 0)
        return -1;
    out[0] = tg_mul(p->w, p->v); /* reads v after the assign, and w as it is at the call */
    return 1;
}

static void variables_are_captured_by_reference(void)
{
    tg_scope *s = tg_scope_begin();
    vars2 p = {tg_variable(tg_from_f32(TG_SHAPE(2), 0, 0), .name = "v"), tg_variable(tg_scalar(2.0f), .name = "w")};
    tg_function *f = tg_function_new(accumulate_and_scale, &p);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1, 10);
    REQUIRE(tg_function_call(f, &x, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 2, 20);
    REQUIRE(tg_function_call(f, &x, 1, out) == 1); /* the assign acts at every call */
    CHECK_VALUES(out[0], CHECK_BITS, 4, 40);
    CHECK_VALUES(p.v, CHECK_BITS, 2, 20);
    REQUIRE(tg_assign(p.w, tg_scalar(0.5f)) == 0); /* changed outside: the graph reads it */
    REQUIRE(tg_function_call(f, &x, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 1.5, 15);
    CHECK_VALUES(p.v, CHECK_BITS, 3, 30);
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_variable_free(p.v);
    tg_variable_free(p.w);
    tg_scope_end(s);
}

/* ---- reads refused, prints recorded ------------------------------------------------------------- */
static int read_line;

static int reads_a_value(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    read_line = __LINE__ + 1;
    double first = tg_item(tg_sum(in[0]));
    out[0] = first > 0 ? tg_neg(in[0]) : in[0]; /* a C branch on a value: frozen in a graph, so refused */
    return 1;
}

static void reading_a_value_while_tracing_is_refused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(reads_a_value, NULL);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    EXPECT_ERROR(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), 1, 2)}, 1, out) == -1,
                 "tg_item: a tensor's value was read inside a traced function");
    char where[64];
    snprintf(where, sizeof where, "test_function.c:%d", read_line);
    CHECK(tg_last_error() && strstr(tg_last_error(), where));
    CHECK(tg_last_error() && strstr(tg_last_error(), "tg_cond or tg_while_loop"));
    CHECK(tg_last_error() && strstr(tg_last_error(), "tg_print"));
    CHECK(tg_function_trace_count(f) == 0);
    tg_function_free(f);
    tg_scope_end(s);
}

static int prints(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)n;
    tg_tensor *y = tg_mul(in[0], tg_scalar(2.0f));
    tg_fprint(user, y);
    out[0] = y;
    return 1;
}

static void print_is_recorded_and_prints_at_every_call(void)
{
    tg_scope *s = tg_scope_begin();
    FILE *file = tmpfile();
    REQUIRE(file);
    tg_function *f = tg_function_new(prints, file);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    for (int i = 1; i <= 3; i++)
        REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), (float)i, 0)}, 1, out) == 1);
    char text[1024] = {0};
    rewind(file);
    size_t got = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    CHECK(got > 0);
    CHECK(strstr(text, "tg.Tensor([2. 0.]") != NULL);
    CHECK(strstr(text, "tg.Tensor([4. 0.]") != NULL);
    CHECK(strstr(text, "tg.Tensor([6. 0.]") != NULL);
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_scope_end(s);
}

/* ---- outputs that change between traces ----------------------------------------------------------- */
static int outputs_by_rank(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    out[0] = tg_neg(in[0]);
    if (tg_rank(in[0]) == 2) {
        out[1] = tg_neg(in[0]);
        return 2;
    }
    return 1;
}

static int outputs_by_dtype(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    out[0] = tg_rank(in[0]) == 2 ? tg_cast(in[0], TG_F64) : tg_neg(in[0]);
    return 1;
}

static void outputs_must_keep_count_and_dtype(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    tg_function *f = tg_function_new(outputs_by_rank, NULL, .name = "by_rank");
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), 1, 2)}, 1, out) == 1);
    int line = __LINE__ + 1;
    EXPECT_ERROR(tg_function_call(f, (tg_tensor *[]){tg_fill(TG_F32, TG_SHAPE(2, 2), 1)}, 1, out) == -1,
                 "function 'by_rank' gave 2 outputs in this trace and 1 in its first for these input dtypes");
    char where[64];
    snprintf(where, sizeof where, "test_function.c:%d", line);
    CHECK(tg_last_error() && strstr(tg_last_error(), where));
    tg_function_free(f);
    f = tg_function_new(outputs_by_dtype, NULL, .name = "by_dtype");
    REQUIRE(tg_function_call(f, (tg_tensor *[]){tg_from_f32(TG_SHAPE(2), 1, 2)}, 1, out) == 1);
    EXPECT_ERROR(tg_function_call(f, (tg_tensor *[]){tg_fill(TG_F32, TG_SHAPE(2, 2), 1)}, 1, out) == -1,
                 "output 0 of function 'by_dtype' is float64 in this trace and was float32 in its first");
    tg_function_free(f);
    tg_scope_end(s);
}

/* ---- a training step: tape, gradients and the optimizer, traced -------------------------------------- */
typedef struct {
    tg_tensor *w, *b;
    tg_optimizer *opt;
} model;

static int train_step(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    model *m = user;
    (void)n;
    tg_tape *tape = tg_tape_begin();
    tg_tensor *h = tg_tanh(tg_add(tg_matmul(in[0], m->w), m->b));
    tg_tensor *loss = tg_mean(tg_square(tg_sub(tg_sum(h, .axes = TG_AXES(1)), in[1])));
    tg_tape_end(tape);
    tg_tensor *g[2], *vars[2] = {m->w, m->b};
    int rc = tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 2, .out = g);
    tg_tape_free(tape);
    if (rc != 0 || tg_apply_gradients(m->opt, g, vars, 2) != 0)
        return -1;
    out[0] = loss;
    return 1;
}

static model make_model(void)
{
    tg_scope *s = tg_scope_begin();
    model m = {tg_variable(tg_from_f32(TG_SHAPE(3, 2), 0.1f, -0.2f, 0.3f, 0.05f, -0.4f, 0.2f), .name = "w"),
               tg_variable(tg_from_f32(TG_SHAPE(2), 0.01f, -0.02f), .name = "b"), tg_adam(.learning_rate = 0.05)};
    tg_scope_end(s);
    return m;
}

static void free_model(model *m)
{
    tg_variable_free(m->w);
    tg_variable_free(m->b);
    tg_optimizer_free(m->opt);
}

/* The batch of step i: 4 rows of 3 features, and targets. */
static void batch(int i, tg_tensor **x, tg_tensor **y)
{
    float xs[12], ys[4];
    for (int k = 0; k < 12; k++)
        xs[k] = (float)sin(0.7 * (i * 12 + k));
    for (int k = 0; k < 4; k++)
        ys[k] = (float)cos(0.3 * (i * 4 + k));
    *x = tg_tensor_from(TG_F32, TG_SHAPE(4, 3), xs);
    *y = tg_tensor_from(TG_F32, TG_SHAPE(4), ys);
}

static void training_steps_traced_equal_eager_bitwise(void)
{
    model e = make_model(), t = make_model();
    tg_function *eager = tg_function_new(train_step, &e, .run_eagerly = true);
    tg_function *traced = tg_function_new(train_step, &t);
    for (int i = 0; i < 8; i++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x, *y, *le[TG_FUNCTION_MAX_OUTPUTS], *lt[TG_FUNCTION_MAX_OUTPUTS];
        batch(i, &x, &y);
        REQUIRE(tg_function_call(eager, (tg_tensor *[]){x, y}, 2, le) == 1);
        REQUIRE(tg_function_call(traced, (tg_tensor *[]){x, y}, 2, lt) == 1);
        TENSORS_AGREE(lt[0], le[0], CHECK_BITS);
        tg_scope_end(s);
    }
    TENSORS_AGREE(t.w, e.w, CHECK_BITS);
    TENSORS_AGREE(t.b, e.b, CHECK_BITS);
    CHECK(tg_optimizer_iterations(t.opt) == 8 && tg_optimizer_iterations(e.opt) == 8);
    CHECK(tg_function_trace_count(traced) == 1);
    /* the loss moved: the steps trained */
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y, *l0[TG_FUNCTION_MAX_OUTPUTS], *l1[TG_FUNCTION_MAX_OUTPUTS];
    batch(0, &x, &y);
    REQUIRE(tg_function_call(traced, (tg_tensor *[]){x, y}, 2, l0) == 1);
    for (int i = 0; i < 20; i++)
        REQUIRE(tg_function_call(traced, (tg_tensor *[]){x, y}, 2, l1) == 1);
    CHECK(tg_item(l1[0]) < 0.5 * tg_item(l0[0]));
    tg_scope_end(s);
    tg_function_free(eager);
    tg_function_free(traced);
    free_model(&e);
    free_model(&t);
}

/* A step that assigns a variable between its read and the gradient: the tape
 * differentiates at the value it read (a copy in the graph), as eagerly. */
static int assign_after_read(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    tg_tensor *w = user;
    (void)n;
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, in[0]);
    tg_tensor *y = tg_sum(tg_mul(w, tg_mul(in[0], in[0])));
    tg_tape_end(tape);
    if (tg_assign_add(w, tg_scalar(1.0f)) != 0)
        return -1;
    out[0] = tg_gradient(tape, y, in[0]); /* 2 w x with the w read */
    tg_tape_free(tape);
    out[1] = tg_mul(w, tg_scalar(1.0f)); /* the w after the assign */
    return 2;
}

static void a_read_kept_by_a_tape_survives_a_later_assign(void)
{
    tg_scope *s0 = tg_scope_begin();
    tg_tensor *we = tg_variable(tg_scalar(3.0f)), *wt = tg_variable(tg_scalar(3.0f));
    tg_scope_end(s0);
    tg_function *eager = tg_function_new(assign_after_read, we, .run_eagerly = true);
    tg_function *traced = tg_function_new(assign_after_read, wt);
    for (int i = 0; i < 3; i++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1.5f, -2), *oe[TG_FUNCTION_MAX_OUTPUTS], *ot[TG_FUNCTION_MAX_OUTPUTS];
        REQUIRE(tg_function_call(eager, &x, 1, oe) == 2);
        REQUIRE(tg_function_call(traced, &x, 1, ot) == 2);
        double w = 3 + i; /* hand values: d/dx sum(w x^2) = 2 w x */
        CHECK_VALUES(ot[0], CHECK_BITS, 2 * w * 1.5, 2 * w * -2);
        CHECK_VALUES(ot[1], CHECK_BITS, w + 1);
        TENSORS_AGREE(ot[0], oe[0], CHECK_BITS);
        tg_scope_end(s);
    }
    tg_function_free(eager);
    tg_function_free(traced);
    tg_variable_free(we);
    tg_variable_free(wt);
}

/* ---- the memory plan and allocation --------------------------------------------------------------- */
static int long_chain(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tensor *x = in[0];
    for (int i = 0; i < 12; i++)
        x = tg_tanh(tg_add(tg_mul(x, tg_scalar(0.9f)), tg_scalar(0.1f)));
    out[0] = x;
    return 1;
}

static void buffers_are_reused_and_replay_allocates_nothing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *eager = tg_function_new(long_chain, NULL, .run_eagerly = true);
    tg_function *f = tg_function_new(long_chain, NULL);
    tg_tensor *x = tg_fill(TG_F32, TG_SHAPE(1000), 0.5f), *out[TG_FUNCTION_MAX_OUTPUTS], *ref[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, &x, 1, out) == 1);
    REQUIRE(tg_function_call(eager, &x, 1, ref) == 1);
    TENSORS_AGREE(out[0], ref[0], CHECK_BITS);
    tg_function_stats st = tg_function_get_stats(f);
    CHECK(st.nodes == 36);
    CHECK(st.value_bytes == 36 * 4000);
    CHECK(st.buffer_bytes <= 3 * 4032);            /* a chain needs two live buffers (and the output) */
    REQUIRE(tg_function_call(f, &x, 1, out) == 1); /* warm */
#ifdef MALLOC_CAN_COUNT
    malloc_count_start();
    for (int i = 0; i < 5; i++)
        tg_function_call(f, &x, 1, out);
    malloc_count_stop();
    CHECK(malloc_calls == 0);
#endif
    TENSORS_AGREE(out[0], ref[0], CHECK_BITS);
    tg_function_free(f);
    tg_function_free(eager);
    tg_scope_end(s);
}

static int gather_line;
static int gathers(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    gather_line = __LINE__ + 1;
    out[0] = tg_gather(in[0], in[1], 0);
    return out[0] ? 1 : -1;
}

/* A kernel's error at a replay (an index out of range) fails the call, naming the op's line. */
static void a_replay_fails_where_its_kernel_fails(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(gathers, NULL);
    tg_tensor *x = tg_from_f32(TG_SHAPE(3), 10, 20, 30), *out[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, (tg_tensor *[]){x, tg_from_i32(TG_SHAPE(2), 2, 0)}, 2, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 30, 10);
    EXPECT_ERROR(tg_function_call(f, (tg_tensor *[]){x, tg_from_i32(TG_SHAPE(2), 1, 7)}, 2, out) == -1, "tg_gather");
    char where[64];
    snprintf(where, sizeof where, "test_function.c:%d", gather_line);
    CHECK(tg_last_error() && strstr(tg_last_error(), where));
    REQUIRE(tg_function_call(f, (tg_tensor *[]){x, tg_from_i32(TG_SHAPE(2), 1, 1)}, 2, out) == 1); /* usable after */
    CHECK_VALUES(out[0], CHECK_BITS, 20, 20);
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_scope_end(s);
}

static void bad_calls_are_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    EXPECT_ERROR(tg_function_new(NULL, NULL) == NULL, "tg_function_new");
    EXPECT_ERROR(tg_function_call(NULL, NULL, 0, out) == -1, "`f` is NULL");
    tg_function *f = tg_function_new(square_plus_one, NULL);
    EXPECT_ERROR(tg_function_call(f, (tg_tensor *[]){NULL}, 1, out) == -1, "tg_function_call");
    tg_function_free(f);
    tg_scope_end(s);
}

/* ---- the missing-gradient diagnosis: once, while tracing ---------------------------------------------- */
static int apply_line;
typedef struct {
    tg_tensor *v[2];
    tg_optimizer *opt;
} two_vars;

static int half_connected(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    two_vars *p = user;
    tg_tensor **v = p->v;
    (void)n;
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_sum(tg_mul(v[0], in[0])); /* v[1] is never read */
    tg_tape_end(t);
    tg_tensor *g[2];
    int rc = tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = v, .n_sources = 2, .out = g);
    tg_tape_free(t);
    apply_line = __LINE__ + 1;
    if (rc != 0 || tg_apply_gradients(p->opt, g, v, 2) != 0)
        return -1;
    out[0] = loss;
    return 1;
}

static void a_missing_gradient_is_reported_once_while_tracing(void)
{
    tg_scope *s = tg_scope_begin();
    two_vars p = {
        {tg_variable(tg_from_f32(TG_SHAPE(2), 1, 2), .name = "used"), tg_variable(tg_scalar(1.0f), .name = "unused")},
        tg_sgd(.learning_rate = 0.5)};
    tg_tensor **v = p.v;
    warnings_seen = 0;
    tg_set_warning_handler(count_warning, NULL);
    tg_function *f = tg_function_new(half_connected, &p);
    tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1, -1), *out[TG_FUNCTION_MAX_OUTPUTS];
    for (int i = 0; i < 3; i++)
        REQUIRE(tg_function_call(f, &x, 1, out) == 1);
    CHECK(warnings_seen >= 1);
    int after_trace = warnings_seen;
    char where[64];
    snprintf(where, sizeof where, "test_function.c:%d", apply_line);
    CHECK(strstr(last_warning, "Gradients do not exist for variables") && strstr(last_warning, "unused"));
    CHECK(strstr(last_warning, where));
    for (int i = 0; i < 3; i++)
        REQUIRE(tg_function_call(f, &x, 1, out) == 1);
    CHECK(warnings_seen == after_trace);                      /* replays stay quiet */
    CHECK_VALUES(v[0], CHECK_BITS, 1 - 6 * 0.5, 2 + 6 * 0.5); /* six updates by -0.5 x */
    tg_set_warning_handler(NULL, NULL);
    tg_function_free(f);
    tg_optimizer_free(p.opt);
    tg_variable_free(v[0]);
    tg_variable_free(v[1]);
    tg_scope_end(s);
}

/* ---- tape semantics, eagerly and traced ----------------------------------------------------------- */
/* Bodies of pure ops from the tape-semantics table (tests/test_tape.c), each giving its
 * gradients as outputs: traced, they must give eager's bits and the hand values. */
static int persistent_twice(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, in[0]);
    tg_tensor *y = tg_mul(in[0], in[0]), *z = tg_mul(y, y);
    tg_tape_end(t);
    out[0] = tg_gradient(t, y, in[0]); /* 2x */
    out[1] = tg_gradient(t, z, in[0]); /* 4x^3 */
    tg_tape_free(t);
    return 2;
}

static int stopped(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tape *t = tg_tape_begin();
    tg_watch(t, in[0]);
    tg_tensor *y = tg_mul(in[0], tg_stop_gradient(in[0]));
    tg_tape_end(t);
    out[0] = tg_gradient(t, y, in[0]); /* x: the stopped factor is a constant */
    tg_tape_free(t);
    return 1;
}

static int second_order(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tape *outer = tg_tape_begin(), *inner = tg_tape_begin();
    tg_watch(outer, in[0]);
    tg_watch(inner, in[0]);
    tg_tensor *y = tg_mul(in[0], tg_mul(in[0], in[0]));
    tg_tape_end(inner);
    tg_tensor *dy = tg_gradient(inner, y, in[0]); /* 3x^2, recorded by the outer tape */
    tg_tape_end(outer);
    out[0] = dy;
    out[1] = tg_gradient(outer, dy, in[0]); /* 6x */
    tg_tape_free(inner);
    tg_tape_free(outer);
    return 2;
}

static int unconnected_zeros(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tape *t = tg_tape_begin();
    tg_watch(t, in[0]);
    tg_tensor *y = tg_exp(in[1]); /* not from in[0] */
    tg_tape_end(t);
    int rc = tg_gradients(t, .targets = &y, .n_targets = 1, .sources = in, .n_sources = 1,
                          .unconnected = TG_UNCONNECTED_ZERO, .out = out);
    tg_tape_free(t);
    return rc == 0 ? 1 : -1;
}

static void tape_semantics_traced_equal_eager(void)
{
    tg_function_fn bodies[] = {persistent_twice, stopped, second_order, unconnected_zeros};
    for (int b = 0; b < 4; b++) {
        tg_function *f = tg_function_new(bodies[b], NULL), *e = tg_function_new(bodies[b], NULL, .run_eagerly = true);
        for (int call = 0; call < 3; call++) {
            tg_scope *s = tg_scope_begin();
            double x0 = 0.5 + call, x1 = -1.25 * call;
            tg_tensor *in[2] = {tg_from_f64(TG_SHAPE(2), x0, x1), tg_from_f64(TG_SHAPE(2), 1, 2)};
            tg_tensor *ot[TG_FUNCTION_MAX_OUTPUTS], *oe[TG_FUNCTION_MAX_OUTPUTS];
            int k = tg_function_call(f, in, 2, ot);
            REQUIRE(k > 0 && tg_function_call(e, in, 2, oe) == k);
            for (int i = 0; i < k; i++)
                TENSORS_AGREE(ot[i], oe[i], CHECK_BITS);
            if (b == 0) {
                CHECK_VALUES(ot[0], 1e-15, 2 * x0, 2 * x1);
                CHECK_VALUES(ot[1], 1e-15, 4 * x0 * x0 * x0, 4 * x1 * x1 * x1);
            } else if (b == 1) {
                CHECK_VALUES(ot[0], CHECK_BITS, x0, x1);
            } else if (b == 2) {
                CHECK_VALUES(ot[0], 1e-15, 3 * x0 * x0, 3 * x1 * x1);
                CHECK_VALUES(ot[1], 1e-15, 6 * x0, 6 * x1);
            } else {
                CHECK_VALUES(ot[0], CHECK_BITS, 0, 0);
            }
            tg_scope_end(s);
        }
        CHECK(tg_function_trace_count(f) == 1);
        tg_function_free(f);
        tg_function_free(e);
    }
}

/* ---- random draws: recorded, drawn again at every call ---------------------------------------------- */
static int noisy(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)n;
    out[0] = tg_add(in[0], tg_random_normal(user, TG_F32, TG_SHAPE(3), .stddev = 0.5));
    return 1;
}

static void random_draws_follow_the_eager_stream(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *rt = tg_rng_new(11), *re = tg_rng_new(11);
    tg_function *f = tg_function_new(noisy, rt), *e = tg_function_new(noisy, re, .run_eagerly = true);
    tg_tensor *x = tg_from_f32(TG_SHAPE(3), 1, 2, 3), *ot[TG_FUNCTION_MAX_OUTPUTS], *oe[TG_FUNCTION_MAX_OUTPUTS];
    double first[3] = {0}, later[3] = {0};
    for (int i = 0; i < 4; i++) {
        REQUIRE(tg_function_call(f, &x, 1, ot) == 1 && tg_function_call(e, &x, 1, oe) == 1);
        TENSORS_AGREE(ot[0], oe[0], CHECK_BITS);
        tg_copy_out_f64(ot[0], i == 0 ? first : later, 3);
    }
    CHECK(first[0] != later[0] && first[2] != later[2]); /* a new draw at every call */
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_function_free(e);
    tg_rng_free(rt);
    tg_rng_free(re);
    tg_scope_end(s);
}

/* ---- a model built inside a trace: its variables made once, eagerly ------------------------------------ */
static int call_model(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)n;
    out[0] = tg_model_call(user, in[0]);
    return out[0] ? 1 : -1;
}

static void a_model_built_while_tracing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 3), tg_dense(.units = 2, .activation = TG_TANH));
    REQUIRE(m);
    tg_function *f = tg_function_new(call_model, m);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    for (int i = 0; i < 3; i++) {
        tg_tensor *x = tg_from_f32(TG_SHAPE(1, 3), (float)i, 1, -2);
        REQUIRE(tg_function_call(f, &x, 1, out) == 1); /* the first call builds the Dense layer */
        TENSORS_AGREE(out[0], tg_model_call(m, x), CHECK_BITS);
    }
    int n = 0;
    tg_model_variables(m, &n);
    CHECK(n == 2 && tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- tg_fit's step as a function (Keras's run_eagerly=False) ------------------------------------- */
static tg_model *small_model(bool batch_norm)
{
    tg_model *m =
        batch_norm
            ? tg_sequential_with(tg_sequential_options(.seed = 7),
                                 tg_dense(.units = 8, .activation = TG_TANH, .input_dim = 3), tg_batch_normalization(),
                                 tg_dropout(.rate = 0.25), tg_dense(.units = 3))
            : tg_sequential_with(tg_sequential_options(.seed = 7),
                                 tg_dense(.units = 8, .activation = TG_TANH, .input_dim = 3), tg_dense(.units = 3));
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.02), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                        .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* 50 rows of 3 features, 3 classes: with batch 16 the last batch has 2 rows. */
static void fit_data(tg_tensor **x, tg_tensor **y)
{
    float xs[150];
    int32_t ys[50];
    for (int i = 0; i < 150; i++)
        xs[i] = (float)sin(1.3 * i + 0.2);
    for (int i = 0; i < 50; i++)
        ys[i] = (xs[3 * i] + xs[3 * i + 1] > 0) + (xs[3 * i + 2] > 0.5f);
    *x = tg_tensor_from(TG_F32, TG_SHAPE(50, 3), xs);
    *y = tg_tensor_from(TG_I32, TG_SHAPE(50), ys);
}

static int step_runs;
static int counting_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sw, tg_logs *logs,
                         void *user)
{
    step_runs++; /* C: runs only while tracing */
    return tg_train_step_default(m, x, y, sw, logs, user);
}

static void fit_traced_equals_fit_eager(bool batch_norm)
{
    tg_scope *s = tg_scope_begin();
    warnings_seen = 0;
    tg_set_warning_handler(count_warning, NULL);
    tg_tensor *x, *y;
    fit_data(&x, &y);
    tg_model *me = small_model(batch_norm), *mt = small_model(batch_norm);
    REQUIRE(me && mt);
    tg_history *he =
        tg_fit(me, x, y, .epochs = 4, .batch_size = 16, .seed = 5, .verbose = TG_VERBOSE_SILENT, .run_eagerly = true);
    step_runs = 0;
    tg_history *ht = tg_fit(mt, x, y, .epochs = 4, .batch_size = 16, .seed = 5, .verbose = TG_VERBOSE_SILENT,
                            .train_step = counting_step);
    REQUIRE(he && ht);
    CHECK(step_runs == 1); /* traced once: the last batch of 2 replays the graph (batch dim unknown) */
    CHECK(warnings_seen == 0);
    const char *keys[] = {"loss", "accuracy"};
    for (int k = 0; k < 2; k++) {
        int ne = 0, nt = 0;
        const double *ve = tg_history_get(he, keys[k], &ne), *vt = tg_history_get(ht, keys[k], &nt);
        REQUIRE(ve && vt && ne == 4 && nt == 4);
        for (int e = 0; e < 4; e++)
            CHECK(memcmp(&ve[e], &vt[e], sizeof(double)) == 0);
    }
    int ne = 0, nt = 0;
    tg_tensor *const *ve = tg_model_variables(me, &ne), *const *vt = tg_model_variables(mt, &nt);
    REQUIRE(ne == nt && ne == (batch_norm ? 8 : 4));
    for (int i = 0; i < ne; i++)
        TENSORS_AGREE(vt[i], ve[i], CHECK_BITS);
    const double *loss = tg_history_get(ht, "loss", NULL);
    CHECK(loss[3] < loss[0]); /* it trained */
    tg_history_free(he);
    tg_history_free(ht);
    tg_model_free(me);
    tg_model_free(mt);
    tg_set_warning_handler(NULL, NULL);
    tg_scope_end(s);
}

static void fit_traces_its_step_with_the_same_results(void) { fit_traced_equals_fit_eager(false); }
static void fit_traces_batch_normalization_and_dropout(void) { fit_traced_equals_fit_eager(true); }

/* Gradient accumulation over 3 steps in graph mode: the graph adds every step's gradients
 * and applies (then clears) their mean only at each third call, decided at replay from the
 * optimizer's count, so the traced fit gives the eager one's bits; the weights change only
 * at the windows' last steps, and the applied updates (iterations / 3) advance there. */
enum { ACC_STEPS = 3, ACC_BATCHES = 8 };
typedef struct acc_notes {
    int n;
    int64_t iterations[ACC_BATCHES];
    float kernel[ACC_BATCHES][24]; /* the first layer's kernel (3 x 8) */
} acc_notes;

static int note_accumulation(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    acc_notes *a = cb->user;
    (void)batch, (void)logs;
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    if (a->n < ACC_BATCHES && n > 0 && tg_copy_out(vars[0], a->kernel[a->n], sizeof a->kernel[0]) == 0)
        a->iterations[a->n++] = tg_optimizer_iterations(tg_model_optimizer(m));
    return 0;
}

static tg_model *accumulating_model(void)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 7),
                                     tg_dense(.units = 8, .activation = TG_TANH, .input_dim = 3), tg_dense(.units = 3));
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.02, .gradient_accumulation_steps = ACC_STEPS),
                        .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
                        .metrics = TG_METRICS(TG_ACCURACY)) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

static void fit_traces_gradient_accumulation(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    fit_data(&x, &y); /* 50 rows in batches of 16: 4 steps an epoch, the last of 2 rows */
    tg_model *me = accumulating_model(), *mt = accumulating_model();
    REQUIRE(me && mt);
    acc_notes ne = {0}, nt = {0};
    tg_callback ce = {.on_batch_end = note_accumulation, .user = &ne};
    tg_callback ct = {.on_batch_end = note_accumulation, .user = &nt};
    tg_callback *cbe = &ce, *cbt = &ct;
    tg_history *he = tg_fit(me, x, y, .epochs = 2, .batch_size = 16, .seed = 5, .verbose = TG_VERBOSE_SILENT,
                            .run_eagerly = true, .callbacks = &cbe, .n_callbacks = 1);
    step_runs = 0;
    tg_history *ht = tg_fit(mt, x, y, .epochs = 2, .batch_size = 16, .seed = 5, .verbose = TG_VERBOSE_SILENT,
                            .train_step = counting_step, .callbacks = &cbt, .n_callbacks = 1);
    REQUIRE(he && ht);
    CHECK(step_runs == 1); /* the batches of 2 replay the graph of 16: its batch dim is unknown */
    REQUIRE(ne.n == ACC_BATCHES && nt.n == ACC_BATCHES);
    CHECK(memcmp(ne.kernel, nt.kernel, sizeof ne.kernel) == 0);
    CHECK(memcmp(ne.iterations, nt.iterations, sizeof ne.iterations) == 0);
    for (int b = 1; b < ACC_BATCHES; b++) { /* step b + 1 */
        bool boundary = (b + 1) % ACC_STEPS == 0;
        CHECK(nt.iterations[b] == b + 1);
        CHECK(nt.iterations[b] / ACC_STEPS == (b + 1) / ACC_STEPS);
        CHECK((memcmp(nt.kernel[b], nt.kernel[b - 1], sizeof nt.kernel[b]) != 0) == boundary);
    }
    const char *keys[] = {"loss", "accuracy"};
    for (int k = 0; k < 2; k++) {
        int n1 = 0, n2 = 0;
        const double *ve = tg_history_get(he, keys[k], &n1), *vt = tg_history_get(ht, keys[k], &n2);
        REQUIRE(ve && vt && n1 == 2 && n2 == 2);
        CHECK(memcmp(ve, vt, sizeof(double) * 2) == 0);
    }
    int n1 = 0, n2 = 0;
    tg_tensor *const *ve = tg_model_variables(me, &n1), *const *vt = tg_model_variables(mt, &n2);
    REQUIRE(n1 == n2 && n1 == 4);
    for (int i = 0; i < n1; i++)
        TENSORS_AGREE(vt[i], ve[i], CHECK_BITS);
    tg_optimizer *oe = tg_model_optimizer(me), *ot = tg_model_optimizer(mt);
    CHECK(tg_optimizer_iterations(ot) == ACC_BATCHES && tg_optimizer_iterations(oe) == ACC_BATCHES);
    REQUIRE(tg_optimizer_state_count(ot) == tg_optimizer_state_count(oe));
    for (int i = 0; i < tg_optimizer_state_count(ot); i++) { /* Adam's moments and the accumulators */
        tg_optimizer_slot a, b;
        REQUIRE(tg_optimizer_state(oe, i, &a) == 0 && tg_optimizer_state(ot, i, &b) == 0);
        CHECK(a.count == b.count && memcmp(a.data, b.data, (size_t)a.count * tg_dtype_size(a.dtype)) == 0);
    }
    tg_history_free(he);
    tg_history_free(ht);
    tg_model_free(me);
    tg_model_free(mt);
    tg_scope_end(s);
}

static int step_read_line, reading_steps;
static int reading_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sw, tg_logs *logs,
                        void *user)
{
    reading_steps++;
    int rc = tg_train_step_default(m, x, y, sw, logs, user);
    step_read_line = __LINE__ + 1;
    double first = tg_item(tg_max(x)); /* a value read in C: the step cannot be a graph */
    return rc == 0 && first == first ? 0 : -1;
}

static void a_step_that_reads_values_runs_eagerly_with_a_note(void)
{
    tg_scope *s = tg_scope_begin();
    warnings_seen = 0;
    tg_set_warning_handler(count_warning, NULL);
    tg_tensor *x, *y;
    fit_data(&x, &y);
    tg_model *me = small_model(false), *mt = small_model(false);
    REQUIRE(me && mt);
    tg_history *he = tg_fit(me, x, y, .epochs = 2, .batch_size = 16, .verbose = TG_VERBOSE_SILENT,
                            .train_step = reading_step, .run_eagerly = true);
    CHECK(warnings_seen == 0);
    reading_steps = 0;
    tg_history *ht =
        tg_fit(mt, x, y, .epochs = 2, .batch_size = 16, .verbose = TG_VERBOSE_SILENT, .train_step = reading_step);
    REQUIRE(he && ht);
    CHECK(reading_steps == 8); /* every step ran its C */
    CHECK(warnings_seen == 1);
    char where[64];
    snprintf(where, sizeof where, "tg_item at %s:%d", __FILE__, step_read_line);
    CHECK(strstr(last_warning, where) && strstr(last_warning, "runs eagerly"));
    int n = 0;
    tg_tensor *const *ve = tg_model_variables(me, &n), *const *vt = tg_model_variables(mt, &n);
    for (int i = 0; i < n; i++)
        TENSORS_AGREE(vt[i], ve[i], CHECK_BITS);
    tg_history_free(he);
    tg_history_free(ht);
    tg_model_free(me);
    tg_model_free(mt);
    tg_set_warning_handler(NULL, NULL);
    tg_scope_end(s);
}

int main(void)
{
    RUN(replay_gives_new_values_without_running_c);
    RUN(run_eagerly_runs_c_every_time);
    RUN(many_retraces_warn_once);
    RUN(variables_are_captured_by_reference);
    RUN(reading_a_value_while_tracing_is_refused);
    RUN(print_is_recorded_and_prints_at_every_call);
    RUN(outputs_must_keep_count_and_dtype);
    RUN(training_steps_traced_equal_eager_bitwise);
    RUN(a_read_kept_by_a_tape_survives_a_later_assign);
    RUN(buffers_are_reused_and_replay_allocates_nothing);
    RUN(bad_calls_are_errors);
    RUN(a_replay_fails_where_its_kernel_fails);
    RUN(a_missing_gradient_is_reported_once_while_tracing);
    RUN(tape_semantics_traced_equal_eager);
    RUN(fit_traces_its_step_with_the_same_results);
    RUN(fit_traces_batch_normalization_and_dropout);
    RUN(fit_traces_gradient_accumulation);
    RUN(random_draws_follow_the_eager_stream);
    RUN(a_model_built_while_tracing);
    RUN(a_step_that_reads_values_runs_eagerly_with_a_note);
    return TEST_SUMMARY();
}
