/* Keras's progress bar (tf.keras's Progbar, verbose=1) on a terminal, and its one line
 * per epoch (verbose=2) otherwise:
 *   Epoch 1/5
 *   1875/1875 [==============================] - 2s 1ms/step - loss: 0.4812 - accuracy: 0.8312
 *   1875/1875 - 2s - loss: 0.4812 - accuracy: 0.8312 - 2s/epoch - 1ms/step */
#include <math.h>
#include <string.h>
#include <time.h>

#include "train_impl.h"

#define BAR_WIDTH       30
#define UPDATE_INTERVAL 0.05 /* seconds between redraws, as Keras */

double tg__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tg__progress_begin(tg_progress *p, FILE *out, tg_verbose mode, int64_t target)
{
    *p = (tg_progress){.out = out, .mode = mode, .target = target, .start = tg__now()};
}

void tg__progress_epoch_header(tg_progress *p, int epoch, int epochs)
{
    if (p->mode != TG_VERBOSE_SILENT)
        fprintf(p->out, "Epoch %d/%d\n", epoch + 1, epochs);
}

/* " - loss: 0.4812": four decimals, or %.4e for magnitudes up to 1e-3, as Keras. */
static void print_logs(FILE *out, const tg_logs *logs)
{
    for (int i = 0; logs && i < logs->n; i++) {
        double v = logs->values[i];
        fprintf(out, fabs(v) > 1e-3 ? " - %s: %.4f" : " - %s: %.4e", logs->names[i], v);
    }
}

static void print_duration(FILE *out, double seconds, const char *unit)
{
    if (seconds >= 1 || seconds == 0)
        fprintf(out, " %.0fs%s", seconds, unit);
    else if (seconds >= 1e-3)
        fprintf(out, " %.0fms%s", seconds * 1e3, unit);
    else
        fprintf(out, " %.0fus%s", seconds * 1e6, unit);
}

static void draw_bar(tg_progress *p, int64_t step, const tg_logs *logs, bool done)
{
    int digits = (int)floor(log10((double)(p->target > 0 ? p->target : 1))) + 1;
    fprintf(p->out, "\r%*lld/%lld [", digits, (long long)step, (long long)p->target);
    int filled = p->target > 0 ? (int)(BAR_WIDTH * (double)step / (double)p->target) : BAR_WIDTH;
    for (int i = 0; i < BAR_WIDTH; i++)
        fputc(i < filled - 1 || (i == filled - 1 && done) ? '=' : i == filled - 1 ? '>' : '.', p->out);
    fputc(']', p->out);
    double elapsed = tg__now() - p->start;
    if (done) {
        fprintf(p->out, " - %.0fs", elapsed);
        print_duration(p->out, step ? elapsed / (double)step : 0, "/step");
    } else {
        double eta = step ? elapsed / (double)step * (double)(p->target - step) : 0;
        if (eta >= 3600)
            fprintf(p->out, " - ETA: %d:%02d:%02d", (int)eta / 3600, ((int)eta % 3600) / 60, (int)eta % 60);
        else if (eta >= 60)
            fprintf(p->out, " - ETA: %d:%02d", (int)eta / 60, (int)eta % 60);
        else
            fprintf(p->out, " - ETA: %.0fs", eta);
    }
    print_logs(p->out, logs);
    fprintf(p->out, "\033[K"); /* clear what a longer previous line left */
    fflush(p->out);
}

void tg__progress_update(tg_progress *p, int64_t step, const tg_logs *logs)
{
    if (p->mode != TG_VERBOSE_BAR)
        return;
    double now = tg__now();
    if (step < p->target && now - p->last_update < UPDATE_INTERVAL)
        return;
    p->last_update = now;
    draw_bar(p, step, logs, false);
}

void tg__progress_end(tg_progress *p, const tg_logs *logs)
{
    double elapsed = tg__now() - p->start;
    if (p->mode == TG_VERBOSE_BAR) {
        draw_bar(p, p->target, logs, true);
        fputc('\n', p->out);
    } else if (p->mode == TG_VERBOSE_EPOCH) {
        fprintf(p->out, "%lld/%lld - %.0fs", (long long)p->target, (long long)p->target, elapsed);
        print_logs(p->out, logs);
        fprintf(p->out, " -");
        print_duration(p->out, elapsed, "/epoch");
        fprintf(p->out, " -");
        print_duration(p->out, p->target ? elapsed / (double)p->target : 0, "/step");
        fputc('\n', p->out);
    }
    fflush(p->out);
}
