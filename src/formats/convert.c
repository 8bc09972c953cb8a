/*
 * convert.c — orion_convert: any supported source (GGUF, llama2.c, a
 * Hugging Face directory) to a GGUF file, with each tensor re-typed by the
 * mixed-precision rule.
 *
 * How it works: the source is opened (mapped), its metadata is copied into a
 * GGUF writer, and each tensor is registered with a producer that runs at
 * write time. A producer converts its tensor row by row on the thread pool:
 * source row -> f32 (dequantize) -> target type (reference or calibrated
 * quantizer) -> back to f32 to measure the error. So the process holds one
 * output tensor at a time, plus two rows of floats per thread, and the error
 * table comes out of the same pass. A source tensor may ask for its rows to
 * be reordered on the way (Hugging Face's rotate-half q and k, see
 * source_row), which costs nothing extra: rows are read in the new order.
 *
 * GPTQ: when the caller supplies a Hessian for a matrix whose target type is
 * q4_0, q4_1 or q8_0 (params->hessian), its producer first factors the
 * Hessian (orion__gptq_init, once per tensor), then converts rows in tiles
 * of ORION_GPTQ_TILE on the pool through orion__gptq_quantize_rows; rows are
 * independent given the factor, so the split is the same as for the other
 * quantizers. The report then also carries the output error measured with
 * the Hessian.
 *
 * A Hugging Face LLaVA directory makes two files from one source: the
 * language model at dst, then the image encoder + projector (mmproj) at
 * params->mmproj, each through its own writer with the same type rule.
 */
#include "formats/gguf_internal.h"
#include "formats/hf_model.h"
#include "formats/tfjs.h"
#include "formats/llama2c.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

orion_convert_params orion_convert_default_params(void) {
    orion_convert_params p;
    memset(&p, 0, sizeof p);
    p.type = -1;
    p.keep_embd_q8 = true;
    p.gptq_damp = 0.01;
    return p;
}

/* ---- imatrix (llama.cpp's legacy binary format) ------------------------------
 * i32 n_entries; per entry: i32 name_len, name bytes, i32 ncall, i32 nval,
 * f32 values[nval] (sums of squared activations over ncall calls). */
typedef struct imatrix_entry {
    char   *name;
    int32_t n;
    float  *values; /* mean squared activation per column */
} imatrix_entry;

typedef struct imatrix {
    int32_t        n;
    imatrix_entry *entries;
} imatrix;

static void imatrix_free(imatrix *im) {
    if (!im) return;
    for (int32_t i = 0; i < im->n; i++) {
        orion__free(im->entries[i].name);
        orion__free(im->entries[i].values);
    }
    orion__free(im->entries);
    orion__free(im);
}

static orion_status imatrix_load(const char *path, imatrix **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return orion__fail(ORION_ERR_NOT_FOUND, "%s: cannot open imatrix file", path);
    orion_status st = ORION_OK;
    imatrix *im = orion__calloc(1, sizeof *im);
    int32_t n = 0;
    if (!im || fread(&n, 4, 1, f) != 1 || n < 0 || n > 100000) {
        st = im ? orion__fail(ORION_ERR_FORMAT, "%s: bad imatrix entry count", path)
                : orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    im->entries = orion__calloc((size_t)n ? (size_t)n : 1, sizeof *im->entries);
    if (!im->entries) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t len, ncall, nval;
        if (fread(&len, 4, 1, f) != 1 || len <= 0 || len > 4096) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: entry %d: bad name length", path, i);
            goto done;
        }
        imatrix_entry *e = &im->entries[i];
        im->n = i + 1;
        e->name = orion__malloc((size_t)len + 1);
        if (!e->name) {
            st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        if (fread(e->name, 1, (size_t)len, f) != (size_t)len || fread(&ncall, 4, 1, f) != 1 ||
            fread(&nval, 4, 1, f) != 1 || nval <= 0 || nval > (1 << 24)) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: entry %d: truncated or bad value count", path, i);
            goto done;
        }
        e->name[len] = '\0';
        e->n = nval;
        e->values = orion__malloc((size_t)nval * sizeof(float));
        if (!e->values) {
            st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        if (fread(e->values, 4, (size_t)nval, f) != (size_t)nval) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: entry '%s': truncated values", path, e->name);
            goto done;
        }
        float scale = ncall > 0 ? 1.0f / (float)ncall : 1.0f;
        for (int32_t j = 0; j < nval; j++) {
            float v = e->values[j] * scale;
            e->values[j] = (isfinite(v) && v > 0.0f) ? v : 0.0f;
        }
    }
