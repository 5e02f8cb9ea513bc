/* Graph mode's unknown batch dimension (TF's None): a partial last batch replays the graph
 * traced for the full batches, with the bits of eager mode; a graph that bakes the batch
 * size in (a C number from tg_dim, a literal target, a constant of that shape) retraces
 * instead; .exact_shapes and inputs that do not share dim 0 keep exact signatures. The
 * references are eager runs (run_eagerly) of the same code, which never trace. */
#include "check.h"
#include "malloc_count.h"

enum { ROWS = 50, BATCH = 16, EPOCHS = 3 }; /* the last batch of each epoch has 2 rows */

static int step_runs; /* C in a step runs only while tracing */

static int counting_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sw, tg_logs *logs,
                         void *user)
{
    step_runs++;
    return tg_train_step_default(m, x, y, sw, logs, user);
}

static int counting_step_list(tg_model *m, tg_tensor *const *xs, int nx, tg_tensor *const *ys, int ny,
                              const tg_tensor *sw, tg_logs *logs, void *user)
{
    step_runs++;
    return tg_train_step_list_default(m, xs, nx, ys, ny, sw, logs, user);
}

/* Written as users write one: a tape, a loss, its gradient, the update; no value read. */
static int users_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sw, tg_logs *logs,
                      void *user)
{
    (void)sw, (void)logs, (void)user;
    step_runs++;
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_mean(tg_square(tg_sub(pred, y)));
    tg_tape_end(tape);
    tg_tensor *grads[8];
    int rc = n <= 8
                 ? tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads)
                 : -1;
    tg_tape_free(tape);
    return rc == 0 ? tg_apply_gradients(tg_model_optimizer(m), grads, vars, n) : -1;
}

/* ---- data ------------------------------------------------------------------------------------ */
static float wave(int i) { return (float)sin(0.7 * i + 0.3); }

static tg_tensor *features(int width)
{
    float *v = malloc(sizeof *v * ROWS * (size_t)width);
    for (int i = 0; i < ROWS * width; i++)
        v[i] = wave(i);
    tg_tensor *t = tg_tensor_from(TG_F32, TG_SHAPE(ROWS, width), v);
    free(v);
    return t;
}

static tg_tensor *binary_labels(const tg_tensor *x)
{
    float v[ROWS];
    for (int i = 0; i < ROWS; i++)
        v[i] = wave(4 * i) + wave(4 * i + 1) > 0.2f;
    (void)x;
    return tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 1), v);
}

/* ---- traced fit against eager fit ------------------------------------------------------------ */
typedef tg_model *(*make_fn)(void);
typedef tg_history *(*fit_fn)(tg_model *m, bool eager);

static void same_history(const tg_history *he, const tg_history *ht)
{
    REQUIRE(tg_history_n_keys(he) == tg_history_n_keys(ht) && tg_history_n_keys(he) > 0);
    for (int k = 0; k < tg_history_n_keys(he); k++) {
        const char *key = tg_history_key(he, k);
        int ne = 0, nt = 0;
        const double *ve = tg_history_get(he, key, &ne), *vt = tg_history_get(ht, key, &nt);
        REQUIRE(ve && vt && ne == EPOCHS && nt == EPOCHS);
        for (int e = 0; e < EPOCHS; e++) {
            CHECK(memcmp(&ve[e], &vt[e], sizeof(double)) == 0);
            if (memcmp(&ve[e], &vt[e], sizeof(double)) != 0)
                printf("    %s[%d]: eager %.17g, traced %.17g\n", key, e, ve[e], vt[e]);
        }
    }
}

static void traced_fit_equals_eager(make_fn make, fit_fn fit, bool has_history)
{
    tg_scope *s = tg_scope_begin();
    tg_model *me = make(), *mt = make();
    REQUIRE(me && mt);
    tg_history *he = fit(me, true);
    step_runs = 0;
    tg_history *ht = fit(mt, false);
    REQUIRE(he && ht);
    CHECK(step_runs == 1); /* traced for the batches of 16; the last batches of 2 replay it */
    if (has_history)
        same_history(he, ht);
    int ne = 0, nt = 0;
    tg_tensor *const *ve = tg_model_variables(me, &ne), *const *vt = tg_model_variables(mt, &nt);
    REQUIRE(ne == nt && ne > 0);
    for (int i = 0; i < ne; i++)
        TENSORS_AGREE(vt[i], ve[i], CHECK_BITS);
    tg_history_free(he);
    tg_history_free(ht);
    tg_model_free(me);
    tg_model_free(mt);
    tg_scope_end(s);
}

