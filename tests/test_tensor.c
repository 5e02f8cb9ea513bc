/* Tensors, scopes, variables, random generators, printing and their errors. */
#include "check.h"

static void creation_and_copy_out(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    CHECK(tg_rank(a) == 2 && tg_dim(a, 0) == 2 && tg_dim(a, -1) == 3 && tg_size(a) == 6);
    CHECK(tg_dtype_of(a) == TG_F32);
    float out[6];
    CHECK(tg_copy_out(a, out, sizeof out) == 0 && out[5] == 6.0f);
    EXPECT_ERROR(tg_copy_out(a, out, 8) == -1, "holds 8 bytes, the tensor needs 24");
    CHECK_VALUES(tg_zeros(TG_F64, TG_SHAPE(2)), 0, 0, 0);
    CHECK_VALUES(tg_ones(TG_I32, TG_SHAPE(3)), 0, 1, 1, 1);
    CHECK_VALUES(tg_fill(TG_I64, TG_SHAPE(2), 7), 0, 7, 7);
    CHECK_VALUES(tg_arange(TG_F32, 0, 1, 0.25), 0, 0, 0.25, 0.5, 0.75);
    CHECK_VALUES(tg_arange(TG_I32, 5, 0, -2), 0, 5, 3, 1);
    CHECK_VALUES(tg_eye(TG_F64, 2), 0, 1, 0, 0, 1);
    tg_tensor *sc = tg_scalar(2.5);
    CHECK(tg_rank(sc) == 0 && tg_size(sc) == 1);
    CHECK_NEAR(tg_item(sc), 2.5, 0);
    CHECK(isnan(tg_item(a)));
    CHECK_ERROR("not one element");
    EXPECT_ERROR(tg_dim(a, 2) == -1, "axis 2 is out of range");
    EXPECT_ERROR(tg_arange(TG_F32, 0, 1, 0) == NULL, "step non-zero");
    tg_scope_end(s);
}

static void rank_limits(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *r8 = tg_zeros(TG_F32, TG_SHAPE(1, 1, 1, 1, 1, 1, 1, 2));
    CHECK(r8 && tg_rank(r8) == 8);
    tg_shape nine = {.rank = 9};
    EXPECT_ERROR(tg_zeros(TG_F32, nine) == NULL, "rank 9 is not supported");
    EXPECT_ERROR(tg_zeros(TG_F32, TG_SHAPE(2, -1)) == NULL, "negative");
    EXPECT_ERROR(tg_zeros((tg_dtype)42, TG_SHAPE(2)) == NULL, "unknown dtype 42");
    tg_scope_end(s);
}

static void printing(void)
{
    tg_scope *s = tg_scope_begin();
    char buf[256];
    tg_format(tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), buf, sizeof buf);
    CHECK(strcmp(buf, "tg.Tensor(\n[[1. 2.]\n [3. 4.]], shape=(2, 2), dtype=float32)") == 0);
    tg_format(tg_scalar(6), buf, sizeof buf);
    CHECK(strcmp(buf, "tg.Tensor(6., shape=(), dtype=float32)") == 0);
    tg_format(tg_from_i32(TG_SHAPE(3), 1, -20, 3), buf, sizeof buf);
    CHECK(strcmp(buf, "tg.Tensor([  1 -20   3], shape=(3,), dtype=int32)") == 0);
    tg_format(tg_from_f64(TG_SHAPE(2), 0.5, -1.25), buf, sizeof buf);
    CHECK(strcmp(buf, "tg.Tensor([  0.5 -1.25], shape=(2,), dtype=float64)") == 0);
    /* long tensors are summarised like numpy */
    tg_format(tg_arange(TG_I32, 0, 2000, 1), buf, sizeof buf);
    CHECK(strstr(buf, "[   0    1    2 ... 1997 1998 1999]") != NULL);
    /* snprintf-like: the full length is returned even when truncated */
    char tiny[8];
    int n = tg_format(tg_scalar(6), tiny, sizeof tiny);
    CHECK(n == (int)strlen("tg.Tensor(6., shape=(), dtype=float32)") && strlen(tiny) == 7);
    tg_scope_end(s);
}