done:
    fclose(f);
    if (st != ORION_OK) {
        imatrix_free(im);
        return st;
    }
    *out = im;
    return ORION_OK;
}

static const float *imatrix_find(const imatrix *im, const char *name, int64_t n) {
    if (!im) return NULL;
    for (int32_t i = 0; i < im->n; i++)
        if (strcmp(im->entries[i].name, name) == 0 && im->entries[i].n == n) return im->entries[i].values;
    return NULL;
}

/* ---- the type rule ------------------------------------------------------------ */

static bool is_embedding_or_head(const char *name) {
    return strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output.weight") == 0;
}

/* Walks the "PATTERN=TYPE[,...]" list of params->tensor_types. With name:
 * the type of the first rule whose PATTERN occurs in it (true), or false.
 * With name NULL: checks the syntax and the type names (false = bad). */
static bool tensor_type_rule(const char *spec, const char *name, orion_type *out) {
    const char *r = spec;
    while (r && *r) {
        const char *end = strchr(r, ',');
        size_t len = end ? (size_t)(end - r) : strlen(r);
        const char *eq = memchr(r, '=', len);
        char pat[128], tname[16];
        if (!eq || eq == r || (size_t)(eq - r) >= sizeof pat || len - (size_t)(eq - r) - 1 >= sizeof tname ||
            len - (size_t)(eq - r) - 1 == 0)
            return false;
        memcpy(pat, r, (size_t)(eq - r));
        pat[eq - r] = 0;
        memcpy(tname, eq + 1, len - (size_t)(eq - r) - 1);
        tname[len - (size_t)(eq - r) - 1] = 0;
        orion_type t;
        if (orion_type_from_name(tname, &t) != ORION_OK || !orion_type_is_supported(t)) return false;
        if (name && strstr(name, pat)) {
            *out = t;
            return true;
        }
        r = end ? end + 1 : NULL;
    }
    return name == NULL;
}

static bool is_float_type(orion_type t) {
    return t == ORION_TYPE_F32 || t == ORION_TYPE_F16 || t == ORION_TYPE_BF16;
}

static orion_type target_type(const orion_convert_params *p, const char *name, orion_type from, int n_dims,
                              int64_t ne0) {
    if (n_dims == 1) return p->type < 0 ? from : ORION_TYPE_F32; /* norms and biases */
    orion_type to;
    /* a vision tower's learned positions are added, not multiplied: they
     * keep a float type (their own, or the target when that is a float) */
    if (strcmp(name, "v.position_embd.weight") == 0) {
        to = p->type < 0 ? from : (orion_type)p->type;
        if (p->tensor_types) tensor_type_rule(p->tensor_types, name, &to);
        return is_float_type(to) ? to : is_float_type(from) ? from : ORION_TYPE_F32;
    }
    if (p->tensor_types && tensor_type_rule(p->tensor_types, name, &to)) {
        if (ne0 % orion_type_block_elems(to) != 0) to = ORION_TYPE_F16;
        return to;
    }
    if (p->type < 0) return from;
    to = (orion_type)p->type;
    if (p->keep_embd_q8 && is_embedding_or_head(name) && orion_type_bits_per_weight(to) < 8.5)
        to = ORION_TYPE_Q8_0;
    if (ne0 % orion_type_block_elems(to) != 0) to = ORION_TYPE_F16;
    return to;
}

