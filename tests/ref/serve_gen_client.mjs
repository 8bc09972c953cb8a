// serve_gen_client.mjs BASE_URL MODEL PROMPT N NPM_DIR
// Generation through an orion server with the official npm clients, greedy
// (temperature 0) and N new tokens at most: openai completions, chat
// completions streamed (server-sent events) and not; ollama generate
// streamed (NDJSON) and not, and chat. Prints one JSON object:
//   {completion, chat_stream, chat_full, chat_chunks, chat_finish,
//    gen_stream, gen_full, gen_chunks, gen_done_reason, ollama_chat, usage}
import { createRequire } from 'module';
import { resolve } from 'path';

const [base, model, prompt, nStr, npmDir] = process.argv.slice(2);
const n = parseInt(nStr, 10);
const require = createRequire(resolve(npmDir) + '/');
const OpenAI = require('openai');
const { Ollama } = require('ollama');
const out = {};

const oa = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0 });
const c = await oa.completions.create({ model, prompt, max_tokens: n, temperature: 0 });
out.completion = c.choices[0].text;
out.usage = c.usage;
const messages = [{ role: 'user', content: prompt }];
const stream = await oa.chat.completions.create({ model, messages, max_tokens: n, temperature: 0, stream: true });
out.chat_stream = '';
out.chat_chunks = 0;
for await (const chunk of stream) {
  const ch = chunk.choices[0];
  if (ch.delta && ch.delta.content) out.chat_stream += ch.delta.content;
  if (ch.finish_reason) out.chat_finish = ch.finish_reason;
  out.chat_chunks++;
}
const full = await oa.chat.completions.create({ model, messages, max_tokens: n, temperature: 0 });
out.chat_full = full.choices[0].message.content;

const ol = new Ollama({ host: base });
const opts = { temperature: 0, num_predict: n };
out.gen_stream = '';
out.gen_chunks = 0;
for await (const part of await ol.generate({ model, prompt, options: opts, stream: true })) {
  out.gen_stream += part.response;
  out.gen_chunks++;
  if (part.done) out.gen_done_reason = part.done_reason;
}
const g = await ol.generate({ model, prompt, options: opts, stream: false });
out.gen_full = g.response;
const oc = await ol.chat({ model, messages, options: opts, stream: false });
out.ollama_chat = oc.message.content;
process.stdout.write(JSON.stringify(out) + '\n');
