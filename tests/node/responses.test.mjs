// The official openai npm package's Responses API against Tollgate (run by
// tests/integration/test_responses_api.py via `node --test`, on a stack with these models).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.TOLLGATE_URL ?? 'http://127.0.0.1:8080/v1';
const client = new OpenAI({ baseURL, apiKey: 'sk-demo-active', maxRetries: 0 });

const upstreamName = { 'qai-flash': 'qai-flash', 'test-claude': 'claude-demo', 'test-gemini': 'gemini-demo' };

for (const [model, name] of Object.entries(upstreamName)) {
  test(`responses.create through ${model}`, async () => {
    const r = await client.responses.create({ model, input: 'Hello!', instructions: 'be brief' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.model, model);
    assert.equal(r.output_text, `Hello from ${name}! You said: Hello!`);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
    assert.ok(r.usage.output_tokens > 0);
  });
}

test('responses.create streamed, with a function tool', async () => {
  const stream = await client.responses.create({
    model: 'qai-flash',
    input: 'what is the weather in Paris',
    tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } }, strict: false }],
    stream: true,
  });
  let args = '';
  let final;
  for await (const ev of stream) {
    if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
    if (ev.type === 'response.completed') final = ev.response;
  }
  assert.deepEqual(JSON.parse(args), { location: 'Paris' });
  assert.equal(final.output[0].type, 'function_call');
  assert.equal(final.output[0].arguments, args);
});

test('previous_response_id is refused with a 400 naming it', async () => {
  await assert.rejects(
    client.responses.create({ model: 'qai-flash', input: 'x', previous_response_id: 'resp_1' }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, 'previous_response_id');
      return true;
    },
  );
});
