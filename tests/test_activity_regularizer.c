/* Keras 3's activity_regularizer (keras/src/layers/layer.py __call__:
 * add_loss(activity_regularizer(output)) at each call, not divided by the batch size) on
 * Dense and Conv2D, by hand. */
#include "check.h"

/* Dense(1) with W = [1, 2], b = -0.5 and activity L2(0.1) on x = I, y = [1, 1]: outputs
 * o = [0.5, 1.5], penalty 0.1 * (0.25 + 2.25) = 0.25, MSE 0.25, loss 0.5. One SGD step
 * (0.1): dL/do = (o - y) + 0.2 o = [-0.4, 0.8], so dW = [-0.4, 0.8], db = 0.4: W = [1.04,
 * 1.92], b = -0.54. */
static void dense_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *d = tg_dense(.units = 1, .input_dim = 2, .activity_regularizer = tg_l2(0.1));
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), d);
    REQUIRE(m && tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE) == 0);
    int n;
    tg_tensor *const *v = tg_layer_variables(d, &n);
    CHECK(tg_assign(v[0], tg_from_f64(TG_SHAPE(2, 1), 1, 2)) == 0 &&
          tg_assign(v[1], tg_from_f64(TG_SHAPE(1), -0.5)) == 0);
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 2), 1, 0, 0, 1), *y = tg_from_f64(TG_SHAPE(2, 1), 1, 1);
    tg_clear_error();
    CHECK(tg_model_regularization_loss(m) == NULL && !tg_has_error()); /* no call yet */
    CHECK_VALUES(tg_model_call(m, x), 1e-15, 0.5, 1.5);
    CHECK_VALUES(tg_model_regularization_loss(m), 1e-15, 0.25);
    /* a second call replaces the first one's penalty: x / 2 gives o = [0, 0.5], 0.1 * 0.25 */
    CHECK_VALUES(tg_model_call(m, tg_from_f64(TG_SHAPE(2, 2), 0.5, 0, 0, 0.5)), 1e-15, 0, 0.5);
    CHECK_VALUES(tg_model_regularization_loss(m), 1e-15, 0.025);
    tg_logs logs;
    REQUIRE(tg_evaluate(m, x, y, &logs) == 0);
    CHECK_NEAR(tg_logs_get(&logs, "loss"), 0.5, 1e-14);
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .batch_size = 2, .verbose = TG_VERBOSE_SILENT);
    int e = 0;
    const double *loss = tg_history_get(h, "loss", &e);
    CHECK(loss && e == 1 && fabs(loss[0] - 0.5) < 1e-14);
    CHECK_VALUES(v[0], 1e-14, 1.04, 1.92);
    CHECK_VALUES(v[1], 1e-14, -0.54);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Conv2D (1x1, one filter, weight 2, bias 0) with activity L1(0.5) on a 1x2x2x1 image
 * [1, -1, 2, 0]: outputs [2, -2, 4, 0], penalty 0.5 * 8 = 4. */
static void conv2d_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *c = tg_conv2d_layer(.filters = 1, .kernel_size = {1, 1}, .input_shape = TG_SHAPE(2, 2, 1),
                                  .activity_regularizer = tg_l1(0.5));
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), c);
    REQUIRE(m);
    int n;
    tg_tensor *const *v = tg_layer_variables(c, &n);
    CHECK(tg_assign(v[0], tg_from_f64(TG_SHAPE(1, 1, 1, 1), 2)) == 0);
    CHECK_VALUES(tg_model_call(m, tg_from_f64(TG_SHAPE(1, 2, 2, 1), 1, -1, 2, 0)), 1e-15, 2, -2, 4, 0);
    CHECK_VALUES(tg_model_regularization_loss(m), 1e-15, 4);
    tg_model_free(m);
    tg_scope_end(s);
}

/* The penalty of a call whose scope has ended is gone, not a dangling tensor. */
static void ended_scope_drops_it(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64),
                                     tg_dense(.units = 1, .input_dim = 1, .activity_regularizer = tg_l2(1)));
    REQUIRE(m);
    tg_scope *inner = tg_scope_begin();
    CHECK(tg_model_call(m, tg_from_f64(TG_SHAPE(1, 1), 1)) != NULL);
    CHECK(tg_model_regularization_loss(m) != NULL);
    tg_scope_end(inner);
    tg_clear_error();
    CHECK(tg_model_regularization_loss(m) == NULL && !tg_has_error());
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    RUN(dense_by_hand);
    RUN(conv2d_by_hand);
    RUN(ended_scope_drops_it);
    return TEST_SUMMARY();
}
