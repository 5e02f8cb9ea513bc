/* Logs and metric lists of any length: no fixed number of log values, of metrics per
 * output, nor of characters in a log name. */
#include <unistd.h>

#include "check.h"

static void logs_grow_past_their_own_room(void)
{
    tg_logs logs = {0};
    char name[128];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "a_log_name_far_longer_than_thirty_two_characters_%03d", i);
        REQUIRE(tg_logs_set(&logs, name, i * 0.5) == 0);
    }
    CHECK(logs.n == 100);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "a_log_name_far_longer_than_thirty_two_characters_%03d", i);
        CHECK(tg_logs_get(&logs, name) == i * 0.5);
        CHECK(!strcmp(logs.names[i], name) && logs.values[i] == i * 0.5);
    }
    CHECK(tg_logs_set(&logs, "a_log_name_far_longer_than_thirty_two_characters_042", -1) == 0);
    CHECK(logs.n == 100 && tg_logs_get(&logs, "a_log_name_far_longer_than_thirty_two_characters_042") == -1);
    tg_logs_free(&logs);
    CHECK(logs.n == 0 && isnan(tg_logs_get(&logs, "a_log_name_far_longer_than_thirty_two_characters_000")));
    tg_logs_free(NULL);

    tg_logs small = {0}; /* within its own room: nothing to give back */
    CHECK(tg_logs_set(&small, "loss", 1.5) == 0);
    tg_logs copy = small;
    CHECK(tg_logs_set(&copy, "accuracy", 0.5) == 0); /* a copy's room is its own */
    CHECK(small.n == 1 && copy.n == 2 && tg_logs_get(&copy, "loss") == 1.5);
    CHECK(isnan(tg_logs_get(&small, "accuracy")));
}

/* The step logs 100 values of long names besides the compiled ones: fit's logs, the
 * history and a CSV logger keep every one. */
static int step_with_many_logs(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sw, tg_logs *logs,
                               void *user)
{
    (void)user;
    if (tg_train_step_default(m, x, y, sw, logs, NULL) != 0)
        return -1;
    char name[128];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "extra_value_with_a_name_of_more_than_32_characters_%03d", i);
        if (tg_logs_set(logs, name, i) != 0)
            return -1;
    }
    return 0;
}

static void fit_with_20_metrics_and_100_logs(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *rng = tg_rng_new(3);
    tg_keras_tensor *in = tg_input(TG_SHAPE(3));
    tg_keras_tensor *outs[3];
    for (int i = 0; i < 3; i++)
        outs[i] = tg_layer_apply(tg_dense(.units = 1, .activation = TG_SIGMOID), in);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(in), TG_KERAS_TENSORS(outs[0], outs[1], outs[2]), .seed = 1);
    REQUIRE(m);
    tg_metric_list seven = TG_METRICS(TG_ACCURACY, TG_METRIC_MEAN_SQUARED_ERROR, TG_METRIC_MEAN_ABSOLUTE_ERROR,
                                      TG_METRIC_PRECISION, TG_METRIC_RECALL, TG_METRIC_AUC, TG_METRIC_BINARY_ACCURACY);
    tg_metric_list six = TG_METRICS(TG_ACCURACY, TG_METRIC_MEAN_SQUARED_ERROR, TG_METRIC_MEAN_ABSOLUTE_ERROR,
                                    TG_METRIC_PRECISION, TG_METRIC_RECALL, TG_METRIC_AUC);
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                       .output_metrics = (tg_metric_list[]){seven, seven, six}, .n_output_metrics = 3) == 0);
    tg_tensor *x = tg_random_uniform(rng, TG_F32, TG_SHAPE(16, 3));
    tg_tensor *y = tg_cast(tg_greater(tg_random_uniform(rng, TG_F32, TG_SHAPE(16, 1)), tg_scalar(0.5f)), TG_F32);
    const tg_tensor *ys[3] = {y, y, y};
    tg_logs logs = {0};
    REQUIRE(tg_evaluate(m, NULL, NULL, &logs, .inputs = (const tg_tensor *const[]){x}, .n_inputs = 1, .targets = ys,
                        .n_targets = 3) == 0);
    CHECK(logs.n == 1 + 3 + 20); /* loss, each output's loss, 20 metrics */
    CHECK(!isnan(tg_logs_get(&logs, "dense_2_auc")));
    tg_logs_free(&logs);
    tg_model_free(m);

    tg_model *one = tg_sequential(tg_dense(.units = 1, .activation = TG_SIGMOID, .input_dim = 3));
    tg_metric_kind kinds[20];
    for (int i = 0; i < 20; i++) /* a list of 20, in a plain array */
        kinds[i] = i % 2 ? TG_METRIC_MEAN_SQUARED_ERROR : TG_ACCURACY;
    REQUIRE(tg_compile(one, .optimizer = tg_sgd(), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                       .metrics = (tg_metric_list){.n = 20, .kind = kinds}) == 0);
    kinds[0] = TG_METRIC_COUNT; /* compile copied the list */
    tg_history *h = tg_fit(one, x, y, .epochs = 2, .batch_size = 4, .validation_split = 0.25,
                           .verbose = TG_VERBOSE_SILENT, .train_step = step_with_many_logs);
    REQUIRE(h);
    CHECK(tg_history_epochs(h) == 2);
    /* loss, accuracy, mean_squared_error, their val_ forms, and the 100 */
    CHECK(tg_history_n_keys(h) == 106);
    int n = 0;
    const double *v = tg_history_get(h, "extra_value_with_a_name_of_more_than_32_characters_099", &n);
    CHECK(v && n == 2 && v[0] == 99 && v[1] == 99);
    CHECK(tg_history_get(h, "val_accuracy", &n) && n == 2);
    tg_history_free(h);
    tg_model_free(one);
    tg_rng_free(rng);
    tg_scope_end(s);
}

