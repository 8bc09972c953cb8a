#!/usr/bin/env node
// ort_embed.js - ONNX Runtime (npm onnxruntime-node, CPU) running the
// MiniLM-shaped encoder of bench/minilm_onnx.py: the other side of
// `orion bench embed --vs-ort`.
//
//   node bench/ort_embed.js --model F.onnx [--batch 32] [--seq 128] [--threads N]
//                           [--warmup 2] [--reps 5] [--min-seconds 0]
//       times session.run on batch x seq synthetic token ids ([CLS], seq-2
//       words, [SEP]; every token real), after warm-up runs, and prints one
//       JSON object: {"batch", "seq", "threads", "reps", "times_s": [...],
//       "best_s", "median_s", "ort_version"} on standard output.
//   node bench/ort_embed.js --model F.onnx --serve [--batch 32] [--seq 128] [--threads N] [--warmup 2]
//       (how `orion bench embed --vs-ort` drives it, interleaving its reps with
//       ours): loads, warms up, prints {"ready": true, "load_s", "ort_version"},
//       then for each "rep" line on stdin runs once and prints {"s": seconds};
//       exits at EOF or "quit".
//   node bench/ort_embed.js --model F.onnx --check IDS.json [--threads N]
//       IDS.json: {"ids": [[...]], "mask": [[...]]}; prints {"embeddings": [[...]]}.
//
// Session: intraOpNumThreads = --threads, interOpNumThreads = 1, graph
// optimizations "all", sequential execution, CPU provider only. Only
// session.run is timed (tensors are built before the clock starts).
// Exit codes: 0 ok, 1 failure (message on stderr), 2 usage.
'use strict';

const path = require('path');
const fs = require('fs');

const NPM = path.join(__dirname, '..', 'third_party', 'npm', 'node_modules');
let ort;
try {
  ort = require(path.join(NPM, 'onnxruntime-node'));
} catch (e) {
  process.stderr.write(`ort_embed.js: cannot load onnxruntime-node from ${NPM}: ${e.message}\n`);
  process.exit(1);
}

function usage(code) {
  process.stderr.write('usage: node bench/ort_embed.js --model F.onnx [--batch N] [--seq N] [--threads N]\n' +
                       '                               [--warmup N] [--reps N] [--min-seconds S] [--check IDS.json]\n');
  process.exit(code);
}

function parseArgs(argv) {
  const a = {
    model: null, batch: 32, seq: 128, threads: 1, warmup: 2, reps: 5, minSeconds: 0, check: null, serve: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    const num = () => {
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n) || n < 0) usage(2);
      i++;
      return n;
    };
    if (k === '--model') { if (v === undefined) usage(2); a.model = v; i++; }
    else if (k === '--check') { if (v === undefined) usage(2); a.check = v; i++; }
    else if (k === '--serve') a.serve = true;
    else if (k === '--batch') a.batch = num();
    else if (k === '--seq') a.seq = num();
    else if (k === '--threads') a.threads = num();
    else if (k === '--warmup') a.warmup = num();
    else if (k === '--reps') a.reps = num();
    else if (k === '--min-seconds') a.minSeconds = num();
    else if (k === '--help' || k === '-h') usage(0);
    else usage(2);
  }
  if (!a.model || a.batch < 1 || a.seq < 2 || a.threads < 1 || a.reps < 1) usage(2);
  return a;
}

function tensor(rows, batch, seq) {
  const data = new BigInt64Array(batch * seq);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < seq; t++) data[b * seq + t] = BigInt(rows[b][t]);
  return new ort.Tensor('int64', data, [batch, seq]);
}

// The same ids as `orion bench embed`: [CLS], words from a fixed LCG, [SEP].
function syntheticIds(batch, seq) {
  const ids = [];
  let s = 12345;
  for (let b = 0; b < batch; b++) {
    const row = new Array(seq);
    row[0] = 101;
    for (let t = 1; t < seq - 1; t++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      row[t] = 1000 + ((s >>> 8) % 29000);
    }
    row[seq - 1] = 102;
    ids.push(row);
  }
  return ids;
}

function ortVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(NPM, 'onnxruntime-node', 'package.json'), 'utf8')).version;
  } catch (e) {
    return '';
  }
}

async function serve(session, feeds, loadS, a) {
  for (let i = 0; i < a.warmup; i++) await session.run(feeds);
  process.stdout.write(JSON.stringify({ ready: true, load_s: loadS, ort_version: ortVersion(),
                                        threads: a.threads, batch: a.batch, seq: a.seq }) + '\n');
  const rl = require('readline').createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'quit') break;
    if (cmd !== 'rep') continue;
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    process.stdout.write(JSON.stringify({ s: Number(process.hrtime.bigint() - t0) / 1e9 }) + '\n');
  }
  rl.close();
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const tLoad = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });

  if (a.check) {
    const j = JSON.parse(fs.readFileSync(a.check, 'utf8'));
    const batch = j.ids.length, seq = j.ids[0].length;
    const zeros = j.ids.map((r) => r.map(() => 0));
    const out = await session.run({
      input_ids: tensor(j.ids, batch, seq),
      attention_mask: tensor(j.mask, batch, seq),
      token_type_ids: tensor(zeros, batch, seq),
    });
    const e = out.embeddings;
    const dim = e.dims[1];
    const rows = [];
    for (let b = 0; b < batch; b++) rows.push(Array.from(e.data.subarray(b * dim, (b + 1) * dim)));
    process.stdout.write(JSON.stringify({ embeddings: rows }) + '\n');
    return;
  }

  const ids = syntheticIds(a.batch, a.seq);
  const ones = ids.map((r) => r.map(() => 1));
  const zeros = ids.map((r) => r.map(() => 0));
  const feeds = {
    input_ids: tensor(ids, a.batch, a.seq),
    attention_mask: tensor(ones, a.batch, a.seq),
    token_type_ids: tensor(zeros, a.batch, a.seq),
  };
  if (a.serve) {
    await serve(session, feeds, Number(process.hrtime.bigint() - tLoad) / 1e9, a);
    return;
  }
  for (let i = 0; i < a.warmup; i++) await session.run(feeds);
  const times = [];
  const start = process.hrtime.bigint();
  while (times.length < a.reps || Number(process.hrtime.bigint() - start) / 1e9 < a.minSeconds) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    if (times.length >= 1000) break;
  }
  const sorted = [...times].sort((x, y) => x - y);
  const n = sorted.length;
  const median = n % 2 ? sorted[(n - 1) / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  const version = ortVersion();
  process.stdout.write(JSON.stringify({
    batch: a.batch, seq: a.seq, threads: a.threads, reps: n, times_s: times,
    best_s: sorted[0], median_s: median, ort_version: version,
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ort_embed.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
