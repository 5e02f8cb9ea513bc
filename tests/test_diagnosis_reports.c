/* The missing-gradient diagnosis on programs ported from public bug reports about "No
 * gradients provided for any variable" and "tape.gradient returns None", written apart
 * from the diagnosis and against its public API only.
 *
 * Each case is written the way its reporter wrote it (their structure, names, helpers,
 * order of statements), with the mistake left in. The line the user must change is marked
 * by `exp_line = __LINE__ + 1` written on the line before it; the expected cause is given to
 * report(). Four correct programs must get every gradient with no warning under
 * TG_CHECK_EAGER. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tapegrad.h>

/* ---- harness ------------------------------------------------------------------------ */
static int exp_line;
static int n_warn;
static char first_warn[1024];
static int n_pass, n_fail, n_ok_pass, n_ok_fail;

static void on_warning(const char *message, void *user)
{
    (void)user;
    if (n_warn == 0)
        snprintf(first_warn, sizeof first_warn, "%s", message);
    n_warn++;
}

static void begin_case(void)
{
    exp_line = 0;
    n_warn = 0;
    first_warn[0] = '\0';
    tg_clear_error();
    tg_clear_warning();
}

static const char *base(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : (path ? path : "(null)");
}

static void report(const char *name, const char *source, tg_cause want, int want_line, int rc, const tg_diagnosis *d)
{
    bool ok = rc == 0 && d->cause == want && d->where.line == want_line && d->where.file &&
              strstr(d->where.file, "test_diagnosis_reports.c");
    printf("%-26s want %s@%d  got %s@%s:%d  %s  [warnings %d]\n", name, tg_cause_name(want), want_line,
           tg_cause_name(d->cause), base(d->where.file), d->where.line, ok ? "PASS" : "FAIL", n_warn);
    printf("    source: %s\n    message: %s\n", source, d->message);
    if (n_warn)
        printf("    first warning: %s\n", first_warn);
    if (ok)
        n_pass++;
    else
        n_fail++;
}

static void report_ok(const char *name, const char *source, bool got_all)
{
    bool ok = got_all && n_warn == 0 && !tg_has_error();
    printf("%-26s want gradients, 0 warnings  got %s, %d warnings  %s\n", name, got_all ? "gradients" : "MISSING",
           n_warn, ok ? "PASS" : "FAIL");
    printf("    source: %s\n", source);
    if (n_warn)
        printf("    first warning: %s\n", first_warn);
    if (tg_has_error())
        printf("    error: %s\n", tg_last_error());
    if (ok)
        n_ok_pass++;
    else
        n_ok_fail++;
}

static tg_tensor *find_var(tg_tensor *const *vars, int n, const char *needle)
{
    for (int i = 0; i < n; i++)
        if (strstr(tg_variable_name(vars[i]), needle))
            return vars[i];
    return NULL;
}

/* ==== class 1: values copied out and rebuilt inside the tape ========================= */

/* tensorflow/tensorflow#31919: a GAN in 50 lines ported to TF 2; the generator's output is
 * turned into numpy to compute its moments before the discriminator sees it. */
