/* The functional API (Keras's keras.Input, layer(x), keras.Model(inputs, outputs)): the
 * graph's layer and variable order (Keras's map_graph, worked out by hand below), shared
 * layers, the merging layers against hand-computed values, refusals that name the layer
 * and the shapes, the summary's "Connected to" column, and training with a loss per
 * output against PyTorch in float64 (tests/fixtures/functional_*.bin from
 * tools/make_functional_fixtures.py). */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "fixture.h"
#include "gradcheck.h"
#include "malloc_count.h"
#include "tapegrad.h"
#include "tmpfiles.h"

static tg_tensor *f64(tg_shape s, const double *v) { return tg_tensor_from(TG_F64, s, v); }

/* Two inputs a, b of 3 features; a Dense shared by both; out1 = Dense(2) on their
 * concatenation, out2 = Dense(1) on their sum. */
typedef struct two_by_two {
    tg_model *m;
    tg_layer *shared;
} two_by_two;

static two_by_two make_two_by_two(uint64_t seed)
{
    tg_keras_tensor *a = tg_input(TG_SHAPE(3), .name = "input_a");
    tg_keras_tensor *b = tg_input(TG_SHAPE(3), .name = "input_b");
    tg_layer *shared = tg_dense(.units = 4, .activation = TG_TANH);
    tg_keras_tensor *ha = tg_layer_apply(shared, a), *hb = tg_layer_apply(shared, b);
    tg_keras_tensor *out1 =
        tg_layer_apply(tg_dense(.units = 2, .name = "out1"), tg_layer_apply(tg_concatenate(), ha, hb));
    tg_keras_tensor *out2 =
        tg_layer_apply(tg_dense(.units = 1, .name = "out2"), tg_layer_apply(tg_add_layer(), ha, hb));
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(out1, out2), .name = "two", .seed = seed,
                                .dtype = TG_F64);
    return (two_by_two){m, shared};
}

/* Keras's map_graph on this graph (walking out1 then out2, depth from the outputs):
 * inputs at depth 3, the shared Dense at 2, Concatenate and Add at 1 (in first-visit
 * order), the output layers at 0. The shared Dense is one layer with one set of
 * variables; names are numbered per kind in that order. */
static void test_layer_and_variable_order(void)
{
    two_by_two t = make_two_by_two(1);
    REQUIRE(t.m);
    static const char *const names[] = {"input_a", "input_b", "dense", "concatenate", "add", "out1", "out2"};
    CHECK(tg_model_n_layers(t.m) == 7);
    for (int i = 0; i < 7 && i < tg_model_n_layers(t.m); i++)
        CHECK(strcmp(tg_layer_name(tg_model_layer(t.m, i)), names[i]) == 0);
    CHECK(strcmp(tg_layer_class_name(tg_model_layer(t.m, 0)), "InputLayer") == 0);
    int n = 0;
    tg_tensor *const *vars = tg_model_variables(t.m, &n);
    static const char *const var_names[] = {"dense/kernel", "dense/bias",  "out1/kernel",
                                            "out1/bias",    "out2/kernel", "out2/bias"};
    REQUIRE(n == 6);
    for (int i = 0; i < 6; i++)
        CHECK(strcmp(tg_variable_name(vars[i]), var_names[i]) == 0);
    CHECK(has_shape(vars[0], TG_SHAPE(3, 4)) && has_shape(vars[2], TG_SHAPE(8, 2)) &&
          has_shape(vars[4], TG_SHAPE(4, 1)));
    CHECK(tg_model_n_params(t.m, NULL, NULL) == 16 + 18 + 5);
    CHECK(tg_model_n_inputs(t.m) == 2 && tg_model_n_outputs(t.m) == 2);
    CHECK(strcmp(tg_model_output_name(t.m, 0), "out1") == 0 && strcmp(tg_model_output_name(t.m, 1), "out2") == 0);
    CHECK(tg_model_output_name(t.m, 2) == NULL);
    tg_model_free(t.m);
}

/* An input that reaches no output is kept (Keras: it may feed losses or metrics), placed
 * by map_graph at depth 0 before the layers of that depth: a (depth 1), then the unused
 * input, then the Dense (depth 0). Its data is still checked. */
static void test_unused_input(void)
{
    tg_keras_tensor *a = tg_input(TG_SHAPE(2), .name = "a"), *unused = tg_input(TG_SHAPE(5), .name = "unused");
    tg_keras_tensor *y = tg_layer_apply(tg_dense(.units = 1, .name = "y"), a);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a, unused), TG_KERAS_TENSORS(y));
    REQUIRE(m);
    CHECK(tg_model_n_layers(m) == 3 && tg_model_n_inputs(m) == 2);
    CHECK(strcmp(tg_layer_name(tg_model_layer(m, 0)), "a") == 0);
    CHECK(strcmp(tg_layer_name(tg_model_layer(m, 1)), "unused") == 0);
    CHECK(strcmp(tg_layer_name(tg_model_layer(m, 2)), "y") == 0);
    tg_scope *s = tg_scope_begin();
    const tg_tensor *good[] = {tg_zeros(TG_F32, TG_SHAPE(3, 2)), tg_zeros(TG_F32, TG_SHAPE(3, 5))};
    const tg_tensor *bad[] = {good[0], tg_zeros(TG_F32, TG_SHAPE(3, 4))};
    tg_tensor *out = NULL;
    CHECK(tg_model_call_list(m, good, 2, &out, 1) == 0 && has_shape(out, TG_SHAPE(3, 1)));
    EXPECT_ERROR(tg_model_call_list(m, bad, 2, &out, 1) == -1,
                 "input 1 of model \"functional\" (layer \"unused\") is incompatible with the layer: expected "
                 "shape=(None, 5), found shape=(3, 4)");
    tg_scope_end(s);
    tg_model_free(m);
}

/* The forward pass against the same math written out with the model's own weights,
 * and the shared layer's gradient: the sum of the gradients through a and through b. */