/* A CSV logger writes a column for each of 100 logged values. */
static void csv_logger_keeps_every_column(void)
{
    tg_scope *s = tg_scope_begin();
    char path[] = "/tmp/tapegrad-logs-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE) == 0);
    tg_callback *log = tg_csv_logger(.filename = path);
    tg_history *h = tg_fit(m, tg_ones(TG_F32, TG_SHAPE(4, 2)), tg_zeros(TG_F32, TG_SHAPE(4, 1)), .epochs = 1,
                           .verbose = TG_VERBOSE_SILENT, .train_step = step_with_many_logs,
                           .callbacks = (tg_callback *[]){log}, .n_callbacks = 1);
    REQUIRE(h);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char line[16384];
    CHECK(fgets(line, sizeof line, f) != NULL);
    int commas = 0;
    for (char *c = line; *c; c++)
        commas += *c == ',';
    CHECK(commas == 101); /* epoch, loss and the 100 */
    CHECK(strstr(line, "extra_value_with_a_name_of_more_than_32_characters_000"));
    fclose(f);
    unlink(path);
    tg_history_free(h);
    tg_callback_free(log);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Callbacks monitor a log of any name's length: a constant value stops EarlyStopping
 * after its patience and makes ReduceLROnPlateau halve the rate. */
static void callbacks_monitor_long_names(void)
{
    tg_scope *s = tg_scope_begin();
    const char *name = "extra_value_with_a_name_of_more_than_32_characters_007";
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE) == 0);
    tg_callback *es = tg_early_stopping(.monitor = name, .patience = 2);
    tg_callback *lr = tg_reduce_lr_on_plateau(.monitor = name, .factor = 0.5, .patience = 1);
    REQUIRE(es && lr);
    tg_history *h = tg_fit(m, tg_ones(TG_F32, TG_SHAPE(4, 2)), tg_zeros(TG_F32, TG_SHAPE(4, 1)), .epochs = 10,
                           .verbose = TG_VERBOSE_SILENT, .train_step = step_with_many_logs,
                           .callbacks = (tg_callback *[]){es, lr}, .n_callbacks = 2);
    REQUIRE(h);
    CHECK(tg_history_epochs(h) == 3); /* epoch 0 sets the best, 1 and 2 do not improve */
    CHECK(tg_early_stopping_stopped_epoch(es) == 2);
    CHECK(fabs(tg_optimizer_current_lr(tg_model_optimizer(m)) - 0.025) < 1e-9); /* halved after epochs 1 and 2 */
    tg_history_free(h);
    tg_callback_free(es);
    tg_callback_free(lr);
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    RUN(logs_grow_past_their_own_room);
    RUN(fit_with_20_metrics_and_100_logs);
    RUN(csv_logger_keeps_every_column);
    RUN(callbacks_monitor_long_names);
    return TEST_SUMMARY();
}