static void get_moments(const float *d, int n, float out[4])
{
    double mean = 0, var = 0, skew = 0, kurt = 0;
    for (int i = 0; i < n; i++)
        mean += d[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (d[i] - mean) * (d[i] - mean);
    var /= n;
    double std = sqrt(var) + 1e-8;
    for (int i = 0; i < n; i++) {
        double z = (d[i] - mean) / std;
        skew += z * z * z;
        kurt += z * z * z * z;
    }
    out[0] = (float)mean;
    out[1] = (float)std;
    out[2] = (float)(skew / n);
    out[3] = (float)(kurt / n - 3.0);
}

static void case_gan_numpy_moments(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(1);
    tg_model *G = tg_sequential(tg_dense(.units = 5, .activation = TG_ELU, .input_dim = 1),
                                tg_dense(.units = 5, .activation = TG_ELU), tg_dense(.units = 1));
    tg_model *D =
        tg_sequential(tg_dense(.units = 10, .activation = TG_ELU, .input_dim = 4),
                      tg_dense(.units = 10, .activation = TG_ELU), tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_optimizer *g_optimizer = tg_sgd(.learning_rate = 1e-3, .momentum = 0.9);
    tg_tensor *gen_input = tg_random_uniform(rng, TG_F32, TG_SHAPE(100, 1));

    tg_tape *tape = tg_tape_begin();
    tg_tensor *g_fake_data = tg_model_call(G, gen_input, .training = true);
    float fake_np[100];
    exp_line = __LINE__ + 1;
    tg_copy_out(g_fake_data, fake_np, sizeof fake_np);
    float moments[4];
    get_moments(fake_np, 100, moments);
    tg_tensor *dg_fake_decision = tg_model_call(D, tg_tensor_from(TG_F32, TG_SHAPE(1, 4), moments), .training = true);
    tg_tensor *g_error = tg_mean(tg_binary_crossentropy(tg_ones(TG_F32, TG_SHAPE(1, 1)), dg_fake_decision));
    tg_tape_end(tape);

    int n;
    tg_tensor *const *g_vars = tg_model_trainable_variables(G, &n);
    tg_tensor *grads[16] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){g_error}, .n_targets = 1, .sources = g_vars, .n_sources = n,
                 .out = grads);
    tg_apply_gradients(g_optimizer, grads, g_vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(g_vars[0], &d);
    report("gan_numpy_moments", "https://github.com/tensorflow/tensorflow/issues/31919", TG_CAUSE_COPIED_OUT, exp_line,
           rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(g_optimizer);
    tg_model_free(G);
    tg_model_free(D);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#36596 (swaroop-nath): "In my case, I was using a custom loss
 * function which converted the predicted values to numpy arrays for computations." */
static tg_tensor *weighted_loss(const tg_tensor *y_true, const tg_tensor *y_pred)
{
    float pred[8], truth[8];
    exp_line = __LINE__ + 1;
    tg_copy_out(y_pred, pred, sizeof pred);
    tg_copy_out(y_true, truth, sizeof truth);
    float total = 0;
    for (int i = 0; i < 8; i++) {
        float w = truth[i] > 0.5f ? 2.0f : 1.0f;
        total += w * (pred[i] - truth[i]) * (pred[i] - truth[i]);
    }
    return tg_scalar(total / 8);
}

static void case_custom_loss_numpy(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(2);
    tg_model *model = tg_sequential(tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 4),
                                    tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_optimizer *optimizer = tg_adam();
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(8, 4));
    tg_tensor *y = tg_from_f32(TG_SHAPE(8, 1), 1, 0, 1, 0, 0, 1, 1, 0);

    tg_tape *tape = tg_tape_begin();
    tg_tensor *logits = tg_model_call(model, x, .training = true);
    tg_tensor *loss_value = weighted_loss(y, logits);
    tg_tape_end(tape);
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[8] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss_value}, .n_targets = 1, .sources = vars, .n_sources = n,
                 .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[0], &d);
    report("custom_loss_numpy", "https://github.com/tensorflow/tensorflow/issues/36596", TG_CAUSE_COPIED_OUT, exp_line,
           rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#47288: train_step runs the rollout through tf.numpy_function
 * (np_train_step calls the model and hands numpy arrays back), then builds the losses
 * from the returned arrays inside the tape. */
typedef struct Agent {
    tg_model *model;
    tg_tensor *states;
    int n_actions;
} Agent;

static void np_train_step(Agent *self, float *rewards, float *value_logits, float *actor_logits)
{
    tg_tensor *out = tg_model_call(self->model, self->states, .training = true);
    float buf[4 * 6];
    exp_line = __LINE__ + 1;
    tg_copy_out(out, buf, sizeof buf);
    for (int i = 0; i < 4; i++) {
        rewards[i] = 1.0f - 0.25f * (float)i;
        for (int a = 0; a < 3; a++) {
            actor_logits[i * 3 + a] = buf[i * 6 + a];
            value_logits[i * 3 + a] = buf[i * 6 + 3 + a];
        }
    }
}

static void case_numpy_function_rollout(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(3);
    Agent self = {
        .model = tg_sequential(tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 5), tg_dense(.units = 6)),
        .states = tg_random_normal(rng, TG_F32, TG_SHAPE(4, 5)),
        .n_actions = 3,
    };
    tg_optimizer *optimizer = tg_adam(.learning_rate = 7e-4);

    tg_tape *tape = tg_tape_begin();
    float rewards[4], value_logits[12], actor_logits[12];
    np_train_step(&self, rewards, value_logits, actor_logits);
    tg_tensor *action_probs = tg_softmax(tg_tensor_from(TG_F32, TG_SHAPE(4, 3), actor_logits), -1);
    tg_tensor *values =
        tg_sum(tg_mul(action_probs, tg_tensor_from(TG_F32, TG_SHAPE(4, 3), value_logits)), .axes = TG_AXES(-1));
    tg_tensor *returns = tg_tensor_from(TG_F32, TG_SHAPE(4), rewards);
    tg_tensor *advantages = tg_sub(returns, values);
    tg_tensor *loss = tg_mean(tg_square(advantages));
    tg_tape_end(tape);
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(self.model, &n);
    tg_tensor *grads[8] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[0], &d);
    report("numpy_function_rollout", "https://github.com/tensorflow/tensorflow/issues/47288", TG_CAUSE_COPIED_OUT,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_model_free(self.model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#50111 (mattpodolak): "I converted the tensor into a numpy array
 * when passing it to my loss function"; the loop also prints the loss and the mean
 * prediction inside the tape's block, after the copy. */
static tg_tensor *my_loss(const tg_tensor *y_true, const float *y_pred_np)
{
    tg_tensor *y_pred = tg_tensor_from(TG_F32, TG_SHAPE(6, 1), y_pred_np);
    tg_tensor *diff = tg_sub(y_true, y_pred);
    return tg_mean(tg_add(tg_square(diff), tg_mul(tg_scalar(0.1), tg_abs(diff))));
}

static void case_loss_arg_numpy_then_print(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(4);
    tg_tensor *w = tg_variable(tg_random_normal(rng, TG_F32, TG_SHAPE(3, 1)));
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(6, 3));
    tg_tensor *y_true = tg_random_normal(rng, TG_F32, TG_SHAPE(6, 1));

    tg_tape *tape = tg_tape_begin();
    tg_tensor *y_pred = tg_sigmoid(tg_matmul(x, w));
    float y_pred_np[6];
    exp_line = __LINE__ + 1;
    tg_copy_out(y_pred, y_pred_np, sizeof y_pred_np);
    tg_tensor *loss = my_loss(y_true, y_pred_np);
    printf("    (program output) loss %.4f mean prediction %.4f\n", tg_item(loss), tg_item(tg_mean(y_pred)));
    tg_tape_end(tape);
    tg_tensor *grad = tg_gradient(tape, loss, w);
    tg_apply_gradients(opt, &grad, &w, 1);
    tg_diagnosis d;
    int rc = tg_explain_missing(w, &d);
    report("loss_arg_numpy_then_print", "https://github.com/tensorflow/tensorflow/issues/50111", TG_CAUSE_COPIED_OUT,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* ==== class 2: tg_predict inside the tape ============================================= */

/* tensorflow/tensorflow#20630 (skeydan): the eager guide's model, with model.predict(x)
 * instead of model(x) in the error. */
static void case_predict_in_error(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(5);
    int n_rows = 10;
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(n_rows, 2));
    tg_tensor *noise = tg_random_normal(rng, TG_F32, TG_SHAPE(n_rows, 2));
    tg_tensor *y = tg_add(tg_add(tg_mul(x, tg_scalar(3)), tg_scalar(2)), noise);
    tg_model *model = tg_sequential(tg_dense(.units = 1, .activation = TG_RELU, .input_dim = 2));
    tg_optimizer *optimizer = tg_sgd(.learning_rate = 0.01);

    tg_tape *tape = tg_tape_begin();
    exp_line = __LINE__ + 1;
    tg_tensor *error = tg_sub(tg_predict(model, x), y);
    tg_tensor *loss_value = tg_mean(tg_square(error));
    tg_tape_end(tape);
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[4] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss_value}, .n_targets = 1, .sources = vars, .n_sources = n,
                 .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[0], &d);
    report("predict_in_error", "https://github.com/tensorflow/tensorflow/issues/20630", TG_CAUSE_COPIED_OUT, exp_line,
           rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* SciSharp/TensorFlow.NET#1197: an RL policy-gradient step "model.predict() makes the
 * model not in the graph, and gradients always return to null". */
static void case_predict_policy_gradient(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(6);
    tg_model *policy = tg_sequential(tg_dense(.units = 24, .activation = TG_RELU, .input_dim = 4),
                                     tg_dense(.units = 2, .activation = TG_SOFTMAX));
    tg_optimizer *optimizer = tg_adam(.learning_rate = 0.01);
    tg_tensor *state = tg_random_normal(rng, TG_F32, TG_SHAPE(1, 4));
    int action = 1;
    double discounted_return = 0.75;

    tg_tape *tape = tg_tape_begin();
    exp_line = __LINE__ + 1;
    tg_tensor *probs = tg_predict(policy, state);
    tg_tensor *prob = tg_gather(tg_reshape(probs, TG_SHAPE(-1)), tg_from_i32(TG_SHAPE(1), action), 0);
    tg_tensor *loss = tg_mul(tg_neg(tg_log(prob)), tg_scalar(discounted_return));
    tg_tape_end(tape);
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(policy, &n);
    tg_tensor *grads[4] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[2], &d);
    report("predict_policy_gradient", "https://github.com/SciSharp/TensorFlow.NET/issues/1197", TG_CAUSE_COPIED_OUT,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_model_free(policy);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* ==== class 3: an assign on the path ================================================== */

/* tensorflow/tensorflow#54532: DummyModel's call reassigns its weight w with the input x,
 * then computes the log posterior from w; the gradient with respect to x is None. */
typedef struct DummyModel {
    tg_tensor *w;
} DummyModel;

static void dummy_build(DummyModel *self) { self->w = tg_variable(tg_scalar_of(TG_F64, 0.0), .name = "w"); }

static tg_tensor *dummy_call(DummyModel *self, const tg_tensor *x)
{
    exp_line = __LINE__ + 1;
    tg_assign(self->w, x);
    return tg_mul(tg_scalar_of(TG_F64, 0.5), tg_square(self->w));
}

static void case_assign_in_call(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    DummyModel model;
    dummy_build(&model);
    tg_tensor *x = tg_variable(tg_scalar_of(TG_F64, 3.0), .name = "x");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *log_posterior = dummy_call(&model, x);
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, log_posterior, x);
    (void)g;
    tg_diagnosis d;
    int rc = tg_explain(tape, log_posterior, x, &d);
    report("assign_in_call", "https://github.com/tensorflow/tensorflow/issues/54532", TG_CAUSE_ASSIGNED, exp_line, rc,
           &d);
    tg_tape_free(tape);
    tg_variable_free(x);
    tg_variable_free(model.w);
    tg_scope_end(scope);
}

/* keras-team/keras#16128 (and tensorflow/tensorflow#54568): a memory layer whose key memory
 * is updated with .assign from the controllers' output, then read back. */
typedef struct MemoryLayer {
    tg_layer *write_controller;
    tg_layer *key_erase_layer;
    tg_tensor *key_memory;
} MemoryLayer;

static tg_tensor *memory_layer_call(MemoryLayer *self, const tg_tensor *inputs)
{
    tg_tensor *h = tg_layer_call(self->write_controller, inputs, .training = true);
    tg_tensor *erase = tg_layer_call(self->key_erase_layer, h, .training = true);
    tg_tensor *keep = tg_sub(tg_scalar(1.0), tg_mean(erase, .axes = TG_AXES(0)));
    tg_tensor *new_key_memory = tg_mul(self->key_memory, keep);
    exp_line = __LINE__ + 1;
    tg_assign(self->key_memory, new_key_memory);
    tg_tensor *scores = tg_matmul(h, self->key_memory, .transpose_b = true);
    return tg_softmax(scores, -1);
}

static void case_memory_layer_assign(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(7);
    MemoryLayer ml = {
        .write_controller = tg_dense(.units = 8, .activation = TG_RELU, .name = "memory_layer_write_controller"),
        .key_erase_layer = tg_dense(.units = 8, .activation = TG_SIGMOID, .name = "memory_layer_key_erase_layer"),
        .key_memory =
            tg_variable(tg_random_normal(rng, TG_F32, TG_SHAPE(4, 8)), .name = "key_memory", .trainable = false),
    };
    tg_optimizer *optimizer = tg_adam();
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(5, 6));
    tg_tensor *target = tg_one_hot(tg_from_i32(TG_SHAPE(5), 0, 1, 2, 3, 0), 4);

    tg_tape *tape = tg_tape_begin();
    tg_tensor *out = memory_layer_call(&ml, x);
    tg_tensor *loss = tg_mean(tg_categorical_crossentropy(target, out));
    tg_tape_end(tape);
    int n1, n2;
    tg_tensor *const *v1 = tg_layer_variables(ml.write_controller, &n1);
    tg_tensor *const *v2 = tg_layer_variables(ml.key_erase_layer, &n2);
    tg_tensor *vars[4] = {v1[0], v1[1], v2[0], v2[1]};
    tg_tensor *grads[4] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = vars, .n_sources = 4, .out = grads);
    tg_apply_gradients(optimizer, grads, vars, 4);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[2], &d);
    report("memory_layer_assign", "https://github.com/keras-team/keras/issues/16128", TG_CAUSE_ASSIGNED, exp_line, rc,
           &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_layer_free(ml.write_controller);
    tg_layer_free(ml.key_erase_layer);
    tg_variable_free(ml.key_memory);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* ==== class 4: a variable created anew on every call ==================================== */

/* tensorflow/tensorflow#1511 (TimmyFan's generator): fully_connect makes its weight with
 * get_variable on every call; the optimizer's var_list was collected from the first
 * construction of the generator. Here the variables land in a global list the way
 * tf.trainable_variables() collects them. */
static tg_tensor *all_vars[64];
static int n_all_vars;
static tg_rng *fc_rng;

static tg_tensor *fully_connect(const tg_tensor *x, int64_t outshape, const char *name)
{
    int64_t in = tg_dim(x, -1);
    exp_line = __LINE__ + 1;
    tg_tensor *w = tg_variable(tg_random_normal(fc_rng, TG_F32, TG_SHAPE(in, outshape), .stddev = 0.1), .name = name);
    all_vars[n_all_vars++] = w;
    return tg_matmul(x, w);
}

static tg_tensor *generator(const tg_tensor *y)
{
    tg_tensor *h1 = tg_sigmoid(fully_connect(y, 30, "g_h1_fully_connect"));
    tg_tensor *h2 = tg_sigmoid(fully_connect(h1, 20, "g_h2_fully_connect"));
    return fully_connect(h2, 4, "g_h4_fully_connect");
}

static void case_get_variable_every_call(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    fc_rng = tg_rng_new(8);
    n_all_vars = 0;
    tg_tensor *y = tg_random_normal(fc_rng, TG_F32, TG_SHAPE(6, 10));
    tg_tensor *target = tg_random_normal(fc_rng, TG_F32, TG_SHAPE(6, 4));
    (void)generator(y); /* builds the graph once: the variables are collected from it */
    tg_tensor *g_vars[3] = {all_vars[0], all_vars[1], all_vars[2]};
    tg_optimizer *g_optim = tg_adam(.learning_rate = 2e-4);

    tg_tape *tape = tg_tape_begin();
    tg_tensor *fake = generator(y);
    tg_tensor *g_loss = tg_mean(tg_square(tg_sub(fake, target)));
    tg_tape_end(tape);
    tg_tensor *grads[3] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){g_loss}, .n_targets = 1, .sources = g_vars, .n_sources = 3,
                 .out = grads);
    tg_apply_gradients(g_optim, grads, g_vars, 3);
    tg_diagnosis d;
    int rc = tg_explain_missing(g_vars[0], &d);
    report("get_variable_every_call", "https://github.com/tensorflow/tensorflow/issues/1511", TG_CAUSE_RECREATED,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(g_optim);
    for (int i = 0; i < n_all_vars; i++)
        tg_variable_free(all_vars[i]);
    tg_rng_free(fc_rng);
    tg_scope_end(scope);
}

/* A custom layer that creates its weights in call instead of build (the answer in
 * tensorflow/tensorflow#32729 explains build vs call); the training loop holds the
 * weights made by the first call. */
typedef struct Linear {
    int64_t units;
    tg_tensor *w, *b;
    tg_rng *rng;
} Linear;

static tg_tensor *linear_call(Linear *self, const tg_tensor *inputs)
{
    exp_line = __LINE__ + 1;
    self->w = tg_variable(tg_random_normal(self->rng, TG_F32, TG_SHAPE(tg_dim(inputs, -1), self->units)), .name = "w");
    self->b = tg_variable(tg_zeros(TG_F32, TG_SHAPE(self->units)), .name = "b");
    return tg_add(tg_matmul(inputs, self->w), self->b);
}

static void case_weights_in_call(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    Linear linear_layer = {.units = 3, .rng = tg_rng_new(9)};
    tg_tensor *x = tg_random_normal(linear_layer.rng, TG_F32, TG_SHAPE(4, 2));
    tg_tensor *y = tg_random_normal(linear_layer.rng, TG_F32, TG_SHAPE(4, 3));
    (void)linear_call(&linear_layer, x);
    tg_tensor *trainable_weights[2] = {linear_layer.w, linear_layer.b};
    tg_optimizer *optimizer = tg_sgd(.learning_rate = 1e-3);
    int line = 0;
    for (int step = 0; step < 2; step++) {
        tg_tape *tape = tg_tape_begin();
        tg_tensor *logits = linear_call(&linear_layer, x);
        tg_tensor *loss_value = tg_mean(tg_square(tg_sub(logits, y)));
        tg_tape_end(tape);
        tg_tensor *grads[2] = {0};
        tg_gradients(tape, .targets = (tg_tensor *[]){loss_value}, .n_targets = 1, .sources = trainable_weights,
                     .n_sources = 2, .out = grads);
        tg_apply_gradients(optimizer, grads, trainable_weights, 2);
        tg_tape_free(tape);
        line = exp_line;
    }
    tg_diagnosis d;
    int rc = tg_explain_missing(trainable_weights[0], &d);
    report("weights_in_call", "https://github.com/tensorflow/tensorflow/issues/32729 (build vs call answer)",
           TG_CAUSE_RECREATED, line, rc, &d);
    tg_optimizer_free(optimizer);
    tg_rng_free(linear_layer.rng);
    tg_scope_end(scope);
}

/* ==== class 5: non-trainable variables in the list ======================================== */

/* tensorflow/tensorflow#26404: ResNet50 with BatchNormalization; the gradients are taken
 * with respect to model.variables. */
static void case_bn_model_variables(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(10);
    tg_model *model = tg_sequential(tg_dense(.units = 8, .input_dim = 4), tg_batch_normalization(),
                                    tg_activation_layer(.activation = TG_RELU), tg_dense(.units = 1));
    tg_optimizer *optimizer = tg_sgd(.learning_rate = 0.01);
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(16, 4));
    tg_tensor *label = tg_random_normal(rng, TG_F32, TG_SHAPE(16, 1));

    tg_tape *tape = tg_tape_begin();
    tg_tensor *prediction = tg_model_call(model, x, .training = true);
    tg_tensor *loss = tg_mean(tg_square(tg_sub(prediction, label)));
    tg_tape_end(tape);
    int n;
    exp_line = __LINE__ + 1;
    tg_tensor *const *variables = tg_model_variables(model, &n);
    tg_tensor *grads[16] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = variables, .n_sources = n,
                 .out = grads);
    tg_apply_gradients(optimizer, grads, variables, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(find_var(variables, n, "moving_mean"), &d);
    report("bn_model_variables", "https://github.com/tensorflow/tensorflow/issues/26404", TG_CAUSE_NOT_WATCHED,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* Fine-tuning with a frozen base (the situation of tensorflow/tensorflow#59652: an inner
 * model frozen before training the outer one); the loop gathers every layer's weights. */
static void case_frozen_base_all_weights(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(11);
    tg_model *model = tg_sequential(tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 8, .name = "base"),
                                    tg_dense(.units = 3, .activation = TG_SOFTMAX, .name = "head"));
    tg_layer_set_trainable(tg_model_get_layer(model, "base"), false); /* named in the message */
    tg_optimizer *optimizer = tg_adam();
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(6, 8));
    tg_tensor *y = tg_one_hot(tg_from_i32(TG_SHAPE(6), 0, 1, 2, 0, 1, 2), 3);
    tg_tensor *weights[8];
    int n_weights = 0;
    for (int i = 0; i < tg_model_n_layers(model); i++) {
        int k;
        exp_line = __LINE__ + 1;
        tg_tensor *const *lw = tg_layer_variables(tg_model_layer(model, i), &k); /* all of them */
        for (int j = 0; j < k; j++)
            weights[n_weights++] = lw[j];
    }

    tg_tape *tape = tg_tape_begin();
    tg_tensor *probs = tg_model_call(model, x, .training = true);
    tg_tensor *loss = tg_mean(tg_categorical_crossentropy(y, probs));
    tg_tape_end(tape);
    tg_tensor *grads[8] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = weights, .n_sources = n_weights,
                 .out = grads);
    tg_apply_gradients(optimizer, grads, weights, n_weights);
    tg_diagnosis d;
    int rc = tg_explain_missing(weights[0], &d);
    report("frozen_base_all_weights", "https://github.com/tensorflow/tensorflow/issues/59652", TG_CAUSE_NOT_WATCHED,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* ==== class 6: unconnected (and identically zero) ========================================= */

/* tensorflow/tensorflow#48547: an actor-critic model; "Gradients do not exist for variables
 * ['dense_2/kernel:0', 'dense_2/bias:0']" (the critic head). The forward function hands
 * back the actor's output for both heads. */
typedef struct A2C {
    tg_layer *common, *actor, *critic;
} A2C;

static tg_tensor *a2c_call(A2C *m, const tg_tensor *state, tg_tensor **critic_out)
{
    tg_tensor *common = tg_layer_call(m->common, state, .training = true);
    tg_tensor *action_probs = tg_layer_call(m->actor, common, .training = true);
    exp_line = __LINE__ + 1;
    tg_tensor *critic_value = tg_layer_call(m->critic, common, .training = true);
    (void)critic_value;
    *critic_out = tg_slice(action_probs, TG_SHAPE(0, 0), TG_SHAPE(-1, 1));
    return action_probs;
}

static void case_a2c_second_head_unused(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(12);
    A2C model = {tg_dense(.units = 32, .activation = TG_RELU, .name = "dense"),
                 tg_dense(.units = 2, .activation = TG_SOFTMAX, .name = "dense_1"),
                 tg_dense(.units = 1, .name = "dense_2")};
    tg_optimizer *optimizer = tg_adam(.learning_rate = 0.01);
    tg_tensor *state = tg_random_normal(rng, TG_F32, TG_SHAPE(3, 4));
    tg_tensor *returns = tg_from_f32(TG_SHAPE(3, 1), 1.0, 0.5, 0.25);
    tg_tensor *actions = tg_from_i32(TG_SHAPE(3), 0, 1, 1);

    tg_tape *tape = tg_tape_begin();
    tg_tensor *critic_value;
    tg_tensor *action_probs = a2c_call(&model, state, &critic_value);
    tg_tensor *diff = tg_sub(returns, critic_value);
    tg_tensor *log_prob =
        tg_log(tg_sum(tg_mul(action_probs, tg_one_hot(actions, 2)), .axes = TG_AXES(-1), .keepdims = true));
    tg_tensor *actor_loss = tg_sum(tg_mul(tg_neg(log_prob), diff));
    tg_tensor *critic_loss = tg_sum(tg_huber(returns, critic_value));
    tg_tensor *loss_value = tg_add(actor_loss, critic_loss);
    tg_tape_end(tape);
    tg_tensor *vars[6];
    int n = 0, k;
    tg_layer *layers[3] = {model.common, model.actor, model.critic};
    for (int i = 0; i < 3; i++) {
        tg_tensor *const *lv = tg_layer_variables(layers[i], &k);
        for (int j = 0; j < k; j++)
            vars[n++] = lv[j];
    }
    tg_tensor *grads[6] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss_value}, .n_targets = 1, .sources = vars, .n_sources = n,
                 .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[4], &d);
    report("a2c_second_head_unused", "https://github.com/tensorflow/tensorflow/issues/48547", TG_CAUSE_UNCONNECTED,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    for (int i = 0; i < 3; i++)
        tg_layer_free(layers[i]);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#36880 ("No gradients for bias and kernels in Dense layer", the
 * Flight model): the second layer is called on the inputs instead of the first layer's
 * output, so layer1 gets no gradient. */
