/* tg_explain_dot: the broken gradient path as a Graphviz picture. The tensors between the
 * source and the target (those the source is behind), each labelled with its op and the
 * user's line; the hop the diagnosis names drawn in red with its cause; values that left
 * tapegrad, or went through an assign, as a dashed break. With no path at all, the
 * target's ancestors and the source alone, with the diagnosis as the caption. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad/ops.h"
#include "provenance.h"

enum { DRAW_MAX = 200 };

typedef struct picture {
    FILE *out;
    tg_graph *g;
    const tg_tensor *drawn[DRAW_MAX];
    int n;
    const tg_step *brk;
    const tg_diagnosis *d;
    bool connected; /* drawing the tensors between the source and the target */
} picture;

static const char *base(const char *file)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    return slash ? slash + 1 : file ? file : "?";
}

/* A DOT string's contents: quotes and backslashes escaped, line breaks as DOT's, long
 * text broken into lines. */
static void put_text(FILE *out, const char *s, int wrap)
{
    int col = 0;
    for (; *s; s++) {
        if (*s == '\n') {
            fputs("\\n", out);
            col = 0;
            continue;
        }
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
        if (wrap && ++col > wrap && *s == ' ') {
            fputs("\\n", out);
            col = 0;
        }
    }
}

static int index_of(const picture *p, const tg_tensor *z)
{
    for (int i = 0; i < p->n; i++)
        if (p->drawn[i] == z)
            return i;
    return -1;
}

static void node(picture *p, const tg_tensor *z)
{
    char label[320];
    const char *shape = "ellipse";
    if (z->flags & TG_T_VARIABLE) {
        snprintf(label, sizeof label, "variable '%s'", z->var->name);
        shape = "box";
    } else if ((z->flags & TG_T_SNAPSHOT) && z->var) {
        snprintf(label, sizeof label, "read of '%s'\n%s:%d", z->var->name, base(z->loc.file), z->loc.line);
    } else if (z->op) {
        snprintf(label, sizeof label, "%s\n%s:%d", tg__op_name(z->op), base(z->loc.file), z->loc.line);
    } else {
        snprintf(label, sizeof label, "%s\n%s:%d", (z->flags & TG_T_FROM_DATA) ? "built from C values" : "tensor",
                 base(z->loc.file), z->loc.line);
        shape = "note";
    }
    fprintf(p->out, "  t%d [shape=%s, label=\"", index_of(p, z), shape);
    put_text(p->out, label, 0);
    fprintf(p->out, "\"%s];\n", z == p->g->x ? ", style=filled, fillcolor=lightblue" : "");
}

static bool is_break(const picture *p, const tg_tensor *z, const tg_parent *par)
{
    return p->brk && p->brk->child == z && p->brk->from.t == par->t && p->brk->from.how == par->how;
}

static bool edge(tg_graph *g, const tg_tensor *z, const tg_parent *par, void *user)
{
    (void)g;
    picture *p = user;
    int from = par->t ? index_of(p, par->t) : -1, to = index_of(p, z);
    if (from < 0 || to < 0)
        return false;
    char label[256] = "";
    const char *style = "solid", *color = "black";
    if (par->how == TG_HOP_LEFT || par->how == TG_HOP_ASSIGN) {
        const tg_event *e = par->event;
        snprintf(label, sizeof label, "%s at %s:%d", e->func, base(e->loc.file), e->loc.line);
        style = "dashed";
    } else if (par->how == TG_HOP_UNRECORDED) {
        snprintf(label, sizeof label, "not recorded");
        style = "dotted";
        color = "gray40";
    } else if (par->how == TG_HOP_CUT) {
        snprintf(label, sizeof label, "no gradient");
    }
    if (is_break(p, z, par)) {
        snprintf(label + strlen(label), sizeof label - strlen(label), "%s%s", *label ? "\n" : "",
                 tg_cause_name(p->d->cause));
        color = "red";
    }
    fprintf(p->out, "  t%d -> t%d [style=%s, color=%s, fontcolor=%s, label=\"", from, to, style, color, color);
    put_text(p->out, label, 0);
    fprintf(p->out, "\"%s];\n", !strcmp(color, "red") ? ", penwidth=2.5" : "");
    return false;
}

