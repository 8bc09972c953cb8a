/*
 * cmd_convert.c — `orion convert` and `orion quantize`: run orion_convert,
 * show a progress bar on a terminal, and finish with a measured table: per
 * tensor and per tensor group (the name without its "blk.N." prefix) and in
 * total — bytes before and after, the reduction, and the quantization error
 * (RMSE and relative RMSE against the source values).
 *
 * With --gptq TEXTS, the model is first run over the calibration texts to
 * collect each weight matrix's Hessian X^T X (calib_run.c, calib_hessian.c),
 * which orion_convert then quantizes with GPTQ. The model must be a GGUF file
 * to run; another source (llama2.c, Hugging Face, TF.js) is first converted
 * to a temporary GGUF next to OUT, keeping its types, and that file is both
 * run and converted. The per-tensor table then also shows each GPTQ tensor's
 * relative output error on the calibration inputs.
 *
 * A Hugging Face LLaVA directory converts to two files: OUT and the image
 * encoder + projector, OUT.mmproj.gguf (OUT's ".gguf" replaced) or the path
 * --mmproj gives; both paths are printed.
 */
#include "calib.h"
#include "cli.h"
#include "orion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS 64
#define GPTQ_MAX_BYTES ((size_t)2 << 30) /* all Hessians together */

typedef struct group {
    char   name[64];
    int    n;
    size_t bytes_in, bytes_out;
    double sq_err, sq_ref, n_elems;
    char   types[96];
} group;

typedef struct report_state {
    bool   tty;
    bool   per_tensor;
    FILE  *table;      /* per-tensor lines are buffered here until the end */
    group  groups[MAX_GROUPS];
    int    n_groups;
    group  total;
    int    n_files;    /* files begun: tensor index 0 seen */
} report_state;

static const char *group_name(const char *name) {
    if (strncmp(name, "v.blk.", 6) == 0) { /* a vision tower's layer: keep "v." in the group */
        static _Thread_local char buf[64];
        const char *dot = strchr(name + 6, '.');
        if (dot) {
            snprintf(buf, sizeof buf, "v.%s", dot + 1);
            return buf;
        }
    }
    if (strncmp(name, "blk.", 4) == 0) {
        const char *dot = strchr(name + 4, '.');
        if (dot) return dot + 1;
    }
    return name;
}

static void add_to(group *g, const orion_tensor_report *r) {
    g->n++;
    g->bytes_in += r->bytes_in;
    g->bytes_out += r->bytes_out;
    double n = (double)r->n_elems;
    g->sq_err += r->rmse * r->rmse * n;
    if (r->rel_err > 0.0) g->sq_ref += (r->rmse / r->rel_err) * (r->rmse / r->rel_err) * n;
    else if (r->rmse == 0.0) g->sq_ref += 0.0;
    g->n_elems += n;
    char t[24];
    snprintf(t, sizeof t, "%s->%s%s", orion_type_name(r->from), orion_type_name(r->to), r->gptq ? "(gptq)" : "");
    if (!strstr(g->types, t) && strlen(g->types) + strlen(t) + 2 < sizeof g->types) {
        if (g->types[0]) strcat(g->types, ",");
        strcat(g->types, t);
    }
}