typedef struct Flight {
    tg_layer *layer1, *layer2, *layer3;
} Flight;

static tg_tensor *flight_call(Flight *self, const tg_tensor *inputs)
{
    tg_tensor *x = tg_layer_call(self->layer1, inputs, .training = true);
    exp_line = __LINE__ + 1;
    x = tg_layer_call(self->layer2, inputs, .training = true);
    return tg_layer_call(self->layer3, x, .training = true);
}

static void case_layer_output_overwritten(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(13);
    Flight flight = {tg_dense(.units = 16, .activation = TG_RELU, .name = "layer1"),
                     tg_dense(.units = 16, .activation = TG_RELU, .name = "layer2"),
                     tg_dense(.units = 1, .name = "layer3")};
    tg_optimizer *optimizer = tg_adam();
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(8, 16));
    tg_tensor *y = tg_random_normal(rng, TG_F32, TG_SHAPE(8, 1));

    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = flight_call(&flight, x);
    tg_tensor *loss = tg_mean(tg_mean_squared_error(y, pred));
    tg_tape_end(tape);
    tg_tensor *vars[6];
    int n = 0, k;
    tg_layer *layers[3] = {flight.layer1, flight.layer2, flight.layer3};
    for (int i = 0; i < 3; i++) {
        tg_tensor *const *lv = tg_layer_variables(layers[i], &k);
        for (int j = 0; j < k; j++)
            vars[n++] = lv[j];
    }
    tg_tensor *grads[6] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[0], &d);
    report("layer_output_overwritten", "https://github.com/tensorflow/tensorflow/issues/36880", TG_CAUSE_UNCONNECTED,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    for (int i = 0; i < 3; i++)
        tg_layer_free(layers[i]);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#36596 (kphawkins / sivaji123256): the gradient of the class score
 * with respect to the model's input, while the image actually fed is another tensor. */
static void case_grad_wrt_model_input(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(14);
    tg_model *model = tg_sequential(tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 12),
                                    tg_dense(.units = 5, .activation = TG_SOFTMAX));
    tg_tensor *model_input = tg_zeros(TG_F32, TG_SHAPE(1, 12));
    (void)tg_model_call(model, model_input); /* builds the model on its input */
    tg_tensor *image = tg_random_uniform(rng, TG_F32, TG_SHAPE(1, 12));

    tg_tape *tape = tg_tape_begin();
    exp_line = __LINE__ + 1;
    tg_watch(tape, model_input); /* watches the stand-in, not the image fed */
    tg_tensor *preds = tg_model_call(model, image);
    tg_tensor *class_channel = tg_slice(preds, TG_SHAPE(0, 2), TG_SHAPE(1, 1));
    tg_tape_end(tape);
    tg_tensor *grads = tg_gradient(tape, class_channel, model_input);
    (void)grads;
    tg_diagnosis d;
    int rc = tg_explain(tape, class_channel, model_input, &d);
    report("grad_wrt_model_input", "https://github.com/tensorflow/tensorflow/issues/36596", TG_CAUSE_UNCONNECTED,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#43258 (RavitejaBadugu: a custom loss for fit "which calculates the
 * loss without y_true"; here the mirror mistake, the loss uses the labels only): "No
 * gradients provided for any variable" from fit. */
static tg_tensor *label_spread_loss(const tg_tensor *y_true, const tg_tensor *y_pred, void *user)
{
    (void)user;
    (void)y_pred;
    exp_line = __LINE__ + 1;
    tg_tensor *centered = tg_sub(y_true, tg_mean(y_true));
    return tg_mean(tg_square(centered), .axes = TG_AXES(-1));
}

static void case_fit_loss_ignores_pred(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(15);
    tg_model *model = tg_sequential(tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 1));
    tg_compile(model, .optimizer = tg_adam(), .loss = TG_LOSS_CUSTOM, .loss_fn = label_spread_loss);
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(16, 3));
    tg_tensor *y = tg_random_normal(rng, TG_F32, TG_SHAPE(16, 1));
    tg_history *h = tg_fit(model, x, y, .epochs = 1, .batch_size = 8, .verbose = TG_VERBOSE_SILENT);
    printf("    (program output) fit %s: %s\n", h ? "returned a history" : "failed",
           tg_last_error() ? tg_last_error() : "");
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[0], &d);
    report("fit_loss_ignores_pred", "https://github.com/tensorflow/tensorflow/issues/43258", TG_CAUSE_UNCONNECTED,
           exp_line, rc, &d);
    tg_history_free(h);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* Categorical cross-entropy on a one-unit sigmoid output (the case the seed articles
 * and tf-semantics 3e discuss, e.g. keras-team/keras#11157's thread): the gradient is
 * zeros, the model does not learn. */
static void case_cce_one_unit(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(16);
    tg_model *model = tg_sequential(tg_dense(.units = 12, .activation = TG_RELU, .input_dim = 8),
                                    tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(10, 8));
    tg_tensor *y = tg_from_f32(TG_SHAPE(10, 1), 1, 0, 1, 1, 0, 0, 1, 0, 1, 0);

    tg_tape *tape = tg_tape_begin();
    tg_tensor *y_pred = tg_model_call(model, x, .training = true);
    exp_line = __LINE__ + 1;
    tg_tensor *loss = tg_mean(tg_categorical_crossentropy(y, y_pred));
    tg_tape_end(tape);
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[4] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_diagnosis d;
    int rc = tg_explain(tape, loss, vars[2], &d);
    report("cce_one_unit", "https://github.com/keras-team/keras/issues/11157 thread; tf-semantics 3e",
           TG_CAUSE_ZERO_GRADIENT, exp_line, rc, &d);
    tg_tape_free(tape);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* ==== class 7: the target computed after the tape ended ==================================== */

/* tensorflow/tensorflow#27660: grad(x) returns t.gradient(f(x), x) after the with block. */
static tg_tensor *f(const tg_tensor *x) { return tg_pow(x, tg_scalar(2)); }

static tg_tensor *grad(const tg_tensor *x)
{
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tape_end(t);
    exp_line = __LINE__ + 1;
    tg_tensor *g = tg_gradient(t, f(x), x);
    tg_tape_free(t);
    return g;
}

static void case_target_after_tape_helper(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_scalar(9.0);
    tg_tensor *g = grad(x);
    (void)g;
    tg_diagnosis d;
    int rc = tg_explain_missing(x, &d);
    report("target_after_tape_helper", "https://github.com/tensorflow/tensorflow/issues/27660", TG_CAUSE_OUTSIDE_TAPE,
           exp_line, rc, &d);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#42167: cost computed before minimize; loss = lambda: cost. */
static tg_tensor *loss_lambda(void *user) { return (tg_tensor *)user; }

static void case_minimize_precomputed_cost(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_tensor *y_N = tg_variable(tg_from_f32(TG_SHAPE(3), 1., 2., 3.), .name = "dd");
    exp_line = __LINE__ + 1;
    tg_tensor *cost = tg_neg(tg_mean(tg_sum(tg_log(y_N), .axes = TG_AXES(0))));
    tg_optimizer *opt = tg_adam(.learning_rate = 0.5);
    int rc_min = tg_minimize(opt, loss_lambda, cost, &y_N, 1);
    printf("    (program output) minimize: %d %s\n", rc_min, tg_last_error() ? tg_last_error() : "");
    tg_diagnosis d;
    int rc = tg_explain_missing(y_N, &d);
    report("minimize_precomputed_cost", "https://github.com/tensorflow/tensorflow/issues/42167", TG_CAUSE_OUTSIDE_TAPE,
           exp_line, rc, &d);
    tg_optimizer_free(opt);
    tg_variable_free(y_N);
    tg_scope_end(scope);
}

/* keras-team/keras-io#406: the actor-critic example with `with tf.GradientTape()` moved
 * down to just before the loss, after the episode's forward passes. */
static void case_forward_before_tape(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(17);
    tg_layer *common = tg_dense(.units = 128, .activation = TG_RELU, .name = "dense");
    tg_layer *action = tg_dense(.units = 2, .activation = TG_SOFTMAX, .name = "dense_1");
    tg_layer *critic = tg_dense(.units = 1, .name = "dense_2");
    tg_optimizer *optimizer = tg_adam(.learning_rate = 0.01);
    tg_tensor *action_probs_history[3], *critic_value_history[3];
    double rewards_history[3] = {1, 1, 1};
    for (int timestep = 0; timestep < 3; timestep++) {
        tg_tensor *state = tg_random_normal(rng, TG_F32, TG_SHAPE(1, 4));
        exp_line = __LINE__ + 1;
        tg_tensor *hidden = tg_layer_call(common, state);
        tg_tensor *action_probs = tg_layer_call(action, hidden);
        tg_tensor *critic_value = tg_layer_call(critic, hidden);
        critic_value_history[timestep] = tg_reshape(critic_value, TG_SHAPE(1));
        action_probs_history[timestep] = tg_log(tg_slice(action_probs, TG_SHAPE(0, 0), TG_SHAPE(1, 1)));
    }
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss_value = tg_scalar(0);
    for (int i = 0; i < 3; i++) {
        tg_tensor *ret = tg_scalar(rewards_history[i] * (3 - i));
        tg_tensor *diff = tg_sub(ret, critic_value_history[i]);
        tg_tensor *actor_loss = tg_mul(tg_neg(action_probs_history[i]), diff);
        tg_tensor *critic_loss = tg_huber(tg_reshape(ret, TG_SHAPE(1)), critic_value_history[i]);
        loss_value = tg_add(loss_value, tg_add(tg_sum(actor_loss), tg_sum(critic_loss)));
    }
    tg_tape_end(tape);
    tg_tensor *vars[6];
    int n = 0, k;
    tg_layer *layers[3] = {common, action, critic};
    for (int i = 0; i < 3; i++) {
        tg_tensor *const *lv = tg_layer_variables(layers[i], &k);
        for (int j = 0; j < k; j++)
            vars[n++] = lv[j];
    }
    tg_tensor *grads[6] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss_value}, .n_targets = 1, .sources = vars, .n_sources = n,
                 .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[0], &d);
    report("forward_before_tape", "https://github.com/keras-team/keras-io/issues/406", TG_CAUSE_OUTSIDE_TAPE, exp_line,
           rc, &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    for (int i = 0; i < 3; i++)
        tg_layer_free(layers[i]);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* ==== class 8: a break that is not on this variable's path ==================================== */

/* A DQN step (the argmax-in-the-loss mistake of tensorflow/tensorflow#28836 /
 * ftramer/ensemble-adv-training#4): the target network's values are detached with
 * stop_gradient (correct), and the Q value of the action is taken with argmax. */
static void case_dqn_argmax_vs_target_stop(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(18);
    tg_model *q_net = tg_sequential(tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 4, .name = "q_hidden"),
                                    tg_dense(.units = 2, .name = "q_out"));
    tg_model *target_net =
        tg_sequential(tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 4, .name = "t_hidden"),
                      tg_dense(.units = 2, .name = "t_out"));
    tg_tensor *states = tg_random_normal(rng, TG_F32, TG_SHAPE(5, 4));
    tg_tensor *next_states = tg_random_normal(rng, TG_F32, TG_SHAPE(5, 4));
    tg_tensor *rewards = tg_from_f32(TG_SHAPE(5), 1, 0, 1, 1, 0);
    double gamma = 0.99;

    tg_tape *tape = tg_tape_begin();
    tg_tensor *next_q = tg_model_call(target_net, next_states);
    tg_tensor *target = tg_stop_gradient(tg_add(rewards, tg_mul(tg_scalar(gamma), tg_max(next_q, .axes = TG_AXES(1)))));
    tg_tensor *q_values = tg_model_call(q_net, states, .training = true);
    exp_line = __LINE__ + 1;
    tg_tensor *q_action = tg_cast(tg_argmax(q_values, 1), TG_F32);
    tg_tensor *loss = tg_mean(tg_square(tg_sub(target, q_action)));
    tg_tape_end(tape);
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(q_net, &n);
    tg_tensor *grads[4] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss}, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[0], &d);
    report("dqn_argmax_vs_target_stop", "https://github.com/tensorflow/tensorflow/issues/28836",
           TG_CAUSE_NON_DIFFERENTIABLE, exp_line, rc, &d);
    tg_tape_free(tape);
    tg_model_free(q_net);
    tg_model_free(target_net);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* keras-team/keras-io#194: the actor-critic example with `diff = ret - tf.stop_gradient(value)`
 * as suggested there; this user also stores the critic's value as a float
 * (critic_value[0, 0] read out) in critic_value_history. The critic head is told
 * about the actor's cut unless the search follows the critic's own path. */