static void scopes_free_and_detect_use_after_end(void)
{
    tg_scope *outer = tg_scope_begin();
    tg_tensor *keep = tg_scalar(1);
    tg_scope *inner = tg_scope_begin();
    tg_tensor *tmp = tg_add(keep, keep);
    CHECK(tg_is_alive(tmp));
    EXPECT_ERROR(tg_scope_end(outer) == -1, "not the innermost open scope");
    CHECK(tg_scope_end(inner) == 0);
    CHECK(!tg_is_alive(tmp) && tg_is_alive(keep));
    EXPECT_ERROR(tg_add(tmp, keep) == NULL, "was used after its scope ended");
    CHECK_ERROR("test_tensor.c:");
    CHECK(tg_scope_end(outer) == 0);
    EXPECT_ERROR(tg_scalar(1) == NULL, "no scope is open");
    /* many steps of one scope each reuse memory: no growth, no error */
    tg_scope *s = tg_scope_begin();
    for (int i = 0; i < 1000; i++) {
        tg_scope *step = tg_scope_begin();
        tg_tensor *big = tg_zeros(TG_F32, TG_SHAPE(256, 256));
        CHECK(big != NULL);
        tg_scope_end(step);
    }
    tg_scope_end(s);
}

static void null_propagation_keeps_the_first_error(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f32(TG_SHAPE(2), 1, 2), *b = tg_from_f32(TG_SHAPE(3), 1, 2, 3);
    tg_tensor *bad = tg_add(a, b);
    CHECK(bad == NULL);
    const char *first = tg_last_error();
    char copy[512];
    snprintf(copy, sizeof copy, "%s", first ? first : "");
    tg_tensor *r = tg_exp(tg_mul(bad, a));
    CHECK(r == NULL);
    CHECK(strcmp(tg_last_error(), copy) == 0);
    CHECK_ERROR("cannot be broadcast");
    tg_clear_error();
    EXPECT_ERROR(tg_exp(NULL) == NULL, "`x` is NULL");
    tg_scope_end(s);
}

static void variables(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *v = tg_variable(tg_from_f32(TG_SHAPE(2), 1, 2), .name = "dense/kernel");
    CHECK(tg_is_variable(v) && strcmp(tg_variable_name(v), "dense/kernel") == 0 && tg_variable_trainable(v));
    tg_tensor *u = tg_variable(tg_scalar(0), .trainable = false);
    CHECK(!tg_variable_trainable(u) && strcmp(tg_variable_name(u), "Variable") == 0);
    CHECK(tg_variable_version(v) == 0);
    CHECK(tg_assign(v, tg_from_f32(TG_SHAPE(2), 5, 6)) == 0);
    CHECK(tg_assign_add(v, tg_from_f32(TG_SHAPE(2), 1, 1)) == 0);
    CHECK(tg_assign_sub(v, tg_scalar(0.5)) == 0);
    CHECK(tg_variable_version(v) == 3);
    CHECK_VALUES(v, 0, 5.5, 6.5);
    EXPECT_ERROR(tg_assign(v, tg_from_f32(TG_SHAPE(3), 1, 2, 3)) == -1,
                 "variable 'dense/kernel' has shape (2,), the value has shape (3,)");
    EXPECT_ERROR(tg_assign(v, tg_from_f64(TG_SHAPE(2), 1, 2)) == -1, "has dtype float32, the value has dtype float64");
    EXPECT_ERROR(tg_assign(tg_scalar(1), tg_scalar(2)) == -1, "is not a variable");
    CHECK(tg_variable_version(v) == 3);
    /* a variable outlives the scope it was made in */
    tg_scope_end(s);
    s = tg_scope_begin();
    CHECK_VALUES(tg_add(v, v), 0, 11, 13);
    /* freeing what is not a variable is an error that names it, and frees nothing */
    tg_tensor *plain = tg_scalar(1);
    tg_clear_error();
    tg_variable_free(plain);
    CHECK_ERROR("tg_variable_free: `var` is not a variable");
    CHECK_ERROR("test_tensor.c");
    CHECK(tg_is_alive(plain));
    tg_scope_end(s);
    tg_variable_free(v);
    tg_variable_free(u);
    tg_clear_error();
    tg_variable_free(u); /* a second free */
    CHECK_ERROR("tg_variable_free");
}