/* An MLP with BatchNormalization and Dropout, sample and class weights, and the metrics
 * whose states count rows (accuracy, precision, recall, AUC). */
static tg_model *mlp(void)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 11),
                                     tg_dense(.units = 8, .activation = TG_TANH, .input_dim = 4),
                                     tg_batch_normalization(), tg_dropout(.rate = 0.25), tg_dense(.units = 1));
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.02), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                        .from_logits = true,
                        .metrics = TG_METRICS(TG_ACCURACY, TG_METRIC_PRECISION, TG_METRIC_RECALL, TG_METRIC_AUC)) != 0)
        return tg_model_free(m), NULL;
    return m;
}

static tg_history *fit_mlp(tg_model *m, bool eager)
{
    tg_tensor *x = features(4), *y = binary_labels(x);
    float w[ROWS];
    for (int i = 0; i < ROWS; i++)
        w[i] = 0.5f + (float)(i % 3);
    static const double class_weight[] = {1.0, 2.5};
    return tg_fit(m, x, y, .epochs = EPOCHS, .batch_size = BATCH, .seed = 5, .verbose = TG_VERBOSE_SILENT,
                  .sample_weight = tg_tensor_from(TG_F32, TG_SHAPE(ROWS), w), .class_weight = class_weight,
                  .n_class_weight = 2, .run_eagerly = eager, .train_step = counting_step);
}

static void an_mlp_with_weights_and_metrics(void) { traced_fit_equals_eager(mlp, fit_mlp, true); }

/* An unmasked LSTM (one lstm_sequence op over the sequence) read backwards, then Dense. */
static tg_model *unmasked_sequences(void)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 4),
                                     tg_lstm(.units = 5, .go_backwards = true, .input_shape = TG_SHAPE(6, 3)),
                                     tg_dense(.units = 2));
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_MSE,
                        .metrics = TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR)) != 0)
        return tg_model_free(m), NULL;
    return m;
}

static tg_history *fit_unmasked(tg_model *m, bool eager)
{
    float x[ROWS * 6 * 3], y[ROWS * 2];
    for (int i = 0; i < ROWS * 6 * 3; i++)
        x[i] = wave(i);
    for (int i = 0; i < ROWS * 2; i++)
        y[i] = wave(3 * i + 1);
    return tg_fit(m, tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 6, 3), x), tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 2), y),
                  .epochs = EPOCHS, .batch_size = BATCH, .seed = 2, .verbose = TG_VERBOSE_SILENT, .run_eagerly = eager,
                  .train_step = counting_step);
}

static void an_unmasked_lstm(void) { traced_fit_equals_eager(unmasked_sequences, fit_unmasked, true); }

/* Embedding(mask_zero) then LSTM: the mask weighs the loss by the valid steps. */
static tg_model *masked_sequences(void)
{
    tg_model *m =
        tg_sequential_with(tg_sequential_options(.seed = 3),
                           tg_embedding(.input_dim = 10, .output_dim = 4, .mask_zero = true, .input_length = 6),
                           tg_lstm(.units = 5, .return_sequences = true), tg_dense(.units = 1));
    if (m && tg_compile(m, .optimizer = tg_rmsprop(.learning_rate = 0.01), .loss = TG_LOSS_MSE,
                        .metrics = TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR)) != 0)
        return tg_model_free(m), NULL;
    return m;
}

static tg_history *fit_masked(tg_model *m, bool eager)
{
    int32_t ids[ROWS * 6];
    float y[ROWS * 6];
    for (int i = 0; i < ROWS; i++)
        for (int t = 0; t < 6; t++) {
            bool pad = t >= 2 + i % 4; /* 2 to 5 valid steps, then padding */
            ids[i * 6 + t] = pad ? 0 : 1 + (i * 7 + t * 3) % 9;
            y[i * 6 + t] = wave(i * 6 + t);
        }
    return tg_fit(m, tg_tensor_from(TG_I32, TG_SHAPE(ROWS, 6), ids), tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 6, 1), y),
                  .epochs = EPOCHS, .batch_size = BATCH, .seed = 9, .verbose = TG_VERBOSE_SILENT, .run_eagerly = eager,
                  .train_step = counting_step);
}

