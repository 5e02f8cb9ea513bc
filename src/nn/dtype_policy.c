/* Keras's dtype policies: the global one (keras.config.set_dtype_policy, formerly
 * keras.mixed_precision.set_global_policy), read when a layer is made, and each layer's.
 *
 * "float32" and "float64" compute and keep variables in that dtype. "mixed_bfloat16"
 * keeps variables (and so optimizer state) in float32 and computes in bfloat16: the
 * layer's floating inputs are cast to bfloat16 and its variables are read through a
 * cast (tg__layer_read), both recorded, so gradients come back to the float32 variables
 * through the casts, as Keras's autocast of inputs in Layer.__call__ and of variables in
 * its AutocastScope. The kinds whose ops take bfloat16 say so (computes_bf16); others
 * run in float32 under the policy. */
#include <stdatomic.h>
#include <string.h>

#include "layer_impl.h"

static _Atomic int global_policy = TG__POLICY_FLOAT32;
static const char *const policy_names[] = {
    [TG__POLICY_FLOAT32] = "float32", [TG__POLICY_FLOAT64] = "float64", [TG__POLICY_MIXED_BF16] = "mixed_bfloat16"};

const char *tg__policy_name(tg__policy p) { return policy_names[p]; }

bool tg__policy_parse(tg_loc loc, const char *func, const char *name, tg__policy *out)
{
    for (int p = 0; name && p < (int)(sizeof policy_names / sizeof *policy_names); p++)
        if (!strcmp(name, policy_names[p]))
            return *out = (tg__policy)p, true;
    if (name && (!strcmp(name, "mixed_float16") || !strcmp(name, "float16") || !strcmp(name, "bfloat16")))
        return tg__failb(loc,
                         "%s: the dtype policy \"%s\" is Keras's but not tapegrad's (no float16; variables stay "
                         "float32 or float64); valid policies are \"float32\", \"float64\" and \"mixed_bfloat16\"",
                         func, name);
    return tg__failb(loc,
                     "%s: unknown dtype policy \"%.64s\"; valid policies are \"float32\", \"float64\" and "
                     "\"mixed_bfloat16\"",
                     func, name ? name : "(null)");
}

int tg_set_dtype_policy_at(tg_loc loc, const char *name)
{
    tg__policy p;
    if (!tg__policy_parse(loc, "tg_set_dtype_policy", name, &p))
        return -1;
    atomic_store(&global_policy, (int)p);
    return 0;
}

const char *tg_dtype_policy(void) { return policy_names[atomic_load(&global_policy)]; }

tg__policy tg__global_policy(void) { return (tg__policy)atomic_load(&global_policy); }

const char *tg_layer_dtype_policy(const tg_layer *l)
{
    if (!l)
        return NULL;
    if (l->mixed)
        return policy_names[TG__POLICY_MIXED_BF16];
    tg_dtype d = l->built || l->dtype_opt != TG_DTYPE_INHERIT ? l->dtype : TG_F32;
    return d == TG_F64 ? policy_names[TG__POLICY_FLOAT64] : policy_names[TG__POLICY_FLOAT32];
}

tg_dtype tg__layer_compute_dtype(const tg_layer *l) { return l->mixed && l->kind->computes_bf16 ? TG_BF16 : l->dtype; }

tg_tensor *tg__layer_read(tg_layer *l, tg_loc loc, int i)
{
    tg_tensor *v = l->vars[i];
    return tg__layer_compute_dtype(l) == TG_BF16 && tg_dtype_of(v) != TG_BF16 ? tg_cast_at(loc, v, TG_BF16) : v;
}