static void on_tensor(void *user, int64_t index, int64_t count, const orion_tensor_report *r) {
    report_state *s = user;
    if (index == 0) s->n_files++;
    const char *gn = group_name(r->name);
    group *g = NULL;
    for (int i = 0; i < s->n_groups; i++)
        if (strcmp(s->groups[i].name, gn) == 0) g = &s->groups[i];
    if (!g && s->n_groups < MAX_GROUPS) {
        g = &s->groups[s->n_groups++];
        memset(g, 0, sizeof *g);
        snprintf(g->name, sizeof g->name, "%s", gn);
    }
    if (g) add_to(g, r);
    add_to(&s->total, r);
    if (s->per_tensor && s->table) {
        char types[32], oerr[16] = "-";
        snprintf(types, sizeof types, "%s->%s%s", orion_type_name(r->from), orion_type_name(r->to),
                 r->gptq ? "(gptq)" : "");
        if (r->out_rel_err >= 0.0) snprintf(oerr, sizeof oerr, "%.5f", r->out_rel_err);
        fprintf(s->table, "  %-32s %-19s %12zu %12zu %7.1f%% %11.3e %9.5f %9s\n", r->name, types, r->bytes_in,
                r->bytes_out,
                r->bytes_in ? 100.0 * (1.0 - (double)r->bytes_out / (double)r->bytes_in) : 0.0, r->rmse, r->rel_err,
                oerr);
    }
    if (s->tty) {
        int width = 30, filled = (int)((index + 1) * width / (count ? count : 1));
        fprintf(stderr, "\r[%.*s%*s] %3d%% %lld/%lld %-40.40s", filled, "##############################",
                width - filled, "", (int)((index + 1) * 100 / (count ? count : 1)), (long long)(index + 1),
                (long long)count, r->name);
        if (index + 1 == count) fputc('\n', stderr);
        fflush(stderr);
    }
}

static void print_group(const group *g) {
    double rmse = g->n_elems > 0 ? sqrt(g->sq_err / g->n_elems) : 0.0;
    double rel = g->sq_ref > 0 ? sqrt(g->sq_err / g->sq_ref) : 0.0;
    printf("  %-24s %3d %-24s %12zu %12zu %7.1f%% %11.3e %9.5f\n", g->name, g->n, g->types, g->bytes_in, g->bytes_out,
           g->bytes_in ? 100.0 * (1.0 - (double)g->bytes_out / (double)g->bytes_in) : 0.0, rmse, rel);
}

static int usage(const char *cmd) {
    if (strcmp(cmd, "quantize") == 0)
        fprintf(stderr, "usage: orion quantize IN.gguf OUT.gguf --type f32|f16|bf16|q8_0|q4_0|q4_1 "
                        "[--calibrate] [--imatrix FILE] [--gptq TEXTS [--gptq-damp F] [--chunks N] [--ctx C]] "
                        "[--no-q8-embd] [--tensor-type PATTERN=TYPE ...] [--per-tensor] [--threads N]\n");
    else
        fprintf(stderr, "usage: orion convert SRC OUT.gguf [--type T] [--tokenizer tokenizer.bin] [--calibrate] "
                        "[--imatrix FILE] [--gptq TEXTS [--gptq-damp F] [--chunks N] [--ctx C]] [--no-q8-embd] "
                        "[--tensor-type PATTERN=TYPE ...] [--mmproj MMPROJ.gguf] [--per-tensor] [--threads N]\n"
                        "  SRC: a llama2.c checkpoint (.bin), a GGUF file, or a Hugging Face model directory\n"
                        "       (config.json + safetensors: BERT, Llama, Mistral, LLaVA), or the Universal Sentence\n"
                        "       Encoder lite's TF.js directory (model.json, weight shards, vocab.json)\n"
                        "  LLaVA (LlavaForConditionalGeneration) writes the language model to OUT.gguf and the\n"
                        "       image encoder + projector to MMPROJ.gguf (default: OUT.mmproj.gguf)\n");
    fprintf(stderr, "  --gptq TEXTS: quantize q4_0/q4_1/q8_0 matrices with GPTQ, calibrated on TEXTS (a sentence\n"
                    "       encoder: one text per line, --chunks caps the texts; a decoder: --chunks chunks of\n"
                    "       --ctx tokens, default all of 256); --gptq-damp: damping as a fraction of the\n"
                    "       Hessian's mean diagonal (default 0.01); with --calibrate, block scales are searched\n");
    return 2;
}

/* --gptq: the Hessians of `model` (a GGUF file) over the texts; NULL after
 * printing why. */