static void a_masked_sequence_model(void) { traced_fit_equals_eager(masked_sequences, fit_masked, true); }

/* Conv2D then Flatten (a reshape whose target's batch dim follows its input's). */
static tg_model *convnet(void)
{
    tg_model *m = tg_sequential_with(
        tg_sequential_options(.seed = 5),
        tg_conv2d_layer(.filters = 3, .kernel_size = {3, 3}, .activation = TG_RELU, .input_shape = TG_SHAPE(6, 6, 1)),
        tg_flatten(), tg_dense(.units = 3));
    if (m && tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.05, .momentum = 0.9),
                        .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
                        .metrics = TG_METRICS(TG_ACCURACY)) != 0)
        return tg_model_free(m), NULL;
    return m;
}

static tg_history *fit_convnet(tg_model *m, bool eager)
{
    float x[ROWS * 36];
    int32_t y[ROWS];
    for (int i = 0; i < ROWS * 36; i++)
        x[i] = wave(i);
    for (int i = 0; i < ROWS; i++)
        y[i] = (x[i * 36] > 0) + (x[i * 36 + 7] > 0.5f);
    return tg_fit(m, tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 6, 6, 1), x), tg_tensor_from(TG_I32, TG_SHAPE(ROWS), y),
                  .epochs = EPOCHS, .batch_size = BATCH, .seed = 2, .verbose = TG_VERBOSE_SILENT, .run_eagerly = eager,
                  .train_step = counting_step);
}

static void a_convolutional_model(void) { traced_fit_equals_eager(convnet, fit_convnet, true); }

/* Two inputs, two outputs (a functional model, its data as lists). */
static tg_model *two_by_two(void)
{
    tg_keras_tensor *a = tg_input(TG_SHAPE(3), .name = "a"), *b = tg_input(TG_SHAPE(2), .name = "b");
    tg_keras_tensor *h =
        tg_layer_apply(tg_dense(.units = 4, .activation = TG_TANH), tg_layer_apply(tg_concatenate(), a, b));
    tg_keras_tensor *o1 = tg_layer_apply(tg_dense(.units = 1, .name = "o1"), h);
    tg_keras_tensor *o2 = tg_layer_apply(tg_dense(.units = 2, .name = "o2"), h);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(o1, o2), .seed = 21);
    static const tg_loss losses[] = {{.kind = TG_LOSS_MSE},
                                     {.kind = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true}};
    static const double weights[] = {1.0, 0.5};
    const tg_metric_list metrics[] = {TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR), TG_METRICS(TG_ACCURACY)};
    if (m &&
        tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .losses = losses, .n_losses = 2,
                   .loss_weights = weights, .n_loss_weights = 2, .output_metrics = metrics, .n_output_metrics = 2) != 0)
        return tg_model_free(m), NULL;
    return m;
}

static tg_history *fit_two_by_two(tg_model *m, bool eager)
{
    tg_tensor *a = features(3), *b = tg_mul(features(2), tg_scalar(0.5));
    float y1[ROWS];
    int32_t y2[ROWS];
    for (int i = 0; i < ROWS; i++) {
        y1[i] = wave(3 * i) - wave(3 * i + 2);
        y2[i] = wave(3 * i + 1) > 0;
    }
    const tg_tensor *in[] = {a, b};
    const tg_tensor *out[] = {tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 1), y1),
                              tg_tensor_from(TG_I32, TG_SHAPE(ROWS), y2)};
    return tg_fit(m, NULL, NULL, .inputs = in, .n_inputs = 2, .targets = out, .n_targets = 2, .epochs = EPOCHS,
                  .batch_size = BATCH, .seed = 4, .verbose = TG_VERBOSE_SILENT, .run_eagerly = eager,
                  .train_step_list = counting_step_list);
}

static void a_model_of_two_inputs_and_two_outputs(void) { traced_fit_equals_eager(two_by_two, fit_two_by_two, true); }

static tg_model *regression(void)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 8),
                                     tg_dense(.units = 6, .activation = TG_RELU, .input_dim = 4), tg_dense(.units = 1));
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_MSE) != 0)
        return tg_model_free(m), NULL;
    return m;
}