static void test_call_and_shared_gradient(void)
{
    two_by_two t = make_two_by_two(7);
    REQUIRE(t.m);
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = f64(TG_SHAPE(2, 3), (double[]){0.5, -1, 2, 0.25, 0, -0.75});
    tg_tensor *b = f64(TG_SHAPE(2, 3), (double[]){-0.5, 1.5, 0.1, 1, -2, 0.3});
    int n = 0;
    tg_tensor *const *v = tg_model_variables(t.m, &n);
    REQUIRE(n == 6);
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *y[2] = {0};
    const tg_tensor *xs[] = {a, b};
    REQUIRE(tg_model_call_list(t.m, xs, 2, y, 2) == 0);
    tg_tensor *loss = tg_sum(y[1]);
    tg_tape_end(tape);
    tg_tensor *ha = tg_tanh(tg_add(tg_matmul(a, v[0]), v[1])), *hb = tg_tanh(tg_add(tg_matmul(b, v[0]), v[1]));
    tg_tensor *h[] = {ha, hb};
    tg_tensor *want1 = tg_add(tg_matmul(tg_concat(h, 2, 1), v[2]), v[3]);
    tg_tensor *want2 = tg_add(tg_matmul(tg_add(ha, hb), v[4]), v[5]);
    TENSORS_AGREE(y[0], want1, 1e-14);
    TENSORS_AGREE(y[1], want2, 1e-14);

    /* d sum(out2) / d kernel = a^T ((1 - ha^2) * k2^T) + b^T ((1 - hb^2) * k2^T): one term
     * per path through the shared layer, summed. */
    tg_tensor *g = tg_gradient(tape, loss, v[0]);
    tg_tensor *k2t = tg_reshape(v[4], TG_SHAPE(1, 4));
    tg_tensor *one = tg_scalar_of(TG_F64, 1.0);
    tg_tensor *da = tg_mul(tg_sub(one, tg_mul(ha, ha)), k2t), *db = tg_mul(tg_sub(one, tg_mul(hb, hb)), k2t);
    tg_tensor *path_a = tg_matmul(a, da, .transpose_a = true), *path_b = tg_matmul(b, db, .transpose_a = true);
    TENSORS_AGREE(g, tg_add(path_a, path_b), 1e-13);
    CHECK(tg_model_trainable_variables(t.m, &n) && n == 6);
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(t.m);
}

/* One merge layer on two inputs, called on a batch of one. */
static tg_tensor *merge_once(tg_layer *merge, tg_shape sa, const double *va, tg_shape sb, const double *vb)
{
    tg_keras_tensor *a = tg_input(sa), *b = tg_input(sb);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(tg_layer_apply(merge, a, b)), .dtype = TG_F64);
    if (!m)
        return NULL;
    tg_shape ba = {.rank = sa.rank + 1, .dims = {1}}, bb = {.rank = sb.rank + 1, .dims = {1}};
    memcpy(ba.dims + 1, sa.dims, sizeof(int64_t) * (size_t)sa.rank);
    memcpy(bb.dims + 1, sb.dims, sizeof(int64_t) * (size_t)sb.rank);
    tg_tensor *y = NULL;
    const tg_tensor *xs[] = {f64(ba, va), f64(bb, vb)};
    tg_model_call_list(m, xs, 2, &y, 1);
    tg_model_free(m);
    return y;
}

static void test_merge_values(void)
{
    tg_scope *s = tg_scope_begin();
    const double x[] = {1, -2, 3}, y[] = {4, 5, -6};
    CHECK_TENSOR(merge_once(tg_add_layer(), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 3), 0, 5, 3, -3);
    CHECK_TENSOR(merge_once(tg_subtract_layer(), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 3), 0, -3, -7, 9);
    CHECK_TENSOR(merge_once(tg_multiply_layer(), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 3), 0, 4, -10, -18);
    CHECK_TENSOR(merge_once(tg_average_layer(), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 3), 0, 2.5, 1.5, -1.5);
    CHECK_TENSOR(merge_once(tg_maximum_layer(), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 3), 0, 4, 5, 3);
    CHECK_TENSOR(merge_once(tg_minimum_layer(), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 3), 0, 1, -2, -6);
    CHECK_TENSOR(merge_once(tg_concatenate(), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 6), 0, 1, -2, 3, 4, 5, -6);
    /* Keras's rule: a (3) against a (2, 3) gets a 1 after the batch axis, then broadcasts */
    const double z[] = {10, 20, 30, 40, 50, 60};
    CHECK_TENSOR(merge_once(tg_add_layer(), TG_SHAPE(3), x, TG_SHAPE(2, 3), z), TG_SHAPE(1, 2, 3), 0, 11, 18, 33, 41,
                 48, 63);
    /* Concatenate along axis 1 of (2, 3) and (1, 3): rows stacked */
    CHECK_TENSOR(merge_once(tg_concatenate(.axis = 1), TG_SHAPE(2, 3), z, TG_SHAPE(1, 3), x), TG_SHAPE(1, 3, 3), 0, 10,
                 20, 30, 40, 50, 60, 1, -2, 3);
    /* Dot(axes=1): 4 - 10 - 18 = -24, shape (1, 1); normalised: -24 / (sqrt(14) sqrt(77)) */
    CHECK_TENSOR(merge_once(tg_dot_layer(.axes = {1}), TG_SHAPE(3), x, TG_SHAPE(3), y), TG_SHAPE(1, 1), 0, -24);
    CHECK_TENSOR(merge_once(tg_dot_layer(.axes = {1}, .normalize = true), TG_SHAPE(3), x, TG_SHAPE(3), y),
                 TG_SHAPE(1, 1), 1e-15, -24 / (sqrt(14.0) * sqrt(77.0)));
    /* Dot(axes=(2, 1)) of (2, 3) and (3, 2): the matrix product, [[1, 2, 3], [4, 5, 6]] @
     * [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]] */
    const double p[] = {1, 2, 3, 4, 5, 6}, q[] = {1, 0, 0, 1, 1, 1};
    CHECK_TENSOR(merge_once(tg_dot_layer(.axes = {2, 1}), TG_SHAPE(2, 3), p, TG_SHAPE(3, 2), q), TG_SHAPE(1, 2, 2), 0,
                 4, 5, 10, 11);
    /* Dot(axes=1) of (2, 3) with (2, 4): sums over the 2; out (3, 4) = p^T r */
    const double r[] = {1, 0, 2, 0, 0, 1, 0, 3};
    CHECK_TENSOR(merge_once(tg_dot_layer(.axes = {1}), TG_SHAPE(2, 3), p, TG_SHAPE(2, 4), r), TG_SHAPE(1, 3, 4), 0, 1,
                 4, 2, 12, 2, 5, 4, 15, 3, 6, 6, 18);
    tg_scope_end(s);
}

/* Every merging layer in one graph, its gradients against float64 finite differences of
 * the variables: Multiply broadcasting a (3) against a (2, 3), Average, Maximum, Minimum,
 * Subtract, a normalised Dot over the last axis, Concatenate. */
typedef struct merge_graph {
    tg_model *m;
    tg_tensor *a, *b;
} merge_graph;

static tg_tensor *merge_graph_loss(void *user)
{
    merge_graph *g = user;
    const tg_tensor *xs[] = {g->a, g->b};
    tg_tensor *y = NULL;
    if (tg_model_call_list(g->m, xs, 2, &y, 1) != 0)
        return NULL;
    return tg_sum(tg_mul(y, y));
}

