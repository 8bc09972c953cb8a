// bert_tokenize.mjs VOCAB_TXT NPM_DIR INPUT OUTPUT — the oracle of
// tests/test_wordpiece.c: transformers.js's BertTokenizer for an uncased
// vocabulary.
//
// Builds tokenizer.json + tokenizer_config.json in a temporary directory as
// Hugging Face's converter writes them for bert-base-uncased (BertNormalizer
// with clean_text, handle_chinese_chars, lowercase, strip_accents null;
// BertPreTokenizer; WordPiece with [UNK], "##", 100 characters a word; the
// five special tokens as added tokens; a [CLS] $A [SEP] template), loads it
// offline with AutoTokenizer.from_pretrained, and encodes every text of
// INPUT. INPUT holds one JSON string a line: the text's bytes in hex, so
// NULs, newlines and invalid UTF-8 survive; they are decoded with
// TextDecoder, as an application reading UTF-8 would. OUTPUT gets one line a
// text: its ids separated by spaces. Exits 2 when transformers.js is missing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { pathToFileURL } from 'url';

const [vocabPath, npmDir, inPath, outPath] = process.argv.slice(2);
if (!outPath) {
    console.error('usage: bert_tokenize.mjs VOCAB_TXT NPM_DIR INPUT OUTPUT');
    process.exit(1);
}
let transformers;
try {
    const entry = join(resolve(npmDir), '@huggingface/transformers/dist/transformers.node.mjs');
    transformers = await import(pathToFileURL(entry).href);
} catch (e) {
    console.error(`bert_tokenize.mjs: cannot load transformers.js from ${npmDir}: ${e.message}`);
    process.exit(2);
}
const { AutoTokenizer, env } = transformers;

const lines = readFileSync(vocabPath, 'utf8').split('\n');
if (lines.length && lines[lines.length - 1] === '') lines.pop();
const vocab = {};
lines.forEach((t, i) => { vocab[t.replace(/\r$/, '')] = i; }); // a later duplicate wins, as in HF
const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.filter((s) => s in vocab).map((s) => ({
        id: vocab[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
                 { SpecialToken: { id: '[SEP]', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
               { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
               { SpecialToken: { id: '[SEP]', type_id: 1 } }],
        special_tokens: {
            '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
            '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
        },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
};
const tokenizerConfig = {
    tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 512, clean_up_tokenization_spaces: true,
    cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]',
    strip_accents: null, tokenize_chinese_chars: true,
};

const dir = mkdtempSync(join(tmpdir(), 'orion_bert_tok_'));
try {
    mkdirSync(join(dir, 'bert'));
    writeFileSync(join(dir, 'bert', 'tokenizer.json'), JSON.stringify(tokenizerJson));
    writeFileSync(join(dir, 'bert', 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir + '/';
    const tok = await AutoTokenizer.from_pretrained('bert');
    const decoder = new TextDecoder('utf-8');
    const out = [];
    for (const line of readFileSync(inPath, 'utf8').split('\n')) {
        if (line === '') continue;
        const text = decoder.decode(Buffer.from(JSON.parse(line), 'hex'));
        out.push(tok.encode(text).join(' '));
    }
    writeFileSync(outPath, out.join('\n') + '\n');
} finally {
    rmSync(dir, { recursive: true, force: true });
}