/* ---- tensor producers ----------------------------------------------------------- */

typedef struct tensor_job {
    const char        *name;
    orion_type         from, to;
    int64_t            n_rows, n_per_row;
    const void        *src;        /* n_rows rows of `from` */
    const float       *importance; /* n_per_row, or NULL */
    bool               calibrate;
    int64_t            index, count;
    const orion_convert_params *params;
    int64_t            rope_heads; /* > 0: rows permuted per head, see source_row */
    const double      *hessian;    /* n_per_row x n_per_row: quantize by GPTQ; or NULL */
} tensor_job;

/* The source row of output row r. Hugging Face stores each head's q and k
 * rows as [first halves | second halves] of the rotary pairs (rotate-half
 * rope); GGUF wants the pairs interleaved, as llama.cpp's converter writes
 * them: output row h*hd + 2*i + a (a = 0, 1) comes from source row
 * h*hd + a*hd/2 + i, for heads of hd rows. */
static int64_t source_row(const tensor_job *j, int64_t r) {
    if (j->rope_heads <= 0) return r;
    int64_t hd = j->n_rows / j->rope_heads;
    if (hd < 2 || hd % 2 != 0 || hd * j->rope_heads != j->n_rows) return r;
    int64_t h = r / hd, i = (r % hd) / 2, a = r % 2;
    return h * hd + a * (hd / 2) + i;
}

typedef struct row_task {
    const tensor_job  *job;
    uint8_t           *dst;
    float             *bufs;   /* per thread: 2 * ORION_GPTQ_TILE * n_per_row floats */
    double            *sums;   /* per thread: squared error, squared source, output error, output */
    const orion__gptq *gptq;   /* the factored Hessian, or NULL */
    orion_status      *status; /* per thread (GPTQ can fail) */
    char             (*msg)[256];
} row_task;

#define N_SUMS 4

/* GPTQ: tiles of ORION_GPTQ_TILE rows, dealt round-robin. */
static void convert_rows_gptq(row_task *t, int ith, int nth) {
    const tensor_job *j = t->job;
    const orion_kernels *k = orion__kernels();
    const int64_t n = j->n_per_row;
    size_t in_row = orion_type_row_bytes(j->from, n);
    size_t out_row = orion_type_row_bytes(j->to, n);
    float *x = t->bufs + (size_t)ith * 2 * ORION_GPTQ_TILE * (size_t)n, *y = x + ORION_GPTQ_TILE * n;
    double err = 0.0, ref = 0.0, oerr = 0.0, oref = 0.0;
    for (int64_t r0 = (int64_t)ith * ORION_GPTQ_TILE; r0 < j->n_rows; r0 += (int64_t)nth * ORION_GPTQ_TILE) {
        const int64_t nt = ORION_MIN((int64_t)ORION_GPTQ_TILE, j->n_rows - r0);
        for (int64_t r = 0; r < nt; r++)
            k->dequantize_row[j->from]((const uint8_t *)j->src + (size_t)source_row(j, r0 + r) * in_row, x + r * n, n);
        orion_status st = orion__gptq_quantize_rows(t->gptq, j->to, x, nt, t->dst + (size_t)r0 * out_row, y);
        if (st != ORION_OK) {
            t->status[ith] = st;
            snprintf(t->msg[ith], sizeof t->msg[ith], "%s", orion_last_error());
            return;
        }
        for (int64_t r = 0; r < nt; r++) {
            const float *xr = x + r * n, *yr = y + r * n;
            for (int64_t i = 0; i < n; i++) {
                double e = (double)yr[i] - (double)xr[i];
                err += e * e;
                ref += (double)xr[i] * (double)xr[i];
            }
            double o_ref = 0.0;
            oerr += orion__gptq_output_error(j->hessian, n, xr, yr, &o_ref);
            oref += o_ref;
        }
    }
    t->sums[N_SUMS * ith] = err;
    t->sums[N_SUMS * ith + 1] = ref;
    t->sums[N_SUMS * ith + 2] = oerr;
    t->sums[N_SUMS * ith + 3] = oref;
}