static void test_merge_gradients(void)
{
    tg_keras_tensor *a = tg_input(TG_SHAPE(3)), *b = tg_input(TG_SHAPE(2, 3));
    tg_keras_tensor *da = tg_layer_apply(tg_dense(.units = 3, .activation = TG_TANH), a); /* (3) */
    tg_keras_tensor *db = tg_layer_apply(tg_dense(.units = 3), b);                        /* (2, 3) */
    tg_keras_tensor *prod = tg_layer_apply(tg_multiply_layer(), da, db);
    tg_keras_tensor *avg = tg_layer_apply(tg_average_layer(), prod, db, da);
    tg_keras_tensor *hi = tg_layer_apply(tg_maximum_layer(), avg, db);
    tg_keras_tensor *lo = tg_layer_apply(tg_minimum_layer(), avg, prod);
    tg_keras_tensor *diff = tg_layer_apply(tg_subtract_layer(), hi, lo);
    tg_keras_tensor *cos = tg_layer_apply(tg_dot_layer(.axes = {2}, .normalize = true), diff, db); /* (2, 2) */
    tg_keras_tensor *flat = tg_layer_apply(tg_concatenate(), tg_layer_apply(tg_flatten(), cos),
                                           tg_layer_apply(tg_flatten(), diff)); /* (4 + 6) */
    tg_keras_tensor *out = tg_layer_apply(tg_dense(.units = 2), flat);
    merge_graph g = {.m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(out), .seed = 3, .dtype = TG_F64)};
    REQUIRE(g.m);
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(9);
    g.a = tg_random_uniform(r, TG_F64, TG_SHAPE(2, 3), .minval = -1, .maxval = 1);
    g.b = tg_random_uniform(r, TG_F64, TG_SHAPE(2, 2, 3), .minval = -1, .maxval = 1);
    tg_rng_free(r);
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(g.m, &n);
    CHECK(n == 6);
    CHECK(gradcheck_variables("merging layers", merge_graph_loss, vars, n, &g, 1e-6, 1e-6));
    tg_scope_end(s);
    tg_model_free(g.m);
}

/* A graph left on its own by a failed apply: the layers that no model took. */
static void free_inputs(tg_keras_tensor *const *ts, int n)
{
    for (int i = 0; i < n; i++)
        tg_layer_free(tg_keras_tensor_layer(ts[i]));
}

static void test_refusals(void)
{
    int line;
    /* merges of shapes that do not fit name the layer and both shapes */
    tg_keras_tensor *a = tg_input(TG_SHAPE(3)), *b = tg_input(TG_SHAPE(4)), *c = tg_input(TG_SHAPE(4, 2));
    tg_layer *add = tg_add_layer(), *cat = tg_concatenate(), *dot = tg_dot_layer(.axes = {1}),
             *sub = tg_subtract_layer(.name = "diff");
    line = __LINE__ + 1;
    EXPECT_ERROR(tg_layer_apply(add, a, b) == NULL,
                 "Add \"add\": Inputs have incompatible shapes. Received shapes (None, 3) and (None, 4)");
    CHECK_ERROR("test_functional.c");
    (void)line;
    EXPECT_ERROR(tg_layer_apply(cat, a, c) == NULL,
                 "Concatenate \"concatenate\": A `Concatenate` layer requires inputs with "
                 "matching shapes except for the concatenation axis. Received: "
                 "input_shape=[(None, 3), (None, 4, 2)]");
    EXPECT_ERROR(tg_layer_apply(dot, a, b) == NULL,
                 "Dot \"dot\": Incompatible input shapes: axis values 3 (at axis 1) != 4 (at "
                 "axis 1). Full input shapes: (None, 3), (None, 4)");
    EXPECT_ERROR(tg_layer_apply(sub, a, a, a) == NULL,
                 "Subtract \"diff\": A `Subtract` layer should be called on exactly 2 inputs. Received: "
                 "input_shape=[(None, 3), (None, 3), (None, 3)]");
    /* a Dense on an input of the wrong width, shared */
    tg_layer *shared = tg_dense(.units = 2);
    CHECK(tg_layer_apply(shared, a) != NULL);
    EXPECT_ERROR(tg_layer_apply(shared, b) == NULL,
                 "layer \"dense\" (Dense) is shared, and its first call took examples of "
                 "shape (None, 3) (1 inputs), this one (None, 4)");
    tg_layer_free(add);
    tg_layer_free(cat);
    tg_layer_free(dot);
    tg_layer_free(sub);
    tg_layer_free(shared);
    free_inputs((tg_keras_tensor *[]){a, b, c}, 3);

    /* an output that the inputs do not reach: Keras's "Graph disconnected" */
    tg_keras_tensor *x = tg_input(TG_SHAPE(3), .name = "x"), *other = tg_input(TG_SHAPE(2), .name = "other");
    tg_keras_tensor *h = tg_layer_apply(tg_dense(.units = 4, .name = "hidden"), x);
    tg_keras_tensor *joined = tg_layer_apply(tg_concatenate(.name = "join"), h, other);
    EXPECT_ERROR(tg_functional(TG_KERAS_TENSORS(x), TG_KERAS_TENSORS(joined)) == NULL,
                 "Graph disconnected: cannot find parent for tensor (None, 2) (the output of \"other\") at layer "
                 "\"join\"");
    /* (the failed model freed the graph's layers, as a failed tg_sequential does) */

    /* a model input that tg_input did not make, and a repeated name */
    tg_keras_tensor *i1 = tg_input(TG_SHAPE(3), .name = "same"), *i2 = tg_input(TG_SHAPE(3), .name = "same");
    tg_keras_tensor *sum = tg_layer_apply(tg_add_layer(), i1, i2);
    EXPECT_ERROR(tg_functional(TG_KERAS_TENSORS(i1, i2), TG_KERAS_TENSORS(sum)) == NULL,
                 "The name \"same\" is used 2 times in the model");
    tg_keras_tensor *j = tg_input(TG_SHAPE(3), .name = "j");
    tg_keras_tensor *hj = tg_layer_apply(tg_dense(.units = 2, .name = "dj"), j);
    EXPECT_ERROR(tg_functional(TG_KERAS_TENSORS(hj), TG_KERAS_TENSORS(hj)) == NULL,
                 "input 0 is the output of layer \"dj\", not of tg_input");
    /* a NULL from a failed apply keeps its own error */
    tg_keras_tensor *k = tg_input(TG_SHAPE(3), .name = "k");
    tg_layer *bad = tg_dense(.units = 0);
    EXPECT_ERROR(tg_functional(TG_KERAS_TENSORS(k), TG_KERAS_TENSORS(tg_layer_apply(bad, k))) == NULL,
                 "units must be a positive integer");

    /* a model fed the wrong shape names the input layer and both shapes */
    two_by_two t = make_two_by_two(3);
    REQUIRE(t.m);
    tg_scope *s = tg_scope_begin();
    tg_tensor *good = tg_zeros(TG_F64, TG_SHAPE(2, 3)), *wide = tg_zeros(TG_F64, TG_SHAPE(2, 4)), *y[2];
    const tg_tensor *good_wide[] = {good, wide}, *just_good[] = {good};
    EXPECT_ERROR(tg_model_call_list(t.m, good_wide, 2, y, 2) == -1,
                 "input 1 of model \"two\" (layer \"input_b\") is incompatible with the layer: expected shape=(None, "
                 "3), found shape=(2, 4)");
    EXPECT_ERROR(tg_model_call(t.m, good) == NULL,
                 "model \"two\" has 2 inputs and 2 outputs: call it with tg_model_call_list");
    EXPECT_ERROR(tg_model_call_list(t.m, just_good, 1, y, 2) == -1,
                 "model \"two\" takes 2 inputs and gives 2 outputs, but the call has 1 inputs");
    EXPECT_ERROR(tg_model_add(t.m, tg_dense(.units = 1)) == -1, "model \"two\" is functional");
    tg_keras_tensor *fresh = tg_input(TG_SHAPE(3));
    EXPECT_ERROR(tg_layer_apply(t.shared, fresh) == NULL, "layer \"dense\" already belongs to model \"two\"");
    tg_layer_free(tg_keras_tensor_layer(fresh));
    tg_scope_end(s);
    tg_model_free(t.m);
}