static void draw(picture *p, const tg_tensor *z)
{
    if (p->n < DRAW_MAX && index_of(p, z) < 0)
        p->drawn[p->n++] = z;
}

/* The tensors between the source and the target: those it is behind. */
static void between(picture *p, const tg_tensor *y, const tg_tensor **anc, int n)
{
    tg_graph *g = p->g;
    g->exhaustive = true;
    p->connected = tg__find_path(g, y);
    if (!p->connected)
        return;
    draw(p, g->x);
    for (int i = 0; i < n; i++)
        if (tg__behind(g, anc[i]))
            draw(p, anc[i]);
}

static int write_picture(picture *p, const tg_tensor *y)
{
    enum { MAX = 4096 };
    const tg_tensor **anc = malloc(sizeof *anc * MAX);
    if (!anc)
        return -1;
    /* the link the diagnosis chose by time order is drawn; other such links are not */
    p->g->weak = p->brk && p->brk->from.how == TG_HOP_LEFT && p->brk->from.weak;
    p->g->only_weak = p->g->weak ? p->brk->child : NULL;
    tg_graph all; /* the target's ancestors, to draw from */
    tg__graph_init(&all, p->g->t, p->g->x);
    all.weak = p->g->weak;
    all.only_weak = p->g->only_weak;
    int n = tg__ancestors(&all, y, anc, MAX);
    tg__graph_free(&all);
    between(p, y, anc, n);
    if (!p->connected) {
        for (int i = 0; i < n && p->n < DRAW_MAX / 2; i++)
            draw(p, anc[i]);
        draw(p, p->g->x);
    }
    fprintf(p->out, "digraph missing_gradient {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
                    "  edge [fontname=\"Helvetica\", fontsize=9];\n  labelloc=t;\n  label=\"[");
    put_text(p->out, tg_cause_name(p->d->cause), 0);
    fputs("] ", p->out);
    put_text(p->out, p->d->message, 100);
    fputs("\";\n", p->out);
    for (int i = 0; i < p->n; i++)
        node(p, p->drawn[i]);
    tg_graph walk;
    tg__graph_init(&walk, p->g->t, p->g->x);
    walk.weak = p->g->weak;
    walk.only_weak = p->g->only_weak;
    for (int i = 0; i < p->n; i++)
        tg__each_parent(&walk, p->drawn[i], edge, p);
    tg__graph_free(&walk);
    fputs("}\n", p->out);
    free(anc);
    return 0;
}

int tg_explain_dot_at(tg_loc loc, tg_tape *h, const tg_tensor *y, const tg_tensor *x, FILE *out)
{
    if (!out)
        return tg__failf(loc, "tg_explain_dot: the stream is NULL (give an open FILE *, such as stdout)");
    tg_tape *t = tg__tape_get(loc, "tg_explain_dot", h);
    if (!t || !tg__check_input(loc, "tg_explain_dot", y, "target") ||
        !tg__check_input(loc, "tg_explain_dot", x, "source"))
        return -1;
    tg_diagnosis d;
    tg_step brk = {0};
    tg__explain(t, y, x, t->grad_loc, &d, &brk);
    tg_graph *g = malloc(sizeof *g);
    picture *p = malloc(sizeof *p);
    int rc = -1;
    if (g && p) {
        tg__graph_init(g, t, x);
        *p = (picture){.out = out, .g = g, .brk = brk.child ? &brk : NULL, .d = &d};
        rc = write_picture(p, y);
        tg__graph_free(g);
    }
    free(g);
    free(p);
    if (rc < 0)
        return tg__failf(loc, "tg_explain_dot: out of memory");
    if (fflush(out) != 0 || ferror(out))
        return tg__failf(loc, "tg_explain_dot: writing the picture failed: %s", strerror(errno));
    return 0;
}