static void case_a2c_stop_vs_item(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(19);
    tg_layer *common = tg_dense(.units = 32, .activation = TG_RELU, .name = "dense");
    tg_layer *action = tg_dense(.units = 2, .activation = TG_SOFTMAX, .name = "dense_1");
    tg_layer *critic = tg_dense(.units = 1, .name = "dense_2");
    tg_optimizer *optimizer = tg_adam(.learning_rate = 0.01);
    double returns[3] = {2.0, 1.5, 1.0};

    tg_tape *tape = tg_tape_begin();
    tg_tensor *action_probs_history[3];
    double critic_value_history[3];
    for (int timestep = 0; timestep < 3; timestep++) {
        tg_tensor *state = tg_random_normal(rng, TG_F32, TG_SHAPE(1, 4));
        tg_tensor *hidden = tg_layer_call(common, state, .training = true);
        tg_tensor *action_probs = tg_layer_call(action, hidden, .training = true);
        tg_tensor *critic_value = tg_layer_call(critic, hidden, .training = true);
        exp_line = __LINE__ + 1;
        critic_value_history[timestep] = tg_item(critic_value);
        action_probs_history[timestep] = tg_log(tg_slice(action_probs, TG_SHAPE(0, 0), TG_SHAPE(1, 1)));
    }
    tg_tensor *loss_value = tg_scalar(0);
    for (int i = 0; i < 3; i++) {
        tg_tensor *value = tg_scalar(critic_value_history[i]);
        tg_tensor *ret = tg_scalar(returns[i]);
        tg_tensor *diff = tg_sub(ret, tg_stop_gradient(value));
        tg_tensor *actor_loss = tg_mul(tg_neg(action_probs_history[i]), diff);
        tg_tensor *critic_loss = tg_huber(tg_reshape(ret, TG_SHAPE(1)), tg_reshape(value, TG_SHAPE(1)));
        loss_value = tg_add(loss_value, tg_add(tg_sum(actor_loss), critic_loss));
    }
    tg_tape_end(tape);
    tg_tensor *vars[6];
    int n = 0, k;
    tg_layer *layers[3] = {common, action, critic};
    for (int i = 0; i < 3; i++) {
        tg_tensor *const *lv = tg_layer_variables(layers[i], &k);
        for (int j = 0; j < k; j++)
            vars[n++] = lv[j];
    }
    tg_tensor *grads[6] = {0};
    tg_gradients(tape, .targets = (tg_tensor *[]){loss_value}, .n_targets = 1, .sources = vars, .n_sources = n,
                 .out = grads);
    tg_apply_gradients(optimizer, grads, vars, n);
    tg_diagnosis d;
    int rc = tg_explain_missing(vars[4], &d);
    report("a2c_stop_vs_item", "https://github.com/keras-team/keras-io/issues/194", TG_CAUSE_COPIED_OUT, exp_line, rc,
           &d);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    for (int i = 0; i < 3; i++)
        tg_layer_free(layers[i]);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* ==== class 9: integer ids into an Embedding ================================================= */

/* hiranumn/IntegratedGradients#5: the gradient of the output with respect to the word ids
 * fed to an Embedding layer. */
static void case_embedding_int_ids(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_model *model = tg_sequential(tg_embedding(.input_dim = 20, .output_dim = 8, .input_length = 5), tg_flatten(),
                                    tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_tensor *word_ids = tg_from_i32(TG_SHAPE(2, 5), 1, 4, 7, 2, 0, 3, 3, 9, 12, 1);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, word_ids);
    exp_line = __LINE__ + 1;
    tg_tensor *out = tg_model_call(model, word_ids); /* the embedding output to use instead */
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, out, word_ids);
    (void)g;
    tg_diagnosis d;
    int rc = tg_explain(tape, out, word_ids, &d);
    report("embedding_int_ids", "https://github.com/hiranumn/IntegratedGradients/issues/5", TG_CAUSE_INTEGER_DTYPE,
           exp_line, rc, &d);
    tg_tape_free(tape);
    tg_model_free(model);
    tg_scope_end(scope);
}

