// The official openai npm package against Tollgate (run by tests/integration via `node --test`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.TOLLGATE_URL ?? 'http://127.0.0.1:8080/v1';
const client = (apiKey = 'sk-demo-active') => new OpenAI({ baseURL, apiKey, maxRetries: 0 });

test('lists models', async () => {
  const page = await client().models.list();
  const ids = page.data.map((m) => m.id);
  assert.ok(ids.includes('qai-flash'));
  assert.ok(ids.includes('qai-motion'));
});

test('completes a chat', async () => {
  const r = await client().chat.completions.create({
    model: 'qai-flash',
    messages: [{ role: 'user', content: 'Hello!' }],
  });
  assert.equal(r.choices[0].message.content, 'Hello from qai-flash! You said: Hello!');
  assert.equal(r.model, 'qai-flash');
  assert.ok(r.usage.total_tokens > 0);
});

test('streams a chat', async () => {
  const stream = await client().chat.completions.create({
    model: 'qai-pro',
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    stream: true,
  });
  let text = '';
  for await (const chunk of stream) {
    assert.ok(chunk.choices.length > 0, 'unexpected usage-only chunk');
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'Hello from qai-pro! You said: Tell me a story.');
});

test('wrong key raises AuthenticationError', async () => {
  await assert.rejects(client('sk-wrong').models.list(), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'unauthorized');
    return true;
  });
});

test('unknown model raises BadRequestError', async () => {
  await assert.rejects(
    client().chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.code, 'invalid_model');
      return true;
    },
  );
});

test('inactive account raises PermissionDeniedError', async () => {
  await assert.rejects(client('sk-demo-inactive').models.list(), (e) => {
    assert.ok(e instanceof OpenAI.PermissionDeniedError);
    assert.equal(e.code, 'forbidden');
    return true;
  });
});