static tg_history *fit_users_step(tg_model *m, bool eager)
{
    tg_tensor *x = features(4);
    return tg_fit(m, x, binary_labels(x), .epochs = EPOCHS, .batch_size = BATCH, .seed = 6,
                  .verbose = TG_VERBOSE_SILENT, .run_eagerly = eager, .train_step = users_step);
}

static void a_custom_step_written_as_users_do(void) { traced_fit_equals_eager(regression, fit_users_step, false); }

/* ---- functions of the user's ----------------------------------------------------------------- */
static int c_runs;

/* mean of squares over the batch, its divisor a C number from the batch size */
static int per_row_from_tg_dim(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    double rows = (double)tg_dim(in[0], 0);
    out[0] = tg_div(tg_sum(tg_square(in[0])), tg_scalar(rows));
    return 1;
}

/* a C number from the feature dim, not the batch: the graph keeps an unknown batch dim */
static int per_feature_from_tg_dim(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    out[0] = tg_div(tg_square(in[0]), tg_scalar((double)tg_dim(in[0], -1)));
    return 1;
}

/* the same with ops only */
static int per_row_from_ops(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    out[0] = tg_sum(tg_mean(tg_square(in[0]), .axes = TG_AXES(0)));
    return 1;
}

/* a reshape target computed in C from the shape */
static int target_from_tg_shape_of(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    tg_shape s = tg_shape_of(in[0]);
    out[0] = tg_cumsum(tg_reshape(in[0], TG_SHAPE(s.dims[0] * s.dims[1])));
    return 1;
}

/* a constant whose shape holds the traced batch size (8): the same at any batch size
 * here, but a library's constant of that shape could hold a count, so the guard retraces */
static int constant_of_the_batch(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    out[0] = tg_add(tg_sum(in[0]), tg_sum(tg_fill(TG_F32, TG_SHAPE(8), 1.0)));
    return 1;
}

/* a batch jacobian: the library seeds each row's unit vectors in C */
static int batch_jacobian_of_tanh(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_watch(tape, in[0]);
    tg_tensor *y = tg_tanh(tg_mul(in[0], in[0]));
    tg_tape_end(tape);
    out[0] = tg_batch_jacobian(tape, y, in[0]);
    tg_tape_free(tape);
    return 1;
}

static tg_tensor *rows_of(int rows, float offset)
{
    float v[8 * 3];
    for (int i = 0; i < rows * 3; i++)
        v[i] = wave(i) + offset;
    return tg_tensor_from(TG_F32, TG_SHAPE(rows, 3), v);
}

/* Calls at batch sizes 8, 8, 3, 8, 3; each result against the function run eagerly. */
static void calls_agree_with_eager(tg_function_fn fn, tg_function_opts o, int traces)
{
    tg_scope *s = tg_scope_begin();
    o.name = "f";
    tg_function *f = tg_function_new_at(TG_LOC, fn, NULL, o);
    o.run_eagerly = true;
    tg_function *e = tg_function_new_at(TG_LOC, fn, NULL, o);
    static const int rows[] = {8, 8, 3, 8, 3};
    c_runs = 0;
    for (int k = 0; k < 5; k++) {
        tg_tensor *x = rows_of(rows[k], 0.1f * (float)k), *ot[TG_FUNCTION_MAX_OUTPUTS], *oe[TG_FUNCTION_MAX_OUTPUTS];
        REQUIRE(tg_function_call(f, &x, 1, ot) == 1 && tg_function_call(e, &x, 1, oe) == 1);
        TENSORS_AGREE(ot[0], oe[0], CHECK_BITS);
    }
    CHECK(tg_function_trace_count(f) == traces);
    CHECK(c_runs == traces + 5); /* the eager one runs its C at every call */
    tg_function_free(f);
    tg_function_free(e);
    tg_scope_end(s);
}

static void a_partial_batch_replays(void) { calls_agree_with_eager(per_row_from_ops, (tg_function_opts){0}, 1); }

static void a_c_number_from_tg_dim_retraces(void)
{
    calls_agree_with_eager(per_row_from_tg_dim, (tg_function_opts){0}, 2);
}

static void a_c_number_from_the_feature_dim_replays(void)
{
    calls_agree_with_eager(per_feature_from_tg_dim, (tg_function_opts){0}, 1);
}

