// serve_client.mjs BASE_URL MODEL TEXTS_JSON NPM_DIR
// Talks to an orion server with the official npm clients, as an application
// would: `openai` (embeddings, default base64 and explicit float) and
// `ollama` (embed, ps, an unknown model). Prints one JSON object on stdout:
//   {openai_b64: [[...]], openai_float: [[...]], openai_model, openai_usage,
//    ollama: [[...]], ollama_model, ps: [names], models: [ids],
//    err_openai: status, err_ollama: status}
import { createRequire } from 'module';
import { resolve } from 'path';

const [base, model, textsJson, npmDir] = process.argv.slice(2);
const require = createRequire(resolve(npmDir) + '/');
const OpenAI = require('openai');
const { Ollama } = require('ollama');
const texts = JSON.parse(textsJson);

const out = {};
const oa = new OpenAI({ baseURL: base + '/v1', apiKey: process.env.ORION_API_KEY || 'unused', maxRetries: 0 });
const r1 = await oa.embeddings.create({ model, input: texts });
out.openai_b64 = r1.data.map((d) => Array.from(d.embedding));
out.openai_model = r1.model;
out.openai_usage = r1.usage;
const r2 = await oa.embeddings.create({ model, input: texts, encoding_format: 'float' });
out.openai_float = r2.data.map((d) => d.embedding);
const one = await oa.embeddings.create({ model, input: texts[0], encoding_format: 'float' });
out.openai_single = one.data[0].embedding;
const list = await oa.models.list();
out.models = list.data.map((m) => m.id);
try {
  await oa.embeddings.create({ model: 'no-such-model', input: 'x' });
  out.err_openai = 0;
} catch (e) {
  out.err_openai = e.status;
  out.err_openai_type = e.error && e.error.type;
}

const ol = new Ollama({ host: base });
const e1 = await ol.embed({ model, input: texts });
out.ollama = e1.embeddings;
out.ollama_model = e1.model;
const ps = await ol.ps();
out.ps = ps.models.map((m) => m.name);
try {
  await ol.embed({ model: 'no-such-model', input: 'x' });
  out.err_ollama = 0;
} catch (e) {
  out.err_ollama = e.status_code; // the body's error object is the issue's {"error":{"message","type"}} shape
}
process.stdout.write(JSON.stringify(out) + '\n');