/* tensorflow/tensorflow#75351: "Gradients can't be computed for keras embeddings": the
 * inputs are float, watched, and fed to the Embedding, which casts them to integers. */
static void case_embedding_float_inputs(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_model *model = tg_sequential(tg_embedding(.input_dim = 10, .output_dim = 4, .input_length = 3), tg_flatten(),
                                    tg_dense(.units = 2));
    tg_tensor *inputs = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, inputs);
    exp_line = __LINE__ + 1;
    tg_tensor *output = tg_model_call(model, inputs);
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, output, inputs);
    (void)g;
    tg_diagnosis d;
    int rc = tg_explain(tape, output, inputs, &d);
    report("embedding_float_inputs", "https://github.com/tensorflow/tensorflow/issues/75351",
           TG_CAUSE_NON_DIFFERENTIABLE, exp_line, rc, &d);
    tg_tape_free(tape);
    tg_model_free(model);
    tg_scope_end(scope);
}

/* ==== correct programs ==================================================================== */

/* The fix given in tensorflow/tensorflow#20630: model(x) inside the tape; the loop prints
 * the loss inside the block, as many users do. */
static void ok_custom_loop_print_inside(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(20);
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(10, 2));
    tg_tensor *y = tg_add(tg_mul(x, tg_scalar(3)), tg_scalar(2));
    tg_model *model = tg_sequential(tg_dense(.units = 2, .input_dim = 2));
    tg_optimizer *optimizer = tg_sgd(.learning_rate = 0.01);
    bool all = true;
    for (int step = 0; step < 3; step++) {
        tg_tape *tape = tg_tape_begin();
        tg_tensor *error = tg_sub(tg_model_call(model, x, .training = true), y);
        tg_tensor *loss_value = tg_mean(tg_square(error));
        double shown = tg_item(loss_value);
        (void)shown;
        tg_tape_end(tape);
        int n;
        tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
        tg_tensor *grads[4] = {0};
        tg_gradients(tape, .targets = (tg_tensor *[]){loss_value}, .n_targets = 1, .sources = vars, .n_sources = n,
                     .out = grads);
        for (int i = 0; i < n; i++)
            all = all && grads[i];
        tg_apply_gradients(optimizer, grads, vars, n);
        tg_tape_free(tape);
    }
    report_ok("ok_custom_loop_print", "https://github.com/tensorflow/tensorflow/issues/20630 (answer)", all);
    tg_optimizer_free(optimizer);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* tf-semantics row 3 / the seed article's example 1: a variable created inside the tape. */