/* Keras's summary of a model that is not a chain: four columns at 30%, 56%, 74% of the
 * line (108 wide by default, at most the terminal's columns - 4: 76 for a stream that is
 * not a terminal), the last one "Connected to": each node's inbound layer[node][tensor]. */
static void test_summary(void)
{
    two_by_two t = make_two_by_two(1);
    REQUIRE(t.m);
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    REQUIRE(out);
    CHECK(tg_model_summary(t.m, out) == 0);
    fclose(out);
    CHECK(strstr(buf, "Model: \"two\"\n") == buf);
    CHECK(strstr(buf, "┃ Layer (type)") && strstr(buf, "┃ Connected to"));
    /* widths with padding 21, 19, 12, 19 (below): "input_a (InputLayer)" wraps in 19 */
    CHECK(strstr(buf, "│ input_a             │ (None, 3)         │          0 │ -                 │\n"
                      "│ (InputLayer)        │"));
    /* the shared layer: both of its calls; Concatenate and Add: both nodes of dense */
    CHECK(strstr(buf, "│ dense (Dense)       │ (None, 4)         │         16 │ input_a[0][0],    │\n"
                      "│                     │                   │            │ input_b[0][0]     │\n"));
    CHECK(strstr(buf, "│ concatenate         │ (None, 8)         │          0 │ dense[0][0],      │\n"
                      "│ (Concatenate)       │                   │            │ dense[1][0]       │\n"));
    CHECK(strstr(buf, "│ out1 (Dense)        │ (None, 2)         │         18 │ concatenate[0][0] │\n"));
    CHECK(strstr(buf, " Total params: 39 (312.00 B)\n"));
    /* every table line is 76 columns wide: L = min(108, 80 - 4); Keras's widths int(0.3 L) = 22,
     * 20, 14, 20, each padded by 2 (84), less rich's ratio_reduce of the excess 84 - (76 - 5)
     * = 13 (3, 3, 4, 3): 21 + 19 + 12 + 19, and five borders */
    int lines = 0;
    for (char *p = buf; *p;) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        int cols = 0;
        for (char *c = p; c < nl; c++)
            cols += ((unsigned char)*c & 0xC0) != 0x80; /* count code points */
        if (p[0] == '\xe2') {                           /* a line of the table */
            CHECK(cols == 76);
            lines++;
        }
        p = nl + 1;
    }
    CHECK(lines == 3 + 12 + 6 + 1); /* header; 7 rows, 5 of them on two lines; 6 rules; bottom */
    free(buf);
    tg_model_free(t.m);

    /* a call of a model's layer outside the model is not among its connections, and the
     * layer that made that call's input may be freed */
    tg_keras_tensor *in = tg_input(TG_SHAPE(3), .name = "in");
    tg_layer *used = tg_dense(.units = 2, .name = "used"), *side = tg_dense(.units = 3, .name = "side");
    tg_keras_tensor *kept = tg_layer_apply(used, in);
    CHECK(tg_layer_apply(used, tg_layer_apply(side, in)) != NULL);
    tg_model *part = tg_functional(TG_KERAS_TENSORS(in), TG_KERAS_TENSORS(kept), .name = "part");
    REQUIRE(part);
    tg_layer_free(side); /* not the model's */
    CHECK(tg_model_n_layers(part) == 2);
    out = open_memstream(&buf, &size);
    CHECK(tg_model_summary(part, out, .line_length = 108) == 0);
    fclose(out);
    CHECK(!strstr(buf, "Connected to") && strstr(buf, "│ used (Dense)") && !strstr(buf, "side"));
    free(buf);
    tg_model_free(part);

    /* a chain of one input and one output keeps the three columns of a Sequential */
    tg_keras_tensor *x = tg_input(TG_SHAPE(4));
    tg_model *chain = tg_functional(TG_KERAS_TENSORS(x), TG_KERAS_TENSORS(tg_layer_apply(tg_dense(.units = 2), x)));
    REQUIRE(chain);
    out = open_memstream(&buf, &size);
    CHECK(tg_model_summary(chain, out) == 0);
    fclose(out);
    CHECK(!strstr(buf, "Connected to") && strstr(buf, "│ input_layer (InputLayer)"));
    free(buf);
    tg_model_free(chain);
}

/* ---- training with a loss per output, against tools/make_functional_fixtures.py --------- */
enum { FIT_MAXV = 64 };
typedef struct fx_arr {
    char name[64];
    tg_shape shape;
    double v[FIT_MAXV];
} fx_arr;

typedef struct fit_golden {
    fx_arr data[4]; /* xa, xb, y1, y2 */
    fx_arr vars[6], after[6];
    int n_data, n_vars, n_after;
    char log_names[4][32];
    double logs[4];
    int n_logs;
} fit_golden;

static bool read_fit_golden(fit_golden *g)
{
    fx_reader r;
    *g = (fit_golden){0};
    if (!fx_open(&r, "functional_fit.txt", "tools/make_functional_fixtures.py")) {
        printf("  %s\n", r.error);
        return false;
    }
    char tag[64], *rest;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        fx_arr *a = NULL;
        if (strcmp(tag, "var") == 0 && g->n_vars < 6)
            a = &g->vars[g->n_vars++];
        else if (strcmp(tag, "after") == 0 && g->n_after < 6)
            a = &g->after[g->n_after++];
        else if (strcmp(tag, "log") == 0 && g->n_logs < 4) {
            if (!fx_word(&rest, g->log_names[g->n_logs], sizeof g->log_names[0]) ||
                !fx_number(&rest, &g->logs[g->n_logs]))
                fx_fail(&r, "a log record is NAME VALUE");
            g->n_logs++;
            continue;
        } else if (g->n_data < 4) {
            a = &g->data[g->n_data++];
            snprintf(a->name, sizeof a->name, "%s", tag);
            if (!fx_array(&rest, &a->shape, a->v, FIT_MAXV))
                fx_fail(&r, "bad array");
            continue;
        }
        if (!a || !fx_word(&rest, a->name, sizeof a->name) || !fx_array(&rest, &a->shape, a->v, FIT_MAXV))
            fx_fail(&r, "unexpected record %s", tag);
    }
    bool ok = !r.failed && g->n_data == 4 && g->n_vars == 6 && g->n_after == 6 && g->n_logs == 4;
    if (!ok)
        printf("  functional_fit.txt: %s\n", r.failed ? r.error : "incomplete");
    fx_close(&r);
    return ok;
}

