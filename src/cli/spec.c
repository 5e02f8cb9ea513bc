/* Model specs of the tapegrad command: "mlp:500" (one hidden Dense layer of 500 ReLU
 * units), "mlp:512,256", "cnn" (Conv2D 32, MaxPool, Conv2D 64, MaxPool, Dense 128), and
 * "lstm:128" or "gru:128" (recurrent layers over the rows of an example as steps; several
 * sizes stack them, each but the last returning its sequence). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_UNITS 100000

static bool fail(char *err, size_t size, const char *fmt, const char *text)
{
    snprintf(err, size, fmt, text);
    return false;
}

bool spec_parse(const char *text, model_spec *spec, char *err, size_t err_size)
{
    *spec = (model_spec){0};
    if (!text || !*text)
        return fail(err, err_size, "empty model spec%s: use mlp:500, mlp:512,256, cnn, lstm:128 or gru:128", "");
    if (strcmp(text, "cnn") == 0) {
        spec->kind = SPEC_CNN;
        return true;
    }
    static const struct {
        const char *prefix;
        int kind;
    } kinds[] = {{"mlp:", SPEC_MLP}, {"lstm:", SPEC_LSTM}, {"gru:", SPEC_GRU}};
    const char *p = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && !p; i++)
        if (strncmp(text, kinds[i].prefix, strlen(kinds[i].prefix)) == 0) {
            spec->kind = kinds[i].kind;
            p = text + strlen(kinds[i].prefix);
        }
    if (!p)
        return fail(err, err_size,
                    "unknown model '%.60s': use mlp:UNITS[,UNITS...], cnn, lstm:UNITS[,...] or gru:UNITS[,...]", text);
    for (;;) {
        if (*p < '0' || *p > '9')
            return fail(err, err_size, "model '%.60s': expected a number of units after ':' or ','", text);
        char *end;
        long units = strtol(p, &end, 10);
        if (units < 1 || units > MAX_UNITS)
            return fail(err, err_size, "model '%.60s': units must be between 1 and 100000", text);
        if (spec->n_hidden == SPEC_MAX_LAYERS)
            return fail(err, err_size, "model '%.60s': at most 8 hidden layers", text);
        spec->hidden[spec->n_hidden++] = units;
        if (*end == 0)
            return true;
        if (*end != ',')
            return fail(err, err_size, "model '%.60s': units are separated by ','", text);
        p = end + 1;
    }
}

tg_shape spec_input_shape(const model_spec *spec, tg_shape row)
{
    int64_t n = 1;
    for (int i = 0; i < row.rank; i++)
        n *= row.dims[i];
    if (spec->kind == SPEC_MLP)
        return (tg_shape){.rank = 1, .dims = {n}};
    if (spec->vocab) /* a character model: one class index per step */
        return row;
    if (spec->kind == SPEC_LSTM || spec->kind == SPEC_GRU) /* steps of the first axis, the rest as features */
        return row.rank >= 2 ? (tg_shape){.rank = 2, .dims = {row.dims[0], n / row.dims[0]}}
                             : (tg_shape){.rank = 2, .dims = {n, 1}};
    if (row.rank == 2)
        return (tg_shape){.rank = 3, .dims = {row.dims[0], row.dims[1], 1}};
    return row;
}

