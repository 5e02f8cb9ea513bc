/* Data sources of the tapegrad command. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int data_error(void)
{
    fprintf(stderr, "tapegrad: %s\n", tg_has_error() ? tg_last_error() : "cannot read the data");
    return EXIT_DATA;
}

/* "a,b" -> two paths in buffers of `size`; false when the comma is missing. */
static bool two_paths(const char *text, char *a, char *b, size_t size)
{
    const char *comma = strchr(text, ',');
    if (!comma || (size_t)(comma - text) >= size || strlen(comma + 1) >= size)
        return false;
    snprintf(a, size, "%.*s", (int)(comma - text), text);
    snprintf(b, size, "%s", comma + 1);
    return *a && *b;
}

/* x and y from two array files (IDX or .npy), as one data set. */
static int load_pair(const char *what, const char *xpath, const char *ypath, bool idx, data_source *out)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = idx ? tg_read_idx(xpath) : tg_read_npy(xpath, .dtype = TG_F32);
    tg_tensor *y = idx ? tg_read_idx(ypath, .dtype = TG_I32) : tg_read_npy(ypath);
    if (x && idx) /* images of bytes: scale to [0, 1] as Fashion-MNIST is */
        x = tg_mul(x, tg_scalar(1.0 / 255.0));
    if (y && !idx && tg_dtype_of(y) != TG_I32 && tg_dtype_of(y) != TG_I64)
        y = tg_cast(y, TG_F32);
    out->train = x && y ? tg_dataset_new(x, y) : NULL;
    tg_scope_end(s);
    snprintf(out->name, sizeof out->name, "%s", what);
    return out->train ? EXIT_OK : data_error();
}

/* --label: a column index (0, -1, ...) or a header name. An empty value, or a number
 * past int, would otherwise become column 0. False with a message printed. */
static bool parse_label(const char *label, long *index, bool *by_index)
{
    if (!*label) {
        fprintf(stderr, "tapegrad: --label is empty: give the label column's name, or its index (0 for the first, "
                        "-1 for the last)\n");
        return false;
    }
    char *end;
    errno = 0;
    *index = strtol(label, &end, 10);
    *by_index = *end == 0;
    if (*by_index && (errno == ERANGE || *index <= INT_MIN || *index > INT_MAX)) {
        fprintf(stderr,
                "tapegrad: --label %s is out of range: give a column index from 0 (the first) or -1 (the "
                "last), or the column's name\n",
                label);
        return false;
    }
    return true;
}

static const struct {
    const char *name;
    char c;
} delimiters[] = {{"comma", ','}, {"whitespace", ' '}, {"tab", '\t'}, {"semicolon", ';'},
                  {",", ','},     {"space", ' '},      {"\t", '\t'},  {";", ';'}};

char csv_delimiter_parse(const char *name)
{
    for (size_t i = 0; i < sizeof delimiters / sizeof delimiters[0]; i++)
        if (strcmp(name, delimiters[i].name) == 0)
            return delimiters[i].c;
    return 0;
}

const char *csv_delimiter_name(char delimiter)
{
    for (size_t i = 0; i < sizeof delimiters / sizeof delimiters[0]; i++)
        if (delimiters[i].c == delimiter)
            return delimiters[i].name;
    return "comma";
}

int data_load(const char *spec, const char *label, const csv_layout *layout, data_source *out)
{
    *out = (data_source){0};
    csv_layout lay = layout ? *layout : CSV_LAYOUT_DEFAULT;
    char a[1024], b[1024];
    if (!spec || strcmp(spec, "fashion-mnist") == 0) {
        snprintf(out->name, sizeof out->name, "fashion-mnist");
        if (tg_load_fashion_mnist(NULL, &out->train, &out->test) == 0)
            return EXIT_OK;
        fprintf(stderr, "tapegrad: %s\n", tg_last_error());
        return EXIT_DATA;
    }
    if (strncmp(spec, "csv:", 4) == 0) {
        if (!label) {
            fprintf(stderr, "tapegrad: --data csv:FILE needs --label COLUMN (a name, or an index like 0 or -1)\n");
            return EXIT_USAGE;
        }
        long index;
        bool by_index;
        if (!parse_label(label, &index, &by_index))
            return EXIT_USAGE;
        tg_scope *s = tg_scope_begin();
        if (!by_index && lay.no_header) {
            fprintf(stderr,
                    "tapegrad: --label %s names a column, but --no-header says the file names none: give "
                    "the label column's index (0 for the first, -1 for the last)\n",
                    label);
            return EXIT_USAGE;
        }
        tg_csv d = by_index
                       ? tg_read_csv(spec + 4, .label_index = (int)index, .delimiter = lay.delimiter,
                                     .skip_rows = lay.skip_rows, .header = !lay.no_header)
                       : tg_read_csv(spec + 4, .label = label, .delimiter = lay.delimiter, .skip_rows = lay.skip_rows);
        out->train = d.x && d.y ? tg_dataset_new(d.x, d.y) : NULL;
        tg_scope_end(s);
        snprintf(out->name, sizeof out->name, "csv");
        return out->train ? EXIT_OK : data_error();
    }
    if (strncmp(spec, "npy:", 4) == 0 && two_paths(spec + 4, a, b, sizeof a))
        return load_pair("npy", a, b, false, out);
    if (strncmp(spec, "idx:", 4) == 0 && two_paths(spec + 4, a, b, sizeof a))
        return load_pair("idx", a, b, true, out);
    fprintf(stderr,
            "tapegrad: unknown --data '%s': use fashion-mnist, csv:FILE (with --label), "
            "npy:X.npy,Y.npy, idx:IMAGES,LABELS or text:FILE\n",
            spec);
    return EXIT_USAGE;
}

void data_free(data_source *d)
{
    tg_dataset_free(d->train);
    tg_dataset_free(d->test);
    free(d->vocab);
    *d = (data_source){0};
}
