/* The op list of docs/architecture.md, made from src/ops/ops.def so the two cannot
 * disagree.
 *
 *   op_list                 prints the list (Markdown)
 *   op_list --check FILE    exit 1 when FILE's list differs from ops.def's (a test)
 *   op_list --update FILE   rewrites FILE's list in place
 *
 * The list sits in FILE between the BEGIN and END marker lines below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

#define BEGIN "<!-- op list: made from src/ops/ops.def by tools/op_list.c; do not edit -->"
#define END   "<!-- end of op list -->"

static const char *dtypes(unsigned d)
{
    switch (d) {
    case TG_DTYPES_FLOAT: return "float";
    case TG_DTYPES_INT: return "int";
    case TG_DTYPES_BOOL: return "bool";
    case TG_DTYPES_NUMBER: return "number";
    case TG_DTYPES_ANY: return "any";
    default: return "?";
    }
}

static const char *gradient(tg_grad_kind g, unsigned flags)
{
    if (g == TG_GRAD_RULE)
        return flags & TG_OPF_FLOAT_GRAD ? "rule (floats only)" : flags & TG_OPF_TWICE ? "rule, 2nd order" : "rule";
    return g == TG_GRAD_NONE ? "none" : g == TG_GRAD_ZERO ? "zero" : "stop";
}

/* The list, into a memory stream. */
static char *make_list(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    fprintf(f,
            "%s\n| op | inputs | input 0 | gradient | element-wise | backward | what it does |\n"
            "|---|---|---|---|---|---|---|\n",
            BEGIN);
#define RULE(fn) "`" #fn "`"
#define NONE     ""
#define ZERO     ""
#define STOP     ""
#define OP(KIND, NAME, IN, OUT, DTYPES, SHAPE, FORWARD, GRAD, FLAGS, DOMAIN, KINKS, DOC)                \
    fprintf(f, "| `%s` | %s | %s | %s | %s | %s | %s |\n", NAME, IN < 0 ? "list" : #IN, dtypes(DTYPES), \
            gradient(tg__op_table[TG_OP_##KIND].grad, FLAGS), (FLAGS)&TG_OPF_ELEMENTWISE ? "yes" : "", GRAD, DOC);
#define COMPOSITE(...)
#include "ops/ops.def"
#undef OP
#undef COMPOSITE
    fprintf(f, "\nComposite ops, built from the rows above (their gradients are the rows'):\n\n"
               "| op | built from | what it does |\n|---|---|---|\n");
#define OP(...)
#define COMPOSITE(NAME, FROM, DOC) fprintf(f, "| `%s` | %s | %s |\n", NAME, FROM, DOC);
#include "ops/ops.def"
    fprintf(f, "%s\n", END);
    fclose(f);
    return buf;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 + 1 > cap && !(buf = realloc(buf, cap = 2 * cap + 4096 + 1)))
            break;
        got = fread(buf + n, 1, 4096, f);
        n += got;
    } while (got > 0);
    fclose(f);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    size_t len;
    char *list = make_list(&len);
    if (!list)
        return 2;
    if (argc < 3) {
        fputs(list, stdout);
        free(list);
        return 0;
    }
    size_t doc_len;
    char *doc = read_all(argv[2], &doc_len);
    char *b = doc ? strstr(doc, BEGIN) : NULL, *e = b ? strstr(b, END) : NULL;
    if (!b || !e) {
        fprintf(stderr, "op_list: %s has no op list between its markers\n", argv[2]);
        return 2;
    }
    e += strlen(END) + (e[strlen(END)] == '\n');
    int rc = 0;
    if (!strcmp(argv[1], "--check")) {
        rc = (size_t)(e - b) != len || memcmp(b, list, len) != 0;
        if (rc)
            fprintf(stderr, "op_list: the op list in %s is not ops.def's: run op_list --update %s\n", argv[2], argv[2]);
    } else {
        FILE *f = fopen(argv[2], "wb");
        rc = !f || fwrite(doc, 1, (size_t)(b - doc), f) != (size_t)(b - doc) || fwrite(list, 1, len, f) != len ||
             fwrite(e, 1, doc_len - (size_t)(e - doc), f) != doc_len - (size_t)(e - doc);
        if (f)
            rc |= fclose(f) != 0;
    }
    free(doc);
    free(list);
    return rc;
}
