/* How tests/fixtures/model_files/ were made, with tapegrad as it was before model files
 * stored the architecture (commit 0ec1174), so that test_model_file proves such files
 * still load:
 *
 *   lib_dense.safetensors (and lib_dense_pred.txt, its predictions): this program, built
 *   against that commit's library:
 *     cc -std=c11 -Iinclude tools/make_old_model_files.c build/libtapegrad.a -lz -lm -lpthread -ldl
 *
 *   cli_mlp.safetensors (and pred.csv, `tapegrad predict cli_mlp.safetensors feats.csv
 *   --output pred.csv` on the first six rows' features): that commit's command on a CSV of
 *   24 rows a,b,c,label (uniform(-1, 1) features, seed 3, label (a + b > 0) + (c > 0.5)):
 *     tapegrad fit --data csv:tiny.csv --label label --model mlp:5,4 --epochs 2 \
 *         --batch-size 8 --seed 7 --save cli_mlp.safetensors --quiet
 */
#include <tapegrad.h>
#include <stdio.h>
int main(void)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 11),
                                     tg_dense(.units = 4, .activation = TG_TANH, .input_dim = 3), tg_dense(.units = 2));
    tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1, .momentum = 0.9), .loss = TG_LOSS_MSE);
    tg_scope *s = tg_scope_begin();
    float xv[12] = {0.1f, -0.2f, 0.3f, 0.5f, 0.1f, -0.7f, -0.3f, 0.8f, 0.2f, 0.9f, -0.4f, 0.05f};
    float yv[8] = {1, 0, 0, 1, 0.5f, 0.5f, -1, 2};
    tg_tensor *x = tg_tensor_from(TG_F32, TG_SHAPE(4, 3), xv), *y = tg_tensor_from(TG_F32, TG_SHAPE(4, 2), yv);
    tg_history *h = tg_fit(m, x, y, .epochs = 2, .batch_size = 2, .seed = 5, .verbose = TG_VERBOSE_SILENT);
    if (!h || tg_model_save(m, "lib_dense.safetensors", "{\"note\": \"old\"}") != 0) {
        fprintf(stderr, "%s\n", tg_last_error());
        return 1;
    }
    tg_tensor *p = tg_predict(m, x);
    float out[8];
    tg_copy_out(p, out, sizeof out);
    for (int i = 0; i < 8; i++)
        printf("%.9g\n", out[i]);
    tg_history_free(h);
    tg_scope_end(s);
    tg_model_free(m);
}