static void ok_variable_created_in_tape(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0));
    tg_tensor *y = tg_mul(x, x);
    tg_tensor *loss = y;
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, loss, x);
    tg_optimizer *optimizer = tg_sgd(.learning_rate = 0.1);
    tg_apply_gradients(optimizer, &g, &x, 1);
    report_ok("ok_variable_created_in_tape", "/work/shared/seeds (example 1); tf-semantics row 3",
              g != NULL && fabs(tg_item(g) - 2.0) < 1e-6);
    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_variable_free(x);
    tg_scope_end(scope);
}

/* compile + fit with BatchNormalization and a frozen layer (tf-semantics K5 / seed f):
 * the frozen weights leave the trainable list and nothing is missing. */
static void ok_fit_bn_frozen(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(21);
    tg_model *model = tg_sequential(tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 3, .name = "frozen"),
                                    tg_batch_normalization(), tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_layer_set_trainable(tg_model_layer(model, 0), false);
    tg_compile(model, .optimizer = tg_adam(), .loss = TG_LOSS_BINARY_CROSSENTROPY, .metrics = TG_METRICS(TG_ACCURACY));
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(32, 3));
    tg_tensor *y = tg_cast(tg_greater(tg_slice(x, TG_SHAPE(0, 0), TG_SHAPE(-1, 1)), tg_scalar(0)), TG_F32);
    tg_history *h = tg_fit(model, x, y, .epochs = 2, .batch_size = 8, .verbose = TG_VERBOSE_SILENT);
    tg_tensor *p = tg_predict(model, x);
    report_ok("ok_fit_bn_frozen", "tf-semantics K5; tensorflow/tensorflow#26404 (answer)", h != NULL && p != NULL);
    tg_history_free(h);
    tg_model_free(model);
    tg_rng_free(rng);
    tg_scope_end(scope);
}