/* The fixture's graph: make_two_by_two with a sigmoid on out2. */
static tg_model *make_fit_model(void)
{
    tg_keras_tensor *a = tg_input(TG_SHAPE(3), .name = "input_a");
    tg_keras_tensor *b = tg_input(TG_SHAPE(3), .name = "input_b");
    tg_layer *shared = tg_dense(.units = 4, .activation = TG_TANH);
    tg_keras_tensor *ha = tg_layer_apply(shared, a), *hb = tg_layer_apply(shared, b);
    tg_keras_tensor *out1 =
        tg_layer_apply(tg_dense(.units = 2, .name = "out1"), tg_layer_apply(tg_concatenate(), ha, hb));
    tg_keras_tensor *out2 = tg_layer_apply(tg_dense(.units = 1, .activation = TG_SIGMOID, .name = "out2"),
                                           tg_layer_apply(tg_add_layer(), ha, hb));
    return tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(out1, out2), .dtype = TG_F64);
}

/* One fit step of two inputs and two outputs, mse on out1 and binary cross-entropy on
 * out2 weighted 0.5, with Keras's logs: the total "loss", each output's weighted part
 * "<output>_loss" and "out2_accuracy"; the weights after the step, all as PyTorch
 * computed them in float64. Then evaluate and predict on the same lists. */
static void test_fit_two_inputs_two_outputs(void)
{
    fit_golden g;
    REQUIRE(read_fit_golden(&g));
    tg_model *m = make_fit_model();
    REQUIRE(m);
    tg_scope *s = tg_scope_begin();
    int n = 0;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    REQUIRE(n == 6);
    for (int i = 0; i < 6; i++) {
        CHECK(strcmp(tg_variable_name(vars[i]), g.vars[i].name) == 0);
        CHECK(tg_assign(vars[i], f64(g.vars[i].shape, g.vars[i].v)) == 0);
    }
    tg_tensor *data[4];
    for (int i = 0; i < 4; i++)
        data[i] = f64(g.data[i].shape, g.data[i].v);
    const tg_tensor *inputs[] = {data[0], data[1]}, *targets[] = {data[2], data[3]};
    const tg_loss losses[] = {{.kind = TG_LOSS_MSE}, {.kind = TG_LOSS_BINARY_CROSSENTROPY}};
    const double weights[] = {1.0, 0.5};
    const tg_metric_list metrics[] = {TG_METRICS(), TG_METRICS(TG_ACCURACY)};
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .losses = losses, .n_losses = 2,
                       .loss_weights = weights, .n_loss_weights = 2, .output_metrics = metrics,
                       .n_output_metrics = 2) == 0);
    tg_history *h = tg_fit(m, NULL, NULL, .inputs = inputs, .n_inputs = 2, .targets = targets, .n_targets = 2,
                           .batch_size = 4, .shuffle = false, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(h);
    CHECK(tg_history_n_keys(h) == 4);
    for (int i = 0; i < 4; i++) {
        int count = 0;
        const double *v = tg_history_get(h, g.log_names[i], &count);
        CHECK(v && count == 1);
        if (v)
            CHECK_NEAR(v[0], g.logs[i], 1e-12);
        CHECK(i >= tg_history_n_keys(h) || strcmp(tg_history_key(h, i), g.log_names[i]) == 0); /* Keras's order */
    }
    for (int i = 0; i < 6; i++)
        TENSOR_MATCHES(vars[i], &g.after[i].shape, g.after[i].v, fx_size(&g.after[i].shape), 1e-12);
    tg_history_free(h);

    /* evaluate after the step: the same names, the loss now that of the updated weights */
    tg_logs logs;
    CHECK(tg_evaluate(m, NULL, NULL, &logs, .inputs = inputs, .n_inputs = 2, .targets = targets, .n_targets = 2) == 0);
    CHECK(logs.n == 4 && !isnan(tg_logs_get(&logs, "out1_loss")) && !isnan(tg_logs_get(&logs, "out2_accuracy")));
    CHECK_NEAR(tg_logs_get(&logs, "loss"), tg_logs_get(&logs, "out1_loss") + tg_logs_get(&logs, "out2_loss"), 1e-14);
    CHECK(tg_logs_get(&logs, "loss") < g.logs[0]); /* one step of SGD went downhill */
    tg_tensor *outs[2] = {0};
    tg_tensor *first = tg_predict(m, NULL, .inputs = inputs, .n_inputs = 2, .outputs = outs, .n_outputs = 2);
    CHECK(first && first == outs[0] && has_shape(outs[0], TG_SHAPE(4, 2)) && has_shape(outs[1], TG_SHAPE(4, 1)));
    tg_tensor *direct[2] = {0};
    CHECK(tg_model_call_list(m, inputs, 2, direct, 2) == 0);
    TENSORS_AGREE(outs[0], direct[0], 0);
    TENSORS_AGREE(outs[1], direct[1], 0);
    tg_scope_end(s);
    tg_model_free(m);
}

/* A step of lists of the user's (.train_step_list) gets fit's batches as lists and its
 * .user; delegating to the default list step trains as fit's own step does. */
static int counting_step(tg_model *m, tg_tensor *const *xs, int nx, tg_tensor *const *ys, int ny,
                         const tg_tensor *sample_weight, tg_logs *logs, void *user)
{
    int *calls = user;
    if (nx != 2 || ny != 2 || tg_dim(xs[1], 0) != tg_dim(ys[0], 0))
        return -1;
    (*calls)++;
    return tg_train_step_list_default(m, xs, nx, ys, ny, sample_weight, logs, NULL);
}

static void test_custom_list_step(void)
{
    fit_golden g;
    REQUIRE(read_fit_golden(&g));
    tg_model *m = make_fit_model();
    REQUIRE(m);
    tg_scope *s = tg_scope_begin();
    int n = 0;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    REQUIRE(n == 6);
    for (int i = 0; i < 6; i++)
        CHECK(tg_assign(vars[i], f64(g.vars[i].shape, g.vars[i].v)) == 0);
    tg_tensor *data[4];
    for (int i = 0; i < 4; i++)
        data[i] = f64(g.data[i].shape, g.data[i].v);
    const tg_tensor *inputs[] = {data[0], data[1]}, *targets[] = {data[2], data[3]};
    const tg_loss losses[] = {{.kind = TG_LOSS_MSE}, {.kind = TG_LOSS_BINARY_CROSSENTROPY}};
    const double weights[] = {1.0, 0.5};
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .losses = losses, .n_losses = 2,
                       .loss_weights = weights, .n_loss_weights = 2) == 0);
    int calls = 0;
    tg_history *h =
        tg_fit(m, NULL, NULL, .inputs = inputs, .n_inputs = 2, .targets = targets, .n_targets = 2, .batch_size = 4,
               .shuffle = false, .verbose = TG_VERBOSE_SILENT, .train_step_list = counting_step, .user = &calls);
    REQUIRE(h);
    CHECK(calls == 1);
    for (int i = 0; i < 6; i++)
        TENSOR_MATCHES(vars[i], &g.after[i].shape, g.after[i].v, fx_size(&g.after[i].shape), 1e-12);
    tg_history_free(h);
    EXPECT_ERROR(tg_fit(m, NULL, NULL, .inputs = inputs, .n_inputs = 2, .targets = targets, .n_targets = 2,
                        .verbose = TG_VERBOSE_SILENT, .train_step = tg_train_step_default) == NULL,
                 "give a step of lists as .train_step_list");
    tg_scope_end(s);
    tg_model_free(m);
}

