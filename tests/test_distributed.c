/* The distributed API in a process mpirun did not start: rank 0 of 1, MPI never loaded,
 * every call a no-op that changes nothing, and a distributed compile training exactly as
 * a plain one. A process that looks started by mpirun where libmpi cannot be loaded gets
 * an error that says how to install it. (tests/mpi/ runs the real thing under mpirun.) */
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static bool mpi_loaded(void)
{
    void *h = dlopen("libmpi.so.40", RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

static void test_one_process(void)
{
    CHECK(tg_distributed_init() == 0);
    CHECK(tg_distributed_init() == 0); /* again: the same answer */
    CHECK(tg_distributed_rank() == 0 && tg_distributed_size() == 1);
    CHECK(tg_distributed_host(0)[0] == '\0' && tg_distributed_host(-1)[0] == '\0');
    CHECK(!mpi_loaded());
    CHECK(tg_distributed_abort(3, "nothing to abort (a test)") == -1); /* returns: one process */
}

static void test_collectives_change_nothing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *g[2] = {tg_fill(TG_F32, TG_SHAPE(3), 2), NULL}, *g0 = g[0];
    CHECK(tg_allreduce_gradients(g, 2, .samples = 5) == 0 && g[0] == g0 && g[1] == NULL);
    CHECK(tg_allreduce_gradients(g, 2) == 0 && g[0] == g0);
    CHECK(tg_allreduce_gradients(g, 2, .failed = true) == -1);
    CHECK_ERROR("this rank failed");
    CHECK(tg_allreduce_gradients(NULL, 1) == -1);
    CHECK_ERROR("give the gradients and their count");
    tg_tensor *ints[1] = {tg_fill(TG_I32, TG_SHAPE(2), 1)};
    CHECK(tg_allreduce_gradients(ints, 1) == -1);
    CHECK_ERROR("float32 or float64");
    tg_tensor *w = tg_variable(tg_fill(TG_F32, TG_SHAPE(2), 3), .name = "w"), *dw[1];
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_sum(tg_square(w));
    tg_tape_end(t);
    CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = &w, .n_sources = 1, .out = dw, .allreduce = true,
                       .samples = 4) == 0);
    CHECK_VALUES(dw[0], 0, 6, 6);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_tensor *v = tg_variable(tg_fill(TG_F64, TG_SHAPE(2), 1.5), .name = "v");
    uint64_t version = tg_variable_version(v);
    CHECK(tg_broadcast_variables(&v, 1, 0) == 0 && tg_variable_version(v) == version);
    CHECK_VALUES(v, 0, 1.5, 1.5);
    CHECK(tg_broadcast_variables(&v, 1, 1) == -1);
    CHECK_ERROR("root 1 is not a rank: there is 1 (0 to 0)");
    tg_tensor *not_var = g0;
    CHECK(tg_broadcast_variables(&not_var, 1, 0) == -1);
    CHECK_ERROR("not a variable");
    tg_variable_free(v);
    tg_scope_end(s);
    CHECK(!mpi_loaded());
}

/* .distribute with one process trains exactly as a plain compile. */
static void test_distributed_compile_alone(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *rng = tg_rng_new(7);
    tg_tensor *x = tg_random_uniform(rng, TG_F32, TG_SHAPE(40, 3), .minval = -1);
    tg_tensor *y = tg_random_uniform(rng, TG_F32, TG_SHAPE(40, 1), .minval = -1);
    tg_rng_free(rng);
    double w[2][64];
    for (int k = 0; k < 2; k++) {
        tg_model *m =
            tg_sequential_with(tg_sequential_options(.seed = 4),
                               tg_dense(.units = 4, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 1));
        CHECK(tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_MSE, .distribute = k == 1) == 0);
        CHECK(!tg_model_distributed(m));
        tg_history *h = tg_fit(m, x, y, .epochs = 2, .batch_size = 16, .verbose = TG_VERBOSE_SILENT);
        CHECK(h != NULL);
        int n = 0, at = 0;
        tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
        for (int i = 0; i < n; i++) {
            tg_copy_out_f64(vars[i], w[k] + at, tg_size(vars[i]));
            at += (int)tg_size(vars[i]);
        }
        CHECK(at == 21);
        tg_history_free(h);
        tg_model_free(m);
    }
    CHECK(memcmp(w[0], w[1], sizeof(double) * 21) == 0);
    tg_scope_end(s);
    CHECK(!mpi_loaded());
}

/* A process whose environment says mpirun started it, where libmpi cannot be loaded:
 * init and a distributed compile fail, saying how to get MPI (in a child, since init
 * runs once per process). */
static void test_missing_mpi(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
        setenv("TAPEGRAD_MPI_LIBRARY", "/nonexistent/libmpi.so.40", 1);
        int bad = 0;
        tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
        bad |= tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE, .distribute = true) != -1;
        const char *e = tg_last_error();
        bad |= !e || !strstr(e, "apt-get install openmpi-bin libopenmpi-dev") ||
               !strstr(e, "started by mpirun (OMPI_COMM_WORLD_SIZE=2") || !strstr(e, "/nonexistent/libmpi.so.40");
        if (bad)
            printf("  child: %s\n", e ? e : "(no error)");
        bad |= tg_distributed_init() != -1 || tg_distributed_size() != 1;
        bad |= tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE) != 0; /* a plain compile still works */
        tg_model_free(m);
        fflush(stdout);
        _exit(bad);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    /* this test is the process mpirun did not start, whoever runs it */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_RANK");
    RUN(test_missing_mpi); /* first: the child must not inherit an init */
    RUN(test_one_process);
    RUN(test_collectives_change_nothing);
    RUN(test_distributed_compile_alone);
    return TEST_SUMMARY();
}