static calib_hessians *collect_hessians(const char *cmd, const char *model, const char *texts, const calib_opts *o) {
    calib_hessians *hs = calib_hessians_new(GPTQ_MAX_BYTES, o->n_threads);
    if (!hs) {
        fprintf(stderr, "orion %s: out of memory\n", cmd);
        return NULL;
    }
    calib_result res;
    if (calib_run(cmd, model, texts, o, calib_hessians_observe, hs, &res) != 0) goto fail;
    if (calib_hessians_error(hs)) {
        fprintf(stderr, "orion %s: %s\n", cmd, calib_hessians_error(hs));
        goto fail;
    }
    if (calib_hessians_count(hs) == 0) {
        fprintf(stderr, "orion %s: --gptq: the model made no matrix products\n", cmd);
        goto fail;
    }
    if (res.encoder)
        printf("gptq: Hessians of %d tensors (%.1f MiB) from %d texts of %s\n", calib_hessians_count(hs),
               (double)calib_hessians_bytes(hs) / 1048576.0, res.n, texts);
    else
        printf("gptq: Hessians of %d tensors (%.1f MiB) from %d chunks of %d tokens of %s\n",
               calib_hessians_count(hs), (double)calib_hessians_bytes(hs) / 1048576.0, res.n, o->ctx, texts);
    return hs;
fail:
    calib_hessians_free(hs);
    return NULL;
}

