/* Float32 and bfloat16 convolutions and bfloat16 matrix products through oneDNN (Intel's deep-learning
 * kernels: AMX or AVX512-BF16 for bfloat16 where the CPU has them), loaded at run time
 * like OpenBLAS: no header or library is needed to build, and a process where
 * libdnnl.so.2 (oneDNN 2.x) is missing runs on the portable im2col + GEMM path.
 * TAPEGRAD_ONEDNN=0 in the environment keeps oneDNN off; sanitizer builds keep it off
 * unless TAPEGRAD_ONEDNN=1.
 *
 * Images are NHWC and kernels HWIO ([KH, KW, C, F], Keras's layout) on both sides of
 * each call; oneDNN's own weight layout is used inside, reordered per call. Each call
 * splits the batch over the loop pool, one oneDNN thread per worker. Every function
 * returns false, having written nothing the caller may use, when oneDNN is off or
 * cannot run that convolution; the caller then takes the portable path. */
#ifndef TG_KERNELS_ONEDNN_H
#define TG_KERNELS_ONEDNN_H

#include <stdbool.h>
#include <stdint.h>

/* One 2-D convolution: image [n, h, w, c], kernel [kh, kw, c, f], output [n, oh, ow, f];
 * strides sh, sw, dilations dh, dw (1: none), padding pt, pl before (after: what the
 * output size leaves). */
typedef struct tg_conv_geom {
    int64_t n, h, w, c, f;
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t oh, ow, pt, pl;
} tg_conv_geom;

/* Whether oneDNN is loaded (at the first call) and on. */
bool tg__onednn_active(void);
/* Turns oneDNN off or back on (when loaded) for the whole process: tests compare paths. */
void tg__onednn_set_enabled(bool on);
/* "onednn 2.6.3" when active, else why not ("off (TAPEGRAD_ONEDNN=0)", "not installed"). */
const char *tg__onednn_backend(void);

/* y = x (*) k */
bool tg__onednn_conv_forward(const tg_conv_geom *g, const float *x, const float *k, float *y);
/* dx = conv's adjoint in x, applied to dy */
bool tg__onednn_conv_backward_data(const tg_conv_geom *g, const float *dy, const float *k, float *dx);
/* dk = conv's adjoint in k, applied to dy, for the image x */
bool tg__onednn_conv_backward_weights(const tg_conv_geom *g, const float *x, const float *dy, float *dk);
/* y = x (*) k + bias, then max(y, 0) where relu: one primitive, the bias and the ReLU
 * applied to each sum before it is stored (oneDNN's post-ops). A ReLU'd negative sum is
 * stored as -0.0 (oneDNN's relu is alpha * v for alpha 0), equal to tapegrad's +0.0. */
bool tg__onednn_conv_forward_bias(const tg_conv_geom *g, const float *x, const float *k, const float *bias, bool relu,
                                  float *y);

/* The three in bfloat16 (uint16_t bit patterns): products of bfloat16 values summed in
 * float32 (AVX512-BF16 or AMX where the CPU has them), the forward and the image's
 * gradient rounded once to bfloat16; the kernel's gradient left in float32 (its chunks'
 * sums added in chunk order) for the caller to round once. */
bool tg__onednn_conv_forward_bf16(const tg_conv_geom *g, const uint16_t *x, const uint16_t *k, uint16_t *y);
bool tg__onednn_conv_backward_data_bf16(const tg_conv_geom *g, const uint16_t *dy, const uint16_t *k, uint16_t *dx);
bool tg__onednn_conv_backward_weights_bf16(const tg_conv_geom *g, const uint16_t *x, const uint16_t *dy, float *dk);

/* C = op(A) op(B) for bfloat16 A [M, K] and B [K, N] (transposed as stored when ta, tb;
 * row strides lda, ldb, ldc), float32 sums, C rounded to bfloat16: oneDNN's matmul, its
 * rows split over the loop pool, one primitive per shape of a block. */
bool tg__onednn_matmul_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                            const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc);

#endif