tg_model *spec_build(const model_spec *spec, tg_shape in, int64_t classes, uint64_t seed, bool sigmoid)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = seed, .name = "sequential"));
    if (!m)
        return NULL;
    bool ok = true;
    if (spec->kind == SPEC_MLP) {
        for (int i = 0; i < spec->n_hidden && ok; i++)
            ok = tg_model_add(m, i ? tg_dense(.units = spec->hidden[i], .activation = TG_RELU)
                                   : tg_dense(.units = spec->hidden[i], .activation = TG_RELU, .input_shape = in)) == 0;
    } else if (spec->kind == SPEC_LSTM || spec->kind == SPEC_GRU) {
        tg_initializer zeros = spec->zeros ? tg_init_zeros() : (tg_initializer){0}; /* {0}: the layer's default */
        if (spec->vocab) /* characters: Keras's char-RNN, every layer returning its sequence */
            ok = tg_model_add(m, tg_embedding(.input_dim = spec->vocab, .output_dim = spec->embedding_dim,
                                              .embeddings_initializer = zeros, .input_shape = in)) == 0;
        for (int i = 0; i < spec->n_hidden && ok; i++) {
            tg_rnn_opts o = {.units = spec->hidden[i],
                             .activation = TG_TANH,
                             .recurrent_activation = TG_SIGMOID,
                             .use_bias = true,
                             .unit_forget_bias = true,
                             .reset_after = true,
                             .kernel_initializer = zeros,
                             .recurrent_initializer = zeros,
                             .return_sequences = i + 1 < spec->n_hidden || spec->vocab,
                             .input_shape = i == 0 && !spec->vocab ? in : (tg_shape){0}};
            ok = tg_model_add(m, spec->kind == SPEC_LSTM ? tg_lstm_at(TG_LOC, o) : tg_gru_at(TG_LOC, o)) == 0;
        }
    } else {
        ok = tg_model_add(m, tg_conv2d_layer(.filters = 32, .kernel_size = {3}, .activation = TG_RELU,
                                             .input_shape = in)) == 0 &&
             tg_model_add(m, tg_max_pooling2d(.pool_size = {2})) == 0 &&
             tg_model_add(m, tg_conv2d_layer(.filters = 64, .kernel_size = {3}, .activation = TG_RELU)) == 0 &&
             tg_model_add(m, tg_max_pooling2d(.pool_size = {2})) == 0 && tg_model_add(m, tg_flatten()) == 0 &&
             tg_model_add(m, tg_dense(.units = 128, .activation = TG_RELU)) == 0;
    }
    ok = ok && tg_model_add(m, tg_dense(.units = classes, .activation = sigmoid ? TG_SIGMOID : TG_LINEAR)) == 0 &&
         tg_model_build(m, in) == 0;
    if (!ok) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* ---- model files -------------------------------------------------------------------------- */
const tg_meta_key cli_saved_keys[N_KEYS] = {
    [KEY_MODEL] = {"model", TG_META_TEXT, 1, 1 << 20, true, "tapegrad fit"},
    [KEY_SHAPE] = {"input_shape", TG_META_DIMS, 1, INT32_MAX, true, "tapegrad fit"},
    [KEY_CLASSES] = {"classes", TG_META_INT, 1, MAX_CLASSES, true, "tapegrad fit"},
    [KEY_SEED] = {"seed", TG_META_INT, 0, INT64_MAX, false, NULL},
    [KEY_EPOCH] = {"epoch", TG_META_INT, 0, INT32_MAX - 1, false, NULL},
    [KEY_DATA] = {"data", TG_META_TEXT, 1, 1 << 20, false, NULL},
    [KEY_DATA_PATH] = {"data_path", TG_META_TEXT, 1, 8192, false, NULL},
    [KEY_LABEL] = {"label", TG_META_TEXT, 1, 1 << 20, false, NULL},
    [KEY_LOSS] = {"loss", TG_META_TEXT, 1, 64, false, NULL},
    [KEY_OPTIMIZER] = {"optimizer", TG_META_TEXT, 1, 16, false, NULL},
    [KEY_LR] = {"learning_rate", TG_META_TEXT, 1, 32, false, NULL},
    [KEY_BATCH] = {"batch_size", TG_META_INT, 1, 1 << 24, false, NULL},
    [KEY_SPLIT] = {"validation_split", TG_META_TEXT, 1, 32, false, NULL},
    [KEY_HISTORY] = {"history", TG_META_TEXT, 1, 1 << 20, false, NULL},
    [KEY_PLOT] = {"plot", TG_META_TEXT, 1, 1 << 20, false, NULL},
    [KEY_DELIMITER] = {"delimiter", TG_META_TEXT, 1, 16, false, NULL},
    [KEY_SKIP_ROWS] = {"skip_rows", TG_META_INT, 0, 1000000, false, NULL},
    /* --normalize: "mean,mean,...;variance,variance,..." per feature, %.17g */
    [KEY_HEADER] = {"header", TG_META_INT, 0, 1, false, NULL},
    [KEY_NORMALIZATION] = {"normalization", TG_META_TEXT, 3, 1 << 26, false, NULL},
    /* --precision: Keras's dtype policy the layers were made under (absent: float32) */
    [KEY_PRECISION] = {"precision", TG_META_TEXT, 1, 32, false, NULL},
    /* a character model: its characters' code points, increasing, "10,32,33,..." */
    [KEY_VOCABULARY] = {"vocabulary", TG_META_TEXT, 1, 8 * TEXT_MAX_VOCAB, false, NULL},
    [KEY_EMBEDDING_DIM] = {"embedding_dim", TG_META_INT, 1, 100000, false, NULL},
};