static int run(const char *cmd, int argc, char **argv) {
    orion_convert_params p = orion_convert_default_params();
    const char *src = NULL, *dst = NULL, *gptq = NULL;
    calib_opts co = {256, 0, 0, true};
    char tensor_types[1024] = ""; /* --tensor-type rules, joined */
    report_state s;
    memset(&s, 0, sizeof s);
    snprintf(s.total.name, sizeof s.total.name, "total");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--type") == 0 && i + 1 < argc) {
            orion_type t;
            if (orion_type_from_name(argv[++i], &t) != ORION_OK) {
                fprintf(stderr, "orion %s: %s\n", cmd, orion_last_error());
                return 2;
            }
            p.type = (int)t;
        } else if (strcmp(a, "--tensor-type") == 0 && i + 1 < argc) {
            /* repeatable: joined into "PATTERN=TYPE,..." (first match wins) */
            size_t have = strlen(tensor_types);
            int w = snprintf(tensor_types + have, sizeof tensor_types - have, "%s%s", have ? "," : "", argv[++i]);
            if (w < 0 || (size_t)w >= sizeof tensor_types - have) {
                fprintf(stderr, "orion %s: too many --tensor-type rules\n", cmd);
                return 2;
            }
            p.tensor_types = tensor_types;
        } else if (strcmp(a, "--mmproj") == 0 && i + 1 < argc && strcmp(cmd, "convert") == 0) {
            p.mmproj = argv[++i];
        } else if (strcmp(a, "--tokenizer") == 0 && i + 1 < argc) {
            p.tokenizer = argv[++i];
        } else if (strcmp(a, "--imatrix") == 0 && i + 1 < argc) {
            p.imatrix = argv[++i];
            p.calibrate = true;
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            p.n_threads = atoi(argv[++i]);
            if (p.n_threads < 0 || p.n_threads > 1024) return usage(cmd);
        } else if (strcmp(a, "--gptq") == 0 && i + 1 < argc) {
            gptq = argv[++i];
        } else if (strcmp(a, "--gptq-damp") == 0 && i + 1 < argc) {
            char *end;
            p.gptq_damp = strtod(argv[++i], &end);
            if (*end || !(p.gptq_damp >= 0.0 && p.gptq_damp <= 100.0)) {
                fprintf(stderr, "orion %s: --gptq-damp wants a number in [0, 100]\n", cmd);
                return 2;
            }
        } else if (strcmp(a, "--chunks") == 0 && i + 1 < argc) {
            co.max_chunks = atoi(argv[++i]);
            if (co.max_chunks < 0) return usage(cmd);
        } else if (strcmp(a, "--ctx") == 0 && i + 1 < argc) {
            co.ctx = atoi(argv[++i]);
            if (co.ctx < 16) return usage(cmd);
        } else if (strcmp(a, "--calibrate") == 0) {
            p.calibrate = true;
        } else if (strcmp(a, "--no-q8-embd") == 0) {
            p.keep_embd_q8 = false;
        } else if (strcmp(a, "--per-tensor") == 0) {
            s.per_tensor = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "orion %s: unknown option '%s'\n", cmd, a);
            return usage(cmd);
        } else if (!src) {
            src = a;
        } else if (!dst) {
            dst = a;
        } else {
            return usage(cmd);
        }
    }
    if (!src || !dst) return usage(cmd);
    if (strcmp(cmd, "quantize") == 0 && p.type < 0) {
        fprintf(stderr, "orion quantize: --type is required\n");
        return usage(cmd);
    }
    calib_hessians *hs = NULL;
    char tmp[4096] = "", gptq_mmproj[4096] = "";
    if (gptq) {
        co.n_threads = p.n_threads;
        if (!orion_gguf_is_file(src)) {
            /* run the source as a GGUF file: convert it first, types kept */
            if (snprintf(tmp, sizeof tmp, "%s.gptq-src.gguf", dst) >= (int)sizeof tmp) return usage(cmd);
            orion_convert_params tp = orion_convert_default_params();
            tp.tokenizer = p.tokenizer;
            tp.n_threads = p.n_threads;
            /* a LLaVA directory's image encoder goes where it belongs, in its
             * source types (GPTQ calibrates the decoder only) */
            if (!p.mmproj && orion_convert_mmproj_path(dst, gptq_mmproj, sizeof gptq_mmproj) == ORION_OK)
                tp.mmproj = gptq_mmproj;
            else tp.mmproj = p.mmproj;
            report_state ts;
            memset(&ts, 0, sizeof ts);
            tp.on_tensor = on_tensor;
            tp.user = &ts;
            if (orion_convert(src, tmp, &tp) != ORION_OK) {
                fprintf(stderr, "orion %s: %s\n", cmd, orion_last_error());
                return 1;
            }
            if (ts.n_files > 1) printf("wrote %s (image encoder + projector, source types)\n", tp.mmproj);
            src = tmp;
        }
        if (!(hs = collect_hessians(cmd, src, gptq, &co))) {
            if (tmp[0]) remove(tmp);
            return 1;
        }
        p.hessian = calib_hessians_get;
        p.hessian_user = hs;
    }
    s.tty = isatty(STDERR_FILENO);
    s.table = s.per_tensor ? tmpfile() : NULL;
    p.on_tensor = on_tensor;
    p.user = &s;
    orion_status st = orion_convert(src, dst, &p);
    calib_hessians_free(hs);
    if (tmp[0]) remove(tmp);
    if (st != ORION_OK) {
        if (s.tty) fputc('\n', stderr);
        fprintf(stderr, "orion %s: %s\n", cmd, orion_last_error());
        if (s.table) fclose(s.table);
        return 1;
    }
    printf("wrote %s\n", dst);
    if (s.n_files > 1) {
        char mm[4096];
        if (p.mmproj) snprintf(mm, sizeof mm, "%s", p.mmproj);
        else if (orion_convert_mmproj_path(dst, mm, sizeof mm) != ORION_OK) mm[0] = '\0';
        printf("wrote %s (image encoder + projector)\n", mm);
    }
    if (s.table) {
        printf("\n  %-32s %-19s %12s %12s %8s %11s %9s %9s\n", "tensor", "", "bytes before", "bytes after", "saved",
               "rmse", "rel err", "out err");
        rewind(s.table);
        char line[512];
        while (fgets(line, sizeof line, s.table)) fputs(line, stdout);
        fclose(s.table);
    }
    printf("\n  %-24s %3s %-24s %12s %12s %8s %11s %9s\n", "group", "n", "types", "bytes before", "bytes after",
           "saved", "rmse", "rel err");
    for (int i = 0; i < s.n_groups; i++) print_group(&s.groups[i]);
    s.total.types[0] = '\0';
    print_group(&s.total);
    return 0;
}

int orion_cli_convert(int argc, char **argv) {
    return run("convert", argc, argv);
}

int orion_cli_quantize(int argc, char **argv) {
    return run("quantize", argc, argv);
}