static void snapshots_keep_the_value_read(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *v = tg_variable(tg_from_f32(TG_SHAPE(2), 1, 2));
    tg_tape *t = tg_tape_begin();
    tg_tensor *r = tg_identity(v);
    tg_tensor *view = tg_reshape(v, TG_SHAPE(2, 1));
    tg_tape_end(t);
    tg_assign(v, tg_from_f32(TG_SHAPE(2), 7, 8));
    CHECK_VALUES(r, 0, 1, 2);
    CHECK_VALUES(view, 0, 1, 2);
    CHECK_VALUES(v, 0, 7, 8);
    tg_tape_free(t);
    tg_scope_end(s);
    tg_variable_free(v);
}

static void random_is_seeded_and_shaped(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *r1 = tg_rng_new(42), *r2 = tg_rng_new(42), *r3 = tg_rng_new(43);
    tg_tensor *a = tg_random_normal(r1, TG_F64, TG_SHAPE(1000));
    tg_tensor *b = tg_random_normal(r2, TG_F64, TG_SHAPE(1000));
    tg_tensor *c = tg_random_normal(r3, TG_F64, TG_SHAPE(1000));
    double x[1000], y[1000], z[1000];
    tg_copy_out_f64(a, x, 1000);
    tg_copy_out_f64(b, y, 1000);
    tg_copy_out_f64(c, z, 1000);
    CHECK(memcmp(x, y, sizeof x) == 0 && memcmp(x, z, sizeof x) != 0);
    double mean = 0, var = 0;
    for (int i = 0; i < 1000; i++)
        mean += x[i] / 1000;
    for (int i = 0; i < 1000; i++)
        var += (x[i] - mean) * (x[i] - mean) / 1000;
    CHECK(fabs(mean) < 0.15 && fabs(var - 1) < 0.15);
    tg_tensor *u = tg_random_uniform(r1, TG_F32, TG_SHAPE(1000), .minval = -2, .maxval = -1);
    tg_tensor *tn = tg_truncated_normal(r1, TG_F64, TG_SHAPE(1000), .mean = 10, .stddev = 0.5);
    tg_copy_out_f64(u, x, 1000);
    tg_copy_out_f64(tn, y, 1000);
    bool in_range = true;
    for (int i = 0; i < 1000; i++)
        in_range &= x[i] >= -2 && x[i] < -1 && fabs(y[i] - 10) <= 1.0;
    CHECK(in_range);
    EXPECT_ERROR(tg_random_normal(r1, TG_I32, TG_SHAPE(2)) == NULL, "dtype must be float32 or float64");
    EXPECT_ERROR(tg_random_uniform(NULL, TG_F32, TG_SHAPE(2)) == NULL, "`rng` is NULL");
    tg_rng_free(r1);
    tg_rng_free(r2);
    tg_rng_free(r3);
    tg_scope_end(s);
}

int main(void)
{
    RUN(creation_and_copy_out);
    RUN(rank_limits);
    RUN(printing);
    RUN(scopes_free_and_detect_use_after_end);
    RUN(null_propagation_keeps_the_first_error);
    RUN(variables);
    RUN(snapshots_keep_the_value_read);
    RUN(random_is_seeded_and_shaped);
    return TEST_SUMMARY();
}