#ifdef MALLOC_CAN_COUNT
/* A warm training step of a functional model allocates nothing from the system, as a
 * Sequential's (tests/test_step_allocations.c): the graph's slots, the batch lists and the
 * merges' inputs come from the step scope's arena. Counted from batch 3 to the end of the
 * second epoch, validation included (the first epoch's validation traces its function). */
static int epoch_now;

static int note_epoch(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)cb, (void)m, (void)logs;
    epoch_now = epoch;
    return 0;
}

static int count_from_batch_3(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)cb, (void)m, (void)logs;
    if (batch == 3 && epoch_now == 1)
        malloc_count_start();
    return 0;
}

static int stop_counting(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)cb, (void)m, (void)logs;
    if (epoch == 1)
        malloc_count_stop();
    return 0;
}

static void test_warm_steps_allocate_nothing(void)
{
    tg_model *m = make_fit_model();
    REQUIRE(m);
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(4);
    tg_tensor *xa = tg_random_uniform(r, TG_F64, TG_SHAPE(640, 3)),
              *xb = tg_random_uniform(r, TG_F64, TG_SHAPE(640, 3));
    tg_tensor *y1 = tg_random_uniform(r, TG_F64, TG_SHAPE(640, 2));
    tg_tensor *y2 =
        tg_cast(tg_greater(tg_random_uniform(r, TG_F64, TG_SHAPE(640, 1)), tg_scalar_of(TG_F64, 0.5)), TG_F64);
    tg_rng_free(r);
    const tg_tensor *ins[] = {xa, xb}, *ys[] = {y1, y2};
    const tg_loss losses[] = {{.kind = TG_LOSS_MSE}, {.kind = TG_LOSS_BINARY_CROSSENTROPY}};
    /* no metrics, as the Sequential's count: a metric's update allocates its values */
    REQUIRE(tg_compile(m, .optimizer = tg_adam(), .losses = losses, .n_losses = 2) == 0);
    tg_callback cb = {
        .on_epoch_begin = note_epoch, .on_batch_begin = count_from_batch_3, .on_epoch_end = stop_counting};
    tg_history *h = tg_fit(m, NULL, NULL, .inputs = ins, .n_inputs = 2, .targets = ys, .n_targets = 2, .batch_size = 32,
                           .epochs = 2, .validation_split = 0.25, .verbose = TG_VERBOSE_SILENT,
                           .callbacks = (tg_callback *[]){&cb}, .n_callbacks = 1);
    CHECK(h != NULL);
    long n = (long)atomic_load(&malloc_calls);
    printf("  two inputs, two outputs, batch 32: %ld allocations in batches 3..14 and validation\n", n);
    CHECK(n == 0);
    tg_history_free(h);
    tg_scope_end(s);
    tg_model_free(m);
}
#endif

/* Lists that do not fit the model, and compile options that do not fit its outputs. */
static void test_fit_refusals(void)
{
    tg_model *m = make_fit_model();
    REQUIRE(m);
    tg_scope *s = tg_scope_begin();
    const tg_loss losses[] = {{.kind = TG_LOSS_MSE}, {.kind = TG_LOSS_BINARY_CROSSENTROPY}};
    const tg_metric_list metrics[] = {TG_METRICS(TG_ACCURACY)};
    tg_optimizer *refused = tg_sgd(); /* a failed compile leaves it ours */
    EXPECT_ERROR(tg_compile(m, .optimizer = refused, .losses = losses, .n_losses = 1) == -1,
                 "model \"functional\" has 2 outputs, but .losses has 1 entries");
    EXPECT_ERROR(
        tg_compile(m, .optimizer = refused, .losses = losses, .n_losses = 2, .metrics = TG_METRICS(TG_ACCURACY)) == -1,
        "give its metrics as .output_metrics, one list per output");
    EXPECT_ERROR(tg_compile(m, .optimizer = refused, .losses = losses, .n_losses = 2, .output_metrics = metrics,
                            .n_output_metrics = 1) == -1,
                 ".output_metrics 1");
    tg_optimizer_free(refused);
    tg_optimizer *opt = tg_sgd();
    REQUIRE(tg_compile(m, .optimizer = opt, .losses = losses, .n_losses = 2) == 0);
    tg_tensor *xa = tg_zeros(TG_F64, TG_SHAPE(4, 3)), *xb = tg_zeros(TG_F64, TG_SHAPE(4, 3)),
              *wide = tg_zeros(TG_F64, TG_SHAPE(4, 5)), *y1 = tg_zeros(TG_F64, TG_SHAPE(4, 2)),
              *y2 = tg_zeros(TG_F64, TG_SHAPE(4, 1)), *short_y = tg_zeros(TG_F64, TG_SHAPE(3, 1));
    const tg_tensor *ins[] = {xa, xb}, *bad_ins[] = {xa, wide}, *ys[] = {y1, y2}, *bad_ys[] = {y1, short_y};
    EXPECT_ERROR(tg_fit(m, xa, y1, .verbose = TG_VERBOSE_SILENT) == NULL,
                 "model \"functional\" has 2 inputs and 2 outputs: give its data as lists");
    EXPECT_ERROR(tg_fit(m, NULL, NULL, .inputs = ins, .n_inputs = 1, .targets = ys, .n_targets = 2,
                        .verbose = TG_VERBOSE_SILENT) == NULL,
                 "has 2 inputs and 2 outputs, but .inputs holds 1 tensors and .targets 2");
    EXPECT_ERROR(tg_fit(m, NULL, NULL, .inputs = bad_ins, .n_inputs = 2, .targets = ys, .n_targets = 2,
                        .verbose = TG_VERBOSE_SILENT) == NULL,
                 "input 1 of model \"functional\" (layer \"input_b\") is incompatible with the layer: expected "
                 "shape=(None, 3), found shape=(1, 5)");
    EXPECT_ERROR(tg_fit(m, NULL, NULL, .inputs = ins, .n_inputs = 2, .targets = bad_ys, .n_targets = 2,
                        .verbose = TG_VERBOSE_SILENT) == NULL,
                 "`targets[1]` has 3 rows but `inputs[0]` has 4");
    tg_logs logs;
    EXPECT_ERROR(tg_evaluate(m, NULL, NULL, &logs, .inputs = ins, .n_inputs = 2, .targets = ys, .n_targets = 1) == -1,
                 ".targets 1");
    EXPECT_ERROR(tg_predict(m, NULL, .inputs = ins, .n_inputs = 2) == NULL,
                 "model \"functional\" has 2 outputs: give .outputs");
    tg_scope_end(s);
    tg_model_free(m);
}

/* Keras's log names for several outputs are long ("val_<output>_<metric>"): kept whole,
 * validation included. */