/* The fix given in tensorflow/tensorflow#42167 (the computation inside the lambda), then a
 * persistent tape that logs through stop_recording and a nested tape for a second
 * derivative (tf-semantics rows 16 and 18). */
static tg_tensor *loss_inside(void *user)
{
    tg_tensor *y_N = user;
    return tg_neg(tg_mean(tg_sum(tg_log(y_N), .axes = TG_AXES(0))));
}

static void ok_minimize_and_nested(void)
{
    begin_case();
    tg_scope *scope = tg_scope_begin();
    tg_tensor *y_N = tg_variable(tg_from_f32(TG_SHAPE(3), 1., 2., 3.), .name = "dd");
    tg_optimizer *opt = tg_adam(.learning_rate = 0.5);
    int rc = tg_minimize(opt, loss_inside, y_N, &y_N, 1);
    tg_tensor *x = tg_scalar(5.0);
    tg_tape *g = tg_tape_begin(.persistent = true);
    tg_watch(g, x);
    tg_tape *gg = tg_tape_begin();
    tg_watch(gg, x);
    tg_tensor *y = tg_mul(x, x);
    tg_tape_end(gg);
    tg_tensor *dy_dx = tg_gradient(gg, y, x);
    tg_tape_stop_recording(g);
    double logged = tg_item(dy_dx);
    (void)logged;
    tg_tape_resume_recording(g);
    tg_tape_end(g);
    tg_tensor *d2y_dx2 = tg_gradient(g, dy_dx, x);
    report_ok("ok_minimize_and_nested",
              "https://github.com/tensorflow/tensorflow/issues/42167 (answer); tf-semantics 16, 18",
              rc == 0 && dy_dx && d2y_dx2 && fabs(tg_item(d2y_dx2) - 2.0) < 1e-6);
    tg_tape_free(gg);
    tg_tape_free(g);
    tg_optimizer_free(opt);
    tg_variable_free(y_N);
    tg_scope_end(scope);
}