static void a_target_from_tg_shape_of_retraces(void)
{
    calls_agree_with_eager(target_from_tg_shape_of, (tg_function_opts){0}, 2);
}

static void a_constant_of_the_batch_shape_retraces(void)
{
    calls_agree_with_eager(constant_of_the_batch, (tg_function_opts){0}, 2);
}

static void a_batch_jacobian_agrees(void)
{
    calls_agree_with_eager(batch_jacobian_of_tanh, (tg_function_opts){0}, 2); /* its seeds are constants */
}

static void exact_shapes_retrace(void)
{
    calls_agree_with_eager(per_row_from_ops, (tg_function_opts){.exact_shapes = true}, 2);
}

static int matmul_sum(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    c_runs++;
    out[0] = tg_sum(tg_matmul(in[0], in[1]));
    return 1;
}

/* x (rows, 3) and w (3, 2) share no dim 0 (4 and 2 rows against 3): the signature is exact. */
static void inputs_without_a_shared_dim_0_keep_exact_signatures(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(matmul_sum, NULL);
    tg_tensor *w = tg_from_f32(TG_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, (tg_tensor *[]){rows_of(4, 0), w}, 2, out) == 1);
    REQUIRE(tg_function_call(f, (tg_tensor *[]){rows_of(2, 0), w}, 2, out) == 1);
    CHECK(tg_function_trace_count(f) == 2);
    float r[2 * 3];
    for (int i = 0; i < 6; i++)
        r[i] = wave(i);
    double want = 0; /* sum(x w) = sum over rows of x . (w's row sums) */
    for (int i = 0; i < 2; i++)
        want += (double)r[3 * i] * 3 + (double)r[3 * i + 1] * 7 + (double)r[3 * i + 2] * 11;
    CHECK(fabs(tg_item(out[0]) - want) < 1e-5);
    tg_function_free(f);
    tg_scope_end(s);
}

/* After one call at each size, switching sizes allocates nothing; the stats stay the traced
 * batch size's plan. */
static void switching_batch_sizes_allocates_nothing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(per_row_from_ops, NULL);
    tg_tensor *x8 = rows_of(8, 0), *x3 = rows_of(3, 0), *out[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, &x8, 1, out) == 1);
    tg_function_stats before = tg_function_get_stats(f);
    REQUIRE(tg_function_call(f, &x3, 1, out) == 1);
    REQUIRE(tg_function_call(f, &x8, 1, out) == 1);
    tg_function_stats after = tg_function_get_stats(f);
    CHECK(before.traces == 1 && after.traces == 1);
    CHECK(after.buffer_bytes == before.buffer_bytes && after.value_bytes == before.value_bytes);
    CHECK(before.value_bytes >= 8 * 3 * sizeof(float)); /* the squares of the traced batch */
#ifdef MALLOC_CAN_COUNT
    tg_scope *inner = tg_scope_begin();
    REQUIRE(tg_function_call(f, &x8, 1, out) == 1); /* warms the scope's arena */
    REQUIRE(tg_function_call(f, &x3, 1, out) == 1);
    malloc_count_start();
    for (int k = 0; k < 4; k++)
        tg_function_call(f, k % 2 ? &x3 : &x8, 1, out);
    malloc_count_stop();
    CHECK(malloc_calls == 0);
    tg_scope_end(inner);
#endif
    tg_function_free(f);
    tg_scope_end(s);
}

int main(void)
{
    RUN(an_unmasked_lstm);
    RUN(a_partial_batch_replays);
    RUN(a_c_number_from_tg_dim_retraces);
    RUN(a_c_number_from_the_feature_dim_replays);
    RUN(a_target_from_tg_shape_of_retraces);
    RUN(a_constant_of_the_batch_shape_retraces);
    RUN(a_batch_jacobian_agrees);
    RUN(exact_shapes_retrace);
    RUN(inputs_without_a_shared_dim_0_keep_exact_signatures);
    RUN(switching_batch_sizes_allocates_nothing);
    RUN(an_mlp_with_weights_and_metrics);
    RUN(a_masked_sequence_model);
    RUN(a_convolutional_model);
    RUN(a_model_of_two_inputs_and_two_outputs);
    RUN(a_custom_step_written_as_users_do);
    return TEST_SUMMARY();
}