static void convert_rows(void *arg, int ith, int nth) {
    row_task *t = arg;
    t->status[ith] = ORION_OK;
    if (t->gptq) {
        convert_rows_gptq(t, ith, nth);
        return;
    }
    const tensor_job *j = t->job;
    const orion_kernels *k = orion__kernels();
    size_t in_row = orion_type_row_bytes(j->from, j->n_per_row);
    size_t out_row = orion_type_row_bytes(j->to, j->n_per_row);
    float *x = t->bufs + (size_t)ith * 2 * ORION_GPTQ_TILE * (size_t)j->n_per_row, *y = x + j->n_per_row;
    double err = 0.0, ref = 0.0;
    orion_quant_params qp = {j->calibrate, j->importance};
    for (int64_t r = ith; r < j->n_rows; r += nth) {
        const uint8_t *s = (const uint8_t *)j->src + (size_t)source_row(j, r) * in_row;
        uint8_t *d = t->dst + (size_t)r * out_row;
        k->dequantize_row[j->from](s, x, j->n_per_row);
        if (j->to == ORION_TYPE_F32) memcpy(d, x, out_row);
        else orion_quantize(j->to, x, d, 1, j->n_per_row, &qp);
        k->dequantize_row[j->to](d, y, j->n_per_row);
        for (int64_t i = 0; i < j->n_per_row; i++) {
            double e = (double)y[i] - (double)x[i];
            err += e * e;
            ref += (double)x[i] * (double)x[i];
        }
    }
    t->sums[N_SUMS * ith] = err;
    t->sums[N_SUMS * ith + 1] = ref;
}

typedef struct convert_ctx {
    orion_threadpool *pool;
    int               n_threads;
} convert_ctx;

typedef struct producer {
    tensor_job  job;
    convert_ctx *ctx;
} producer;

static orion_status produce(void *user, void *dst, size_t n_bytes) {
    producer *p = user;
    tensor_job *j = &p->job;
    int nth = p->ctx->n_threads;
    orion_tensor_report rep = {j->name, j->from, j->to, j->n_rows * j->n_per_row,
                               orion_type_row_bytes(j->from, j->n_per_row) * (size_t)j->n_rows, n_bytes, 0.0, 0.0,
                               -1.0, false};
    if (j->from == j->to && j->rope_heads > 0) {
        size_t row = orion_type_row_bytes(j->from, j->n_per_row);
        for (int64_t r = 0; r < j->n_rows; r++)
            memcpy((uint8_t *)dst + (size_t)r * row, (const uint8_t *)j->src + (size_t)source_row(j, r) * row, row);
    } else if (j->from == j->to) {
        memcpy(dst, j->src, n_bytes);
    } else {
        orion__gptq *g = NULL;
        if (j->hessian) {
            orion__gptq_params gp = orion__gptq_default_params();
            gp.damp = j->params->gptq_damp;
            gp.search_scale = j->calibrate;
            orion_status st = orion__gptq_init(j->hessian, j->n_per_row, &gp, &g);
            if (st != ORION_OK) {
                char why[512];
                snprintf(why, sizeof why, "%s", orion_last_error());
                return orion__fail(st, "tensor '%s': %s", j->name, why);
            }
        }
        float *bufs = orion__malloc((size_t)nth * 2 * ORION_GPTQ_TILE * (size_t)j->n_per_row * sizeof(float));
        double *sums = orion__calloc((size_t)nth * N_SUMS, sizeof(double));
        orion_status *status = orion__calloc((size_t)nth, sizeof *status);
        char (*msg)[256] = orion__calloc((size_t)nth, sizeof *msg);
        orion_status st = ORION_OK;
        if (!bufs || !sums || !status || !msg) {
            st = orion__fail(ORION_ERR_NOMEM, "tensor '%s': out of memory for row buffers", j->name);
        } else {
            row_task t = {j, dst, bufs, sums, g, status, msg};
            orion_threadpool_run(p->ctx->pool, convert_rows, &t);
            double err = 0.0, ref = 0.0, oerr = 0.0, oref = 0.0;
            for (int i = 0; i < nth; i++) {
                err += sums[N_SUMS * i], ref += sums[N_SUMS * i + 1];
                oerr += sums[N_SUMS * i + 2], oref += sums[N_SUMS * i + 3];
                if (status[i] != ORION_OK && st == ORION_OK) st = orion__fail(status[i], "tensor '%s': %s", j->name, msg[i]);
            }
            double n = (double)ORION_MAX(rep.n_elems, 1);
            rep.rmse = sqrt(err / n);
            rep.rel_err = ref > 0.0 ? sqrt(err / ref) : 0.0;
            if (g) {
                rep.gptq = true;
                rep.out_rel_err = oref > 0.0 ? sqrt(ORION_MAX(oerr, 0.0) / oref) : 0.0;
            }
        }
        orion__free(bufs);
        orion__free(sums);
        orion__free(status);
        orion__free(msg);
        orion__gptq_free(g);
        if (st != ORION_OK) return st;
    }
    if (j->params->on_tensor) j->params->on_tensor(j->params->user, j->index, j->count, &rep);
    return ORION_OK;
}