static void test_long_log_names(void)
{
    tg_keras_tensor *x = tg_input(TG_SHAPE(2));
    tg_keras_tensor *h = tg_layer_apply(tg_dense(.units = 3, .activation = TG_RELU), x);
    tg_keras_tensor *p =
        tg_layer_apply(tg_dense(.units = 1, .activation = TG_SIGMOID, .name = "probability_of_rain_tomorrow"), h);
    tg_keras_tensor *r = tg_layer_apply(tg_dense(.units = 1, .name = "expected_rainfall_in_millimetres"), h);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(x), TG_KERAS_TENSORS(p, r), .seed = 5);
    REQUIRE(m);
    const tg_loss losses[] = {{.kind = TG_LOSS_BINARY_CROSSENTROPY}, {.kind = TG_LOSS_MSE}};
    const tg_metric_list metrics[] = {TG_METRICS(TG_ACCURACY), TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR)};
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(), .losses = losses, .n_losses = 2, .output_metrics = metrics,
                       .n_output_metrics = 2) == 0);
    tg_scope *s = tg_scope_begin();
    tg_tensor *xs = tg_tensor_from(TG_F32, TG_SHAPE(4, 2), ((float[]){1, 2, 3, 4, 5, 6, 7, 8}));
    tg_tensor *y1 = tg_tensor_from(TG_F32, TG_SHAPE(4, 1), ((float[]){0, 1, 0, 1}));
    tg_tensor *y2 = tg_tensor_from(TG_F32, TG_SHAPE(4, 1), ((float[]){0.5f, 2, 0, 7}));
    const tg_tensor *ins[] = {xs}, *ys[] = {y1, y2};
    tg_history *hist = tg_fit(m, NULL, NULL, .inputs = ins, .n_inputs = 1, .targets = ys, .n_targets = 2,
                              .validation_split = 0.5, .epochs = 2, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(hist);
    static const char *const keys[] = {"loss",
                                       "probability_of_rain_tomorrow_loss",
                                       "expected_rainfall_in_millimetres_loss",
                                       "probability_of_rain_tomorrow_accuracy",
                                       "expected_rainfall_in_millimetres_mean_absolute_error",
                                       "val_loss",
                                       "val_probability_of_rain_tomorrow_loss",
                                       "val_expected_rainfall_in_millimetres_loss",
                                       "val_probability_of_rain_tomorrow_accuracy",
                                       "val_expected_rainfall_in_millimetres_mean_absolute_error"};
    CHECK(tg_history_n_keys(hist) == 10);
    for (int i = 0; i < 10 && i < tg_history_n_keys(hist); i++)
        CHECK(strcmp(tg_history_key(hist, i), keys[i]) == 0);
    int n = 0;
    const double *val = tg_history_get(hist, keys[9], &n);
    CHECK(val && n == 2 && isfinite(val[0]) && isfinite(val[1]));
    tg_history_free(hist);
    tg_scope_end(s);
    tg_model_free(m);
}

/* Keras's validation_data=([x1, x2], [y1, y2]): validating on given lists gives the
 * history a validation_split of the same rows gives, value for value, and a list of the
 * wrong length is refused naming it. */
static tg_model *two_by_two_model(void)
{
    tg_keras_tensor *a = tg_input(TG_SHAPE(2)), *b = tg_input(TG_SHAPE(1));
    tg_keras_tensor *h = tg_layer_apply_at(TG_LOC, tg_concatenate(), (const tg_keras_tensor *const[]){a, b}, 2);
    tg_keras_tensor *p = tg_layer_apply(tg_dense(.units = 1, .activation = TG_SIGMOID), h);
    tg_keras_tensor *r = tg_layer_apply(tg_dense(.units = 1), h);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(p, r), .seed = 9);
    const tg_loss losses[] = {{.kind = TG_LOSS_BINARY_CROSSENTROPY}, {.kind = TG_LOSS_MSE}};
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05), .losses = losses, .n_losses = 2) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

