/*
 * cli.h — the subcommands of the `orion` command line. Each takes the
 * arguments after its own name and returns the process exit code
 * (0 success, 1 failure, 2 usage error).
 */
#ifndef ORION_CLI_H
#define ORION_CLI_H

int orion_cli_bench(int argc, char **argv);          /* bench/bench_main.c */
int orion_cli_bench_kernels(int argc, char **argv);  /* bench/bench_kernels.c */
int orion_cli_info(int argc, char **argv);           /* tools/cmd_info.c */
int orion_cli_convert(int argc, char **argv);        /* tools/cmd_convert.c */
int orion_cli_quantize(int argc, char **argv);       /* tools/cmd_convert.c */
int orion_cli_run(int argc, char **argv);            /* tools/cmd_run.c */
int orion_cli_perplexity(int argc, char **argv);     /* tools/cmd_perplexity.c */
int orion_cli_synth(int argc, char **argv);          /* tools/cmd_synth.c */
int orion_cli_bench_decode(int argc, char **argv);   /* bench/bench_decode.c */
int orion_cli_chat(int argc, char **argv);           /* tools/cmd_chat.c */
int orion_cli_imatrix(int argc, char **argv);        /* tools/cmd_imatrix.c */
int orion_cli_bench_cache(int argc, char **argv);    /* bench/bench_cache.c */
int orion_cli_serve(int argc, char **argv);          /* tools/cmd_serve.c */
int orion_cli_bench_serve(int argc, char **argv);    /* bench/bench_serve.c */
int orion_cli_profile(int argc, char **argv);        /* tools/cmd_profile.c */
int orion_cli_models(int argc, char **argv);         /* tools/cmd_models.c */
int orion_cli_bench_embed(int argc, char **argv);    /* bench/bench_embed.c */
int orion_cli_embed(int argc, char **argv);          /* tools/cmd_embed.c */
int orion_cli_embed_quality(int argc, char **argv);  /* tools/cmd_embed_quality.c */
int orion_cli_ps(int argc, char **argv);             /* tools/cmd_ps.c */
int orion_cli_top(int argc, char **argv);            /* tools/cmd_top.c */
int orion_cli_bench_vision(int argc, char **argv);   /* bench/bench_vision.c */
int orion_cli_bench_matvec(int argc, char **argv);   /* bench/bench_matvec.c */
int orion_cli_bench_attention(int argc, char **argv); /* bench/bench_attention.c */

#endif
