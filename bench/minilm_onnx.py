#!/usr/bin/env python3
"""minilm_onnx.py - the MiniLM-shaped encoder of tests/ref/bert_ref.py as an
ONNX file and as a sentence-transformers directory, so that `orion bench
embed --vs-ort` runs ONNX Runtime and orion on the same weights.

  minilm_onnx.py OUT_DIR [--seed S] [--check]

writes
  OUT_DIR/st/          the sentence-transformers directory (bert_ref's
                       save_sentence_transformers: config, safetensors, vocab,
                       pooling; `orion convert OUT_DIR/st m.gguf --type f32`)
  OUT_DIR/minilm.onnx  inputs input_ids, attention_mask, token_type_ids
                       (int64, dynamic batch x seq), output `embeddings`
                       (batch, 384): mean pooling over the real tokens, then
                       L2 normalization, as the directory's modules say.

The ONNX graph is traced from a wrapper around bert_ref's weights that adds
token_type_embeddings[token_type_ids] (bert_ref's forward uses type 0 only,
so the wrapper has its own forward, built from bert_ref's layer_norm,
gelu_erf and pool). Before exporting, the wrapper is checked against
bert_ref's Embedder on the same inputs (type ids 0): max |diff| < 1e-5.
opset 14, the TorchScript exporter of Debian's torch (no onnx package
needed).

--check also runs the exported file in ONNX Runtime (node + onnxruntime-node
from third_party/npm, through bench/ort_embed.js --check) on a few padded
batches and requires cosine > 0.9999 with torch for every vector.
Exits 77 when torch is missing.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))

try:
    import numpy as np
    import torch
    import bert_ref  # exits 77 itself when torch or numpy is missing
except ImportError:  # pragma: no cover
    sys.stderr.write("minilm_onnx.py needs torch and numpy (Debian: python3-torch python3-numpy)\n")
    sys.exit(77)


class OnnxEncoder(torch.nn.Module):
    """(input_ids, attention_mask, token_type_ids) -> pooled, normalized vectors,
    on the weights of a bert_ref.BertModel."""

    def __init__(self, model, pooling="mean", normalize=True):
        super().__init__()
        self.model, self.pooling, self.normalize = model, pooling, normalize

    def forward(self, input_ids, attention_mask, token_type_ids):
        m = self.model
        cfg, w = m.cfg, m.w
        eps = cfg["layer_norm_eps"]
        H, E = cfg["num_attention_heads"], cfg["hidden_size"]
        d = E // H
        B, T = input_ids.shape[0], input_ids.shape[1]
        pos = torch.arange(T)
        x = (w("embeddings.word_embeddings.weight")[input_ids] + w("embeddings.position_embeddings.weight")[pos][None]
             + w("embeddings.token_type_embeddings.weight")[token_type_ids])
        x = bert_ref.layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
        mask = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * torch.finfo(x.dtype).min
        for l in range(cfg["num_hidden_layers"]):
            p = "encoder.layer.%d." % l

            def lin(t, n):
                return t @ w(p + n + ".weight").T + w(p + n + ".bias")

            def heads(t):
                return t.reshape(B, T, H, d).transpose(1, 2)

            q = heads(lin(x, "attention.self.query"))
            k = heads(lin(x, "attention.self.key"))
            v = heads(lin(x, "attention.self.value"))
            s = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
            a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, E)
            x = bert_ref.layer_norm(x + lin(a, "attention.output.dense"), w(p + "attention.output.LayerNorm.weight"),
                                    w(p + "attention.output.LayerNorm.bias"), eps)
            f = lin(bert_ref.gelu_erf(lin(x, "intermediate.dense")), "output.dense")
            x = bert_ref.layer_norm(x + f, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps)
        return bert_ref.pool(x, attention_mask, self.pooling, self.normalize)


def sample_batch(seed, batch, seq, vocab):
    """Token ids [CLS] w... [SEP] of varied lengths (<= seq), padded with 0."""
    g = np.random.default_rng(seed)
    ids = np.zeros((batch, seq), dtype=np.int64)
    mask = np.zeros((batch, seq), dtype=np.int64)
    for b in range(batch):
        n = seq if b == 0 else int(g.integers(3, seq + 1))
        ids[b, 0], ids[b, n - 1] = 101, 102
        ids[b, 1:n - 1] = g.integers(1000, vocab, size=n - 2)
        mask[b, :n] = 1
    return ids, mask


def main(argv):
    ap = argparse.ArgumentParser(description="export the MiniLM-shaped reference encoder to ONNX")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--check", action="store_true", help="compare ONNX Runtime with torch (needs node)")
    a = ap.parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    torch.manual_seed(0)

    model = bert_ref.make_model(a.seed)
    st_dir = os.path.join(a.out_dir, "st")
    bert_ref.save_sentence_transformers(model, st_dir)
    enc = OnnxEncoder(model).eval()

    # the wrapper computes what bert_ref's Embedder computes
    ids, mask = sample_batch(1, 4, 24, model.cfg["vocab_size"])
    ti, tm = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.no_grad():
        ours = enc(ti, tm, torch.zeros_like(ti))
        theirs = bert_ref.Embedder(model).eval()(ti, tm)
    diff = float((ours - theirs).abs().max())
    if diff > 1e-5:
        sys.stderr.write("minilm_onnx.py: wrapper differs from bert_ref.Embedder by %g\n" % diff)
        return 1

    onnx_path = os.path.join(a.out_dir, "minilm.onnx")
    with torch.no_grad():
        torch.onnx.export(enc, (ti, tm, torch.zeros_like(ti)), onnx_path,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["embeddings"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                        "attention_mask": {0: "batch", 1: "seq"},
                                        "token_type_ids": {0: "batch", 1: "seq"},
                                        "embeddings": {0: "batch"}},
                          opset_version=14, do_constant_folding=True)
    print("wrote %s and %s (seed %d; wrapper vs bert_ref max |diff| %.2g)" % (st_dir, onnx_path, a.seed, diff))

    if a.check:
        # a few batch shapes, padded; ORT's vectors against torch's
        worst = 1.0
        with tempfile.TemporaryDirectory() as tmp:
            for i, (batch, seq) in enumerate([(1, 7), (3, 33), (8, 128)]):
                ids, mask = sample_batch(10 + i, batch, seq, model.cfg["vocab_size"])
                with torch.no_grad():
                    ref = enc(torch.from_numpy(ids), torch.from_numpy(mask), torch.zeros_like(torch.from_numpy(ids)))
                ids_path = os.path.join(tmp, "ids.json")
                with open(ids_path, "w") as f:
                    json.dump({"ids": ids.tolist(), "mask": mask.tolist()}, f)
                out = subprocess.run(["node", os.path.join(HERE, "ort_embed.js"), "--model", onnx_path,
                                      "--check", ids_path, "--threads", "2"],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    sys.stderr.write(out.stderr)
                    return 1
                got = np.array(json.loads(out.stdout)["embeddings"], dtype=np.float64)
                r = ref.double().numpy()
                cos = (got * r).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(r, axis=1))
                worst = min(worst, float(cos.min()))
                print("  ORT vs torch, batch %d x %d tokens: min cosine %.8f" % (batch, seq, cos.min()))
        if worst <= 0.9999:
            sys.stderr.write("minilm_onnx.py: ONNX Runtime disagrees with torch (min cosine %.6f)\n" % worst)
            return 1
        print("ONNX Runtime matches torch: min cosine %.8f" % worst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
