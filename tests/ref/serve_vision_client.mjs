// serve_vision_client.mjs BASE_URL MODEL IMAGE_PATH PROMPT N NPM_DIR WANT_CHAT WANT_GENERATE
// Images through an orion server with the official npm clients, greedy
// (temperature 0), N new tokens at most: openai chat completions with an
// image_url data URL before the text (whole and streamed), ollama chat with
// "images" (whole and streamed) and ollama generate with "images" (a file
// path: the client reads and base64-encodes it). WANT_CHAT / WANT_GENERATE
// are files with the expected texts' bytes, decoded here as the clients
// decode replies (UTF-8, invalid bytes as U+FFFD: a tiny model's byte
// tokens need not form UTF-8). Prints one JSON object:
//   {openai_full, openai_stream, ollama_chat, ollama_chat_stream, ollama_generate,
//    want_chat, want_generate}
import { createRequire } from 'module';
import { readFileSync } from 'fs';
import { resolve } from 'path';

const [base, model, imagePath, prompt, nStr, npmDir, wantChat, wantGen] = process.argv.slice(2);
const n = parseInt(nStr, 10);
const require = createRequire(resolve(npmDir) + '/');
const OpenAI = require('openai');
const { Ollama } = require('ollama');
const out = {};
const dec = new TextDecoder('utf-8');
out.want_chat = dec.decode(readFileSync(wantChat));
out.want_generate = dec.decode(readFileSync(wantGen));
const b64 = readFileSync(imagePath).toString('base64');

const oa = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0 });
const messages = [{
  role: 'user',
  content: [
    { type: 'image_url', image_url: { url: 'data:image/png;base64,' + b64 } },
    { type: 'text', text: prompt },
  ],
}];
const full = await oa.chat.completions.create({ model, messages, max_tokens: n, temperature: 0 });
out.openai_full = full.choices[0].message.content;
const stream = await oa.chat.completions.create({ model, messages, max_tokens: n, temperature: 0, stream: true });
out.openai_stream = '';
for await (const chunk of stream) {
  const d = chunk.choices[0].delta;
  if (d && d.content) out.openai_stream += d.content;
}

const ol = new Ollama({ host: base });
const opts = { temperature: 0, num_predict: n };
const omsgs = [{ role: 'user', content: prompt, images: [b64] }];
const oc = await ol.chat({ model, messages: omsgs, options: opts, stream: false });
out.ollama_chat = oc.message.content;
out.ollama_chat_stream = '';
for await (const part of await ol.chat({ model, messages: omsgs, options: opts, stream: true })) {
  out.ollama_chat_stream += part.message.content;
}
const g = await ol.generate({ model, prompt, images: [imagePath], options: opts, stream: false });
out.ollama_generate = g.response;
process.stdout.write(JSON.stringify(out) + '\n');