static void test_validation_lists(void)
{
    tg_scope *s = tg_scope_begin();
    enum { N = 8, V = 4 };
    float a[2 * (N + V)], b[N + V], y1[N + V], y2[N + V];
    for (int i = 0; i < N + V; i++) {
        a[2 * i] = (float)(i % 5) - 2, a[2 * i + 1] = (float)(i % 3), b[i] = (float)i / 4;
        y1[i] = (float)(i % 2), y2[i] = a[2 * i] - b[i];
    }
    tg_tensor *ta = tg_tensor_from(TG_F32, TG_SHAPE(N + V, 2), a), *tb = tg_tensor_from(TG_F32, TG_SHAPE(N + V, 1), b);
    tg_tensor *t1 = tg_tensor_from(TG_F32, TG_SHAPE(N + V, 1), y1),
              *t2 = tg_tensor_from(TG_F32, TG_SHAPE(N + V, 1), y2);
    const tg_tensor *all_in[] = {ta, tb}, *all_out[] = {t1, t2};
    const tg_tensor *tr_in[] = {tg_slice(ta, TG_SHAPE(0, 0), TG_SHAPE(N, 2)),
                                tg_slice(tb, TG_SHAPE(0, 0), TG_SHAPE(N, 1))};
    const tg_tensor *tr_out[] = {tg_slice(t1, TG_SHAPE(0, 0), TG_SHAPE(N, 1)),
                                 tg_slice(t2, TG_SHAPE(0, 0), TG_SHAPE(N, 1))};
    const tg_tensor *va_in[] = {tg_slice(ta, TG_SHAPE(N, 0), TG_SHAPE(V, 2)),
                                tg_slice(tb, TG_SHAPE(N, 0), TG_SHAPE(V, 1))};
    const tg_tensor *va_out[] = {tg_slice(t1, TG_SHAPE(N, 0), TG_SHAPE(V, 1)),
                                 tg_slice(t2, TG_SHAPE(N, 0), TG_SHAPE(V, 1))};

    tg_model *by_split = two_by_two_model(), *by_lists = two_by_two_model();
    REQUIRE(by_split && by_lists);
    tg_history *hs = tg_fit(by_split, NULL, NULL, .inputs = all_in, .n_inputs = 2, .targets = all_out, .n_targets = 2,
                            .validation_split = (double)V / (N + V), .epochs = 3, .batch_size = 3, .seed = 4,
                            .verbose = TG_VERBOSE_SILENT);
    tg_history *hl =
        tg_fit(by_lists, NULL, NULL, .inputs = tr_in, .n_inputs = 2, .targets = tr_out, .n_targets = 2,
               .validation_inputs = va_in, .n_validation_inputs = 2, .validation_targets = va_out,
               .n_validation_targets = 2, .epochs = 3, .batch_size = 3, .seed = 4, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(hs && hl);
    CHECK(tg_history_n_keys(hl) == tg_history_n_keys(hs));
    for (int k = 0; k < tg_history_n_keys(hs); k++) {
        int ns = 0, nl = 0;
        const double *vs = tg_history_get(hs, tg_history_key(hs, k), &ns);
        const double *vl = tg_history_get(hl, tg_history_key(hs, k), &nl);
        CHECK(vs && vl && ns == 3 && nl == 3);
        for (int e = 0; vs && vl && e < 3 && e < nl; e++)
            CHECK(vs[e] == vl[e]);
    }
    int n = 0;
    const double *val = tg_history_get(hl, "val_loss", &n);
    CHECK(val && n == 3 && isfinite(val[2]));
    tg_history_free(hs);
    tg_history_free(hl);

    tg_fit_opts short_list = {.inputs = tr_in,
                              .n_inputs = 2,
                              .targets = tr_out,
                              .n_targets = 2,
                              .validation_inputs = va_in,
                              .n_validation_inputs = 1,
                              .validation_targets = va_out,
                              .n_validation_targets = 2,
                              .epochs = 1,
                              .batch_size = 32,
                              .verbose = TG_VERBOSE_SILENT};
    int line = __LINE__ + 1;
    EXPECT_ERROR(!tg_fit_at(TG_LOC, by_lists, NULL, NULL, short_list), "tg_fit (validation lists): model \"functional");
    char at[48];
    snprintf(at, sizeof at, "test_functional.c:%d", line);
    CHECK_ERROR(at);
    EXPECT_ERROR(!tg_fit(by_lists, NULL, NULL, .inputs = tr_in, .n_inputs = 2, .targets = tr_out, .n_targets = 2,
                         .validation_inputs = va_in, .n_validation_inputs = 2, .verbose = TG_VERBOSE_SILENT),
                 "validation_inputs and validation_targets go together");
    EXPECT_ERROR(!tg_fit(by_lists, NULL, NULL, .inputs = tr_in, .n_inputs = 2, .targets = tr_out, .n_targets = 2,
                         .validation_inputs = va_in, .n_validation_inputs = 2, .validation_targets = va_out,
                         .n_validation_targets = 2, .validation_split = 0.5, .verbose = TG_VERBOSE_SILENT),
                 "not several");
    tg_model_free(by_split);
    tg_model_free(by_lists);
    tg_scope_end(s);
}

/* No fixed limit on the number of inputs: twelve inputs of one feature each, concatenated,
 * train and predict through the lists as one input of twelve does. */
static void test_many_inputs(void)
{
    enum { N = 12 };
    tg_keras_tensor *ins[N];
    for (int i = 0; i < N; i++)
        ins[i] = tg_input(TG_SHAPE(1));
    tg_layer *cat = tg_concatenate(), *dense = tg_dense(.units = 1);
    tg_keras_tensor *joined = tg_layer_apply_at(TG_LOC, cat, (const tg_keras_tensor *const *)ins, N);
    tg_model *m = tg_functional_at(TG_LOC, (const tg_keras_tensor *const *)ins, N,
                                   TG_KERAS_TENSORS(tg_layer_apply(dense, joined)),
                                   (tg_functional_opts){.name = "wide", .seed = 2, .dtype = TG_F64});
    tg_keras_tensor *one = tg_input(TG_SHAPE(N));
    tg_model *ref = tg_functional(TG_KERAS_TENSORS(one), TG_KERAS_TENSORS(tg_layer_apply(tg_dense(.units = 1), one)),
                                  .dtype = TG_F64);
    REQUIRE(m && ref);
    tg_scope *s = tg_scope_begin();
    int n = 0, nr = 0;
    tg_tensor *const *v = tg_model_variables(m, &n), *const *vr = tg_model_variables(ref, &nr);
    REQUIRE(n == 2 && nr == 2);
    CHECK(tg_assign(vr[0], v[0]) == 0 && tg_assign(vr[1], v[1]) == 0);
    double data[3 * N], labels[3] = {1, -1, 0.5};
    for (int i = 0; i < 3 * N; i++)
        data[i] = sin(i + 1.0);
    tg_tensor *x = f64(TG_SHAPE(3, N), data), *y = f64(TG_SHAPE(3, 1), labels);
    const tg_tensor *cols[N];
    for (int i = 0; i < N; i++)
        cols[i] = tg_slice(x, TG_SHAPE(0, i), TG_SHAPE(3, 1));
    const tg_tensor *ys[] = {y};
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.05), .loss = TG_LOSS_MSE) == 0);
    REQUIRE(tg_compile(ref, .optimizer = tg_sgd(.learning_rate = 0.05), .loss = TG_LOSS_MSE) == 0);
    tg_history *h = tg_fit(m, NULL, NULL, .inputs = cols, .n_inputs = N, .targets = ys, .n_targets = 1, .batch_size = 2,
                           .shuffle = false, .epochs = 2, .verbose = TG_VERBOSE_SILENT);
    tg_history *hr = tg_fit(ref, x, y, .batch_size = 2, .shuffle = false, .epochs = 2, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(h && hr);
    int k = 0;
    const double *loss = tg_history_get(h, "loss", &k), *loss_ref = tg_history_get(hr, "loss", NULL);
    CHECK(loss && loss_ref && k == 2 && fabs(loss[1] - loss_ref[1]) <= 1e-14 * (1 + fabs(loss_ref[1])));
    TENSORS_AGREE(v[0], vr[0], 1e-14);
    TENSORS_AGREE(tg_predict(m, NULL, .inputs = cols, .n_inputs = N), tg_predict(ref, x), 1e-14);
    tg_history_free(h);
    tg_history_free(hr);
    tg_scope_end(s);
    tg_model_free(m);
    tg_model_free(ref);
}

/* A functional model saves and loads as a Sequential does: its variables by their Keras
 * names, into a model of the same graph. */
static void test_save_and_load(void)
{
    REQUIRE(make_tmpdir("functional"));
    two_by_two a = make_two_by_two(11), b = make_two_by_two(12);
    REQUIRE(a.m && b.m);
    int n = 0, nb = 0;
    tg_tensor *const *va = tg_model_variables(a.m, &n);
    tg_tensor *const *vb = tg_model_variables(b.m, &nb);
    REQUIRE(n == 6 && nb == 6);
    tg_scope *s = tg_scope_begin();
    CHECK(tg_item(tg_max(tg_abs(tg_sub(va[0], vb[0])))) > 0); /* other seeds, other weights */
    CHECK(tg_model_save(a.m, at("two.safetensors"), NULL) == 0);
    CHECK(tg_model_load(b.m, at("two.safetensors")) == 0);
    for (int i = 0; i < 6; i++)
        TENSORS_AGREE(vb[i], va[i], CHECK_BITS);
    tg_scope_end(s);
    tg_model_free(a.m);
    tg_model_free(b.m);
    remove_tmpdir();
}

int main(void)
{
    RUN(test_layer_and_variable_order);
    RUN(test_unused_input);
    RUN(test_call_and_shared_gradient);
    RUN(test_merge_values);
    RUN(test_merge_gradients);
    RUN(test_refusals);
    RUN(test_summary);
    RUN(test_fit_two_inputs_two_outputs);
    RUN(test_custom_list_step);
#ifdef MALLOC_CAN_COUNT
    RUN(test_warm_steps_allocate_nothing);
#endif
    RUN(test_fit_refusals);
    RUN(test_long_log_names);
    RUN(test_validation_lists);
    RUN(test_many_inputs);
    RUN(test_save_and_load);
    return TEST_SUMMARY();
}
