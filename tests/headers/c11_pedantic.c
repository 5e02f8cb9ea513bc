/* The public headers in strict ISO C11 (-std=c11 -pedantic-errors): the option macros,
 * TG_SHAPE, TG_AXES and TG_METRICS included. A small fit must lower the loss. */
#include <stdio.h>

#include <tapegrad.h>

int main(void)
{
    float xs[64];
    for (int i = 0; i < 64; i++)
        xs[i] = -1.0f + (float)i / 32.0f;
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_reshape(tg_tensor_from(TG_F32, TG_SHAPE(64), xs), TG_SHAPE(64, 1));
    tg_tensor *y = tg_add(tg_mul(x, tg_scalar(2.0)), tg_scalar(1.0));
    tg_tensor *s = tg_sum(x, .axes = TG_AXES(0), .keepdims = true);
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 1));
    int rc = tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE,
                        .metrics = TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR));
    tg_history *h = rc == 0 ? tg_fit(m, x, y, .epochs = 20, .batch_size = 16, .verbose = TG_VERBOSE_SILENT) : NULL;
    int n = 0;
    const double *loss = h ? tg_history_get(h, "loss", &n) : NULL;
    bool ok = s && tg_shape_of(s).rank == 2 && loss && n == 20 && loss[19] < 0.1 * loss[0];
    if (!ok)
        fprintf(stderr, "c11_pedantic: %s\n", tg_has_error() ? tg_last_error() : "the loss did not fall tenfold");
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(scope);
    return ok ? 0 : 1;
}
