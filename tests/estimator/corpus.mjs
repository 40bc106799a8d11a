// Counts the estimator corpus with a real tokenizer (OpenAI's o200k_base, from the
// gpt-tokenizer npm package) and writes core/tests/fixtures/estimator_corpus.json, which the
// native test `estimator_against_a_real_tokenizer` (core/tests/usage_records.rs) reads to
// measure the usage estimator's error. Run: node tests/estimator/corpus.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../node/package.json"));
const { encode } = require("gpt-tokenizer/encoding/o200k_base");

const texts = JSON.parse(readFileSync(path.join(here, "texts.json"), "utf8"));
const out = texts.map(({ kind, text }) => ({ kind, text, o200k_tokens: encode(text).length }));
const dest = path.join(here, "../../core/tests/fixtures/estimator_corpus.json");
writeFileSync(dest, JSON.stringify(out, null, 1) + "\n");
console.log(`wrote ${out.length} texts to ${dest}`);
