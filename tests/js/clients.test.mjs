// Real JavaScript rerank clients against a running gateway (GATEWAY_URL), changing only their base URL:
// the cohere-ai SDK (v1 and v2 clients, custom `environment`) and the Vercel AI SDK's rerank() with
// @ai-sdk/cohere (custom `baseURL`), success and error paths. Run by tests/compat/test_js_clients.py,
// whose gateway's default model ranks by query-word overlap ("capital", "france" -> documents 1 and 2).
import assert from "node:assert/strict";
import { test } from "node:test";

import { CohereClient, CohereClientV2, CohereError } from "cohere-ai";
import { APICallError, rerank } from "ai";
import { createCohere } from "@ai-sdk/cohere";

const H = process.env.GATEWAY_URL;
assert.ok(H, "GATEWAY_URL must point at a running gateway");
const DOCS = [
  "Bananas are yellow fruit.",
  "Paris is the capital of France.",
  "The capital city of France is Paris, on the Seine.",
  "France borders Spain.",
  "Berlin is the capital of Germany.",
];
const BEST = new Set([1, 2]);
const query = () => `capital of France ${Math.random().toString(16).slice(2, 10)}`; // a fresh cache key

function checkRanking(pairs, n) {
  assert.equal(pairs.length, n);
  const indices = pairs.map(([i]) => i);
  assert.equal(new Set(indices).size, n, `duplicate indices ${indices}`);
  const scores = pairs.map(([, s]) => s);
  assert.ok(scores.every((s) => s >= 0 && s <= 1), `scores outside [0, 1]: ${scores}`);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a), "scores must not increase down the list");
  assert.ok(BEST.has(indices[0]), `the best document is not first: ${indices}`);
}

test("cohere-ai v1 client (CohereClient) with a custom environment: POST /v1/rerank", async () => {
  const co = new CohereClient({ token: "any", environment: H });
  const r = await co.rerank({ model: "rerank-v3.5", query: query(), documents: DOCS, topN: 3 });
  checkRanking(r.results.map((x) => [x.index, x.relevanceScore]), 3);
  assert.equal(r.meta.billedUnits.searchUnits, 1);
});

test("cohere-ai v1 client with object documents and rankFields returns the documents", async () => {
  const co = new CohereClient({ token: "any", environment: H });
  const r = await co.rerank({
    model: "rerank-english-v3.0", query: query(), returnDocuments: true, rankFields: ["title", "text"],
    documents: DOCS.map((text, i) => ({ title: `doc ${i}`, text })),
  });
  checkRanking(r.results.map((x) => [x.index, x.relevanceScore]), DOCS.length);
  assert.equal(r.results[0].document.text, DOCS[r.results[0].index]);
});

test("cohere-ai v2 client (CohereClientV2) with a custom environment: POST /v2/rerank", async () => {
  const co = new CohereClientV2({ token: "any", environment: H });
  const r = await co.rerank({ model: "rerank-v3.5", query: query(), documents: DOCS, topN: 2 });
  checkRanking(r.results.map((x) => [x.index, x.relevanceScore]), 2);
  assert.ok(r.meta.tokens.inputTokens > 0);
});

test("cohere-ai: a 400 arrives as CohereError with the gateway's message", async () => {
  const co = new CohereClientV2({ token: "any", environment: H });
  await assert.rejects(co.rerank({ model: "rerank-v3.5", query: " ", documents: DOCS }, { maxRetries: 0 }),
    (err) => {
      assert.ok(err instanceof CohereError, `not a CohereError: ${err}`);
      assert.equal(err.statusCode, 400);
      assert.equal(err.body.message, "query must be a non-empty string");
      assert.equal(err.body.error.code, "empty_query");
      return true;
    });
});

test("cohere-ai: an unknown model is a 404 model_not_found", async () => {
  const co = new CohereClient({ token: "any", environment: H });
  await assert.rejects(co.rerank({ model: "no-such-model", query: query(), documents: DOCS }, { maxRetries: 0 }),
    (err) => err instanceof CohereError && err.statusCode === 404 && err.body.error.code === "model_not_found");
});

const cohere = createCohere({ apiKey: "any", baseURL: `${H}/v2` });

test("AI SDK rerank() with @ai-sdk/cohere and a custom baseURL: POST /v2/rerank", async () => {
  const result = await rerank({ model: cohere.reranking("rerank-v3.5"), query: query(), documents: DOCS, topN: 3 });
  checkRanking(result.ranking.map((x) => [x.originalIndex, x.score]), 3);
  assert.equal(result.rerankedDocuments[0], DOCS[result.ranking[0].originalIndex]);
});

test("AI SDK rerank() with object documents (sent as JSON strings)", async () => {
  const documents = DOCS.map((text, id) => ({ id, text }));
  const result = await rerank({ model: cohere.reranking("rerank-v3.5"), query: query(), documents });
  checkRanking(result.ranking.map((x) => [x.originalIndex, x.score]), DOCS.length);
  assert.deepEqual(result.rerankedDocuments[0], documents[result.ranking[0].originalIndex]);
});

test("AI SDK rerank(): a 400 is an APICallError carrying the gateway's message", async () => {
  await assert.rejects(
    rerank({ model: cohere.reranking("rerank-v3.5"), query: " ", documents: DOCS, maxRetries: 0 }),
    (err) => {
      const cause = APICallError.isInstance(err) ? err : err.lastError ?? err.cause;
      assert.ok(APICallError.isInstance(cause), `not an APICallError: ${err}`);
      assert.equal(cause.statusCode, 400);
      assert.match(cause.responseBody, /query must be a non-empty string/);
      assert.equal(cause.isRetryable, false);
      return true;
    });
});

test("AI SDK rerank(): too many documents is a 400 too_many_documents", async () => {
  const many = Array.from({ length: 101 }, (_, i) => `document ${i}`);
  await assert.rejects(rerank({ model: cohere.reranking("rerank-v3.5"), query: query(), documents: many, maxRetries: 0 }),
    (err) => APICallError.isInstance(err) && err.statusCode === 400 && /too_many_documents/.test(err.responseBody));
});