int main(void)
{
    tg_set_warning_handler(on_warning, NULL);
    tg_set_check(TG_CHECK_EAGER);

    case_gan_numpy_moments();
    case_custom_loss_numpy();
    case_numpy_function_rollout();
    case_loss_arg_numpy_then_print();
    case_predict_in_error();
    case_predict_policy_gradient();
    case_assign_in_call();
    case_memory_layer_assign();
    case_get_variable_every_call();
    case_weights_in_call();
    case_bn_model_variables();
    case_frozen_base_all_weights();
    case_a2c_second_head_unused();
    case_layer_output_overwritten();
    case_grad_wrt_model_input();
    case_fit_loss_ignores_pred();
    case_cce_one_unit();
    case_target_after_tape_helper();
    case_minimize_precomputed_cost();
    case_forward_before_tape();
    case_dqn_argmax_vs_target_stop();
    case_a2c_stop_vs_item();
    case_embedding_int_ids();
    case_embedding_float_inputs();

    ok_custom_loop_print_inside();
    ok_variable_created_in_tape();
    ok_fit_bn_frozen();
    ok_minimize_and_nested();

    printf("\nbuggy programs: %d right (cause and line), %d wrong; correct programs: %d clean, %d not\n", n_pass,
           n_fail, n_ok_pass, n_ok_fail);
    printf("%d passed, %d failed\n", n_pass + n_ok_pass, n_fail + n_ok_fail);
    return n_fail || n_ok_fail;
}