/* ---- sources -------------------------------------------------------------------- */

typedef struct source_tensor {
    const char *name;
    orion_type  type;
    int         n_dims;
    int64_t     ne[4];
    const void *data;
    int64_t     rope_heads; /* see source_row; 0 for most tensors */
} source_tensor;

static orion_status add_tensors(orion_gguf_writer *w, const source_tensor *ts, int64_t n,
                                const orion_convert_params *p, const imatrix *im, convert_ctx *ctx,
                                producer **out_producers) {
    producer *prods = orion__calloc((size_t)(n ? n : 1), sizeof *prods);
    if (!prods) return orion__fail(ORION_ERR_NOMEM, "convert: out of memory");
    *out_producers = prods;
    for (int64_t i = 0; i < n; i++) {
        const source_tensor *t = &ts[i];
        orion_type to = target_type(p, t->name, t->type, t->n_dims, t->ne[0]);
        producer *pr = &prods[i];
        pr->ctx = ctx;
        pr->job = (tensor_job){t->name, t->type, to, t->ne[1] * t->ne[2] * t->ne[3], t->ne[0], t->data,
                               imatrix_find(im, t->name, t->ne[0]), p->calibrate, i, n, p, t->rope_heads, NULL};
        /* GPTQ for multiplied matrices of the 32-block types */
        if (p->hessian && t->n_dims == 2 && t->ne[0] % ORION_QK == 0 &&
            (to == ORION_TYPE_Q4_0 || to == ORION_TYPE_Q4_1 || to == ORION_TYPE_Q8_0) &&
            strcmp(t->name, "token_embd.weight") != 0)
            pr->job.hessian = p->hessian(p->hessian_user, t->name, t->ne[0]);
        orion_status st = orion__gguf_writer_add_tensor_fn(w, t->name, to, t->n_dims, t->ne, produce, pr);
        if (st != ORION_OK) return st;
    }
    return ORION_OK;
}

orion_status orion_convert_mmproj_path(const char *dst, char *buf, size_t size) {
    if (!dst || !buf) return orion__fail(ORION_ERR_INVALID_ARG, "orion_convert_mmproj_path: NULL argument");
    size_t n = strlen(dst);
    if (n >= 5 && strcmp(dst + n - 5, ".gguf") == 0) n -= 5;
    int len = snprintf(buf, size, "%.*s.mmproj.gguf", (int)n, dst);
    if (len < 0 || (size_t)len >= size) {
        if (size) buf[0] = '\0';
        return orion__fail(ORION_ERR_RANGE, "orion_convert_mmproj_path: '%s' is too long", dst);
    }
    return ORION_OK;
}

