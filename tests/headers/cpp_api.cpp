// The public API from C++ (-std=c++11 -pedantic-errors): the *_at functions with their
// options structs, filled field by field. The option macros (tg_fit(m, x, y, .epochs = 2))
// are C only: C++11 has neither designated initialisers nor statement expressions.
#include <cmath>
#include <cstdio>

#include <tapegrad.h>

static bool gradient_of_a_square()
{
    tg_scope *scope = tg_scope_begin_at(TG_LOC);
    tg_variable_opts vo = {};
    vo.name = "x";
    vo.trainable = true;
    tg_tensor *x = tg_variable_at(TG_LOC, tg_scalar_at(TG_LOC, TG_F64, 3.0), vo);
    tg_tape_opts to = {};
    to.watch_accessed_variables = true;
    tg_tape *tape = tg_tape_begin_at(TG_LOC, to);
    tg_tensor *y = tg_mul_at(TG_LOC, x, x);
    tg_tape_end_at(TG_LOC, tape);
    tg_tensor *dy = tg_gradient_at(TG_LOC, tape, y, x);
    bool ok = dy && tg_item_at(TG_LOC, dy) == 6.0;
    tg_tape_free_at(TG_LOC, tape);
    tg_scope_end(scope);
    tg_variable_free_at(TG_LOC, x);
    return ok;
}

static bool fit_a_line()
{
    float xs[64], ys[64];
    for (int i = 0; i < 64; i++) {
        xs[i] = -1.0f + (float)i / 32.0f;
        ys[i] = 2.0f * xs[i] + 1.0f;
    }
    tg_scope *scope = tg_scope_begin_at(TG_LOC);
    tg_shape shape = {};
    shape.rank = 2;
    shape.dims[0] = 64;
    shape.dims[1] = 1;
    tg_tensor *x = tg_tensor_from_at(TG_LOC, TG_F32, shape, xs);
    tg_tensor *y = tg_tensor_from_at(TG_LOC, TG_F32, shape, ys);

    tg_dense_opts dense = {};
    dense.dtype = TG_DTYPE_INHERIT;
    dense.units = 1;
    dense.use_bias = true;
    dense.input_dim = 1;
    tg_layer *layers[] = {tg_dense_at(TG_LOC, dense)};
    tg_sequential_opts so = {};
    so.name = "line";
    so.dtype = TG_F32;
    tg_model *m = tg_sequential_at(TG_LOC, so, layers, 1);

    tg_sgd_opts sgd = {};
    sgd.learning_rate = 0.1;
    tg_compile_opts co = {};
    co.optimizer = tg_sgd_at(TG_LOC, sgd);
    co.loss = TG_LOSS_MSE;
    co.delta = 1.0;
    tg_fit_opts fo = {};
    fo.epochs = 20;
    fo.batch_size = 16;
    fo.shuffle = true;
    fo.verbose = TG_VERBOSE_SILENT;
    tg_history *h = m && tg_compile_at(TG_LOC, m, co) == 0 ? tg_fit_at(TG_LOC, m, x, y, fo) : NULL;
    int n = 0;
    const double *loss = h ? tg_history_get(h, "loss", &n) : NULL;
    bool ok = loss && n == 20 && loss[19] < 0.1 * loss[0];
    tg_history_free(h);
    tg_model_free_at(TG_LOC, m);
    tg_scope_end(scope);
    return ok;
}

int main()
{
    bool ok = gradient_of_a_square() && fit_a_line();
    if (!ok)
        std::fprintf(stderr, "cpp_api: %s\n", tg_has_error() ? tg_last_error() : "wrong result");
    return ok ? 0 : 1;
}