/* Writes the LLaVA image encoder + projector of hf to path. */
static orion_status write_mmproj(const orion_hf_model *hf, const char *path, const orion_convert_params *p,
                                 const imatrix *im, convert_ctx *ctx) {
    orion_gguf_writer *w = NULL;
    source_tensor *ts = NULL;
    producer *prods = NULL;
    const int64_t n = orion__hf_n_vision_tensors(hf);
    orion_status st = orion_gguf_writer_init(&w);
    if (st != ORION_OK) return st;
    if ((st = orion__hf_write_mmproj_metadata(hf, w)) != ORION_OK) goto done;
    if (!(ts = orion__calloc((size_t)(n ? n : 1), sizeof *ts))) {
        st = orion__fail(ORION_ERR_NOMEM, "convert: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const orion_hf_tensor *t = orion__hf_vision_tensor(hf, i);
        ts[i] = (source_tensor){t->name, t->type, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}, t->data, 0};
    }
    if ((st = add_tensors(w, ts, n, p, im, ctx, &prods)) != ORION_OK) goto done;
    st = orion_gguf_writer_write(w, path);
done:
    orion_gguf_writer_free(w);
    orion__free(prods);
    orion__free(ts);
    return st;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

orion_status orion_convert(const char *src, const char *dst, const orion_convert_params *params) {
    if (!src || !dst) return orion__fail(ORION_ERR_INVALID_ARG, "orion_convert: NULL path");
    orion_convert_params p = params ? *params : orion_convert_default_params();
    if (!(p.gptq_damp >= 0.0) || !isfinite(p.gptq_damp))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_convert: gptq_damp %g must be finite and >= 0", p.gptq_damp);
    if (p.type >= 0 && !orion_type_is_supported(p.type))
        return orion__fail(ORION_ERR_UNSUPPORTED, "orion_convert: unsupported target type %d", p.type);
    if (p.tensor_types && !tensor_type_rule(p.tensor_types, NULL, NULL))
        return orion__fail(ORION_ERR_INVALID_ARG,
                           "orion_convert: tensor types '%s': want PATTERN=TYPE[,PATTERN=TYPE...] with TYPE one of "
                           "f32 f16 bf16 q8_0 q4_0 q4_1",
                           p.tensor_types);

    orion_status st;
    char mmproj[4096] = "";
    orion_gguf *g = NULL;
    orion_llama2c *l2 = NULL;
    orion_llama2c_vocab *vocab = NULL;
    orion_llama2c_tensor *l2_tensors = NULL;
    orion_hf_model *hf = NULL;
    orion_use_lite_src *use = NULL;
    orion_gguf_writer *w = NULL;
    imatrix *im = NULL;
    source_tensor *ts = NULL;
    producer *prods = NULL;
    int64_t n = 0;
    convert_ctx ctx = {NULL, 1};

    if ((st = orion_gguf_writer_init(&w)) != ORION_OK) goto done;
    if (p.imatrix && (st = imatrix_load(p.imatrix, &im)) != ORION_OK) goto done;

    if (orion_gguf_is_file(src)) {
        if ((st = orion_gguf_open(src, &g)) != ORION_OK) goto done;
        for (int64_t i = 0; i < orion_gguf_n_kv(g); i++) {
            const char *key = orion_gguf_kv_key(g, i);
            if (strcmp(key, "general.alignment") == 0) continue;
            if ((st = orion_gguf_writer_set(w, key, orion_gguf_kv_value(g, i))) != ORION_OK) goto done;
        }
        n = orion_gguf_n_tensors(g);
        ts = orion__calloc((size_t)(n ? n : 1), sizeof *ts);
        if (!ts) {
            st = orion__fail(ORION_ERR_NOMEM, "convert: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
            ts[i] = (source_tensor){t->name, t->type, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}, t->data, 0};
        }
    } else if (orion__tfjs_is_graph_dir(src)) {
        /* a TF.js graph model directory: the Universal Sentence Encoder lite */
        if ((st = orion__use_lite_open(src, &use)) != ORION_OK) goto done;
        if ((st = orion__use_lite_write_metadata(use, NULL, w)) != ORION_OK) goto done;
        n = orion__use_lite_n_tensors(use);
        ts = orion__calloc((size_t)(n ? n : 1), sizeof *ts);
        if (!ts) {
            st = orion__fail(ORION_ERR_NOMEM, "convert: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            const orion_use_lite_tensor *t = orion__use_lite_tensor(use, i);
            ts[i] = (source_tensor){t->name, ORION_TYPE_F32, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]},
                                    t->data, 0};
        }
    } else if (orion__hf_is_dir(src)) {
        /* a Hugging Face model directory: config.json + safetensors */
        if ((st = orion__hf_open(src, &hf)) != ORION_OK) goto done;
        if (orion__hf_n_vision_tensors(hf) > 0) {
            if (p.mmproj) snprintf(mmproj, sizeof mmproj, "%s", p.mmproj);
            else if ((st = orion_convert_mmproj_path(dst, mmproj, sizeof mmproj)) != ORION_OK) goto done;
            if (strcmp(mmproj, dst) == 0) {
                st = orion__fail(ORION_ERR_INVALID_ARG, "convert: the model and the mmproj file are both '%s'", dst);
                goto done;
            }
        }
        if ((st = orion__hf_write_metadata(hf, w)) != ORION_OK) goto done;
        n = orion__hf_n_tensors(hf);
        ts = orion__calloc((size_t)(n ? n : 1), sizeof *ts);
        if (!ts) {
            st = orion__fail(ORION_ERR_NOMEM, "convert: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            const orion_hf_tensor *t = orion__hf_tensor(hf, i);
            ts[i] = (source_tensor){t->name, t->type, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}, t->data,
                                    t->rope_heads};
        }
    } else {
        if ((st = orion__llama2c_open(src, &l2)) != ORION_OK) {
            if (st == ORION_ERR_FORMAT) { /* say what else it could have been */
                char why[768];
                snprintf(why, sizeof why, "%s", orion_last_error());
                st = orion__fail(st, "%s (and it is not a GGUF file)", why);
            }
            goto done;
        }
        if (p.tokenizer && (st = orion__llama2c_vocab_load(p.tokenizer, l2->vocab_size, &vocab)) != ORION_OK)
            goto done;
        if ((st = orion__llama2c_write_metadata(l2, vocab, base_name(src), w)) != ORION_OK) goto done;
        n = orion__llama2c_n_tensors(l2);
        l2_tensors = orion__calloc((size_t)n, sizeof *l2_tensors);
        ts = orion__calloc((size_t)n, sizeof *ts);
        if (!ts || !l2_tensors) {
            st = orion__fail(ORION_ERR_NOMEM, "convert: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            orion_llama2c_tensor *t = &l2_tensors[i];
            orion__llama2c_tensor(l2, i, t);
            ts[i] = (source_tensor){t->name, ORION_TYPE_F32, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]},
                                    t->data, 0};
        }
    }

    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = p.n_threads;
    if ((st = orion_threadpool_init(&tp, &ctx.pool)) != ORION_OK) goto done;
    ctx.n_threads = orion_threadpool_n_threads(ctx.pool);
    if ((st = add_tensors(w, ts, n, &p, im, &ctx, &prods)) != ORION_OK) goto done;
    if ((st = orion_gguf_writer_write(w, dst)) != ORION_OK) goto done;
    if (mmproj[0]) st = write_mmproj(hf, mmproj, &p, im, &ctx);

done:
    orion_threadpool_free(ctx.pool);
    orion_gguf_writer_free(w);
    orion__free(prods);
    orion__free(l2_tensors);
    orion__free(ts);
    imatrix_free(im);
    orion__llama2c_vocab_free(vocab);
    orion__llama2c_free(l2);
    orion__hf_free(hf);
    orion__use_lite_free(use);
    orion_gguf_free(g);
    return st;
}
