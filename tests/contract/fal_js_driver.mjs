// Drives fal's official JavaScript client (@fal-ai/client, unchanged) for the contract tests.
//
// One JSON command per line on stdin, one JSON answer per line on stdout:
//   {"op": "submit", "args": {...}}  ->  {"ok": <what the client returned>}
//                                    or  {"error": <the client's error, described>}
// The client's own URLs (https://queue.fal.run/...) are sent to the emulator by a
// request middleware, the documented way to put something in front of fal.
// Environment: EMULATOR_URL, FAL_KEY, and NODE_EXTRA_CA_CERTS to trust the emulator.

import { createInterface } from "node:readline";
import { ApiError, ValidationError, createFalClient } from "@fal-ai/client";

const ENDPOINT = "fal-ai/pika/v2.2/image-to-video";
const emulator = process.env.EMULATOR_URL.replace(/\/$/, "");
const toEmulator = async (request) => ({
  ...request,
  url: request.url.replace(/^https:\/\/queue\.fal\.run/, emulator),
});

// The client as a user gets it, and one whose retries are quick (for the error catalogue).
const fal = createFalClient({ credentials: process.env.FAL_KEY, requestMiddleware: toEmulator });
const quick = createFalClient({
  credentials: process.env.FAL_KEY,
  requestMiddleware: toEmulator,
  retry: { baseDelay: 1, maxDelay: 5, enableJitter: false },
});

function describeError(error) {
  return {
    name: error?.name ?? null,
    message: String(error?.message ?? error),
    isApiError: error instanceof ApiError,
    isValidationError: error instanceof ValidationError,
    status: error?.status ?? null,
    body: error?.body ?? null,
    requestId: error?.requestId ?? null,
    timeoutType: error?.timeoutType ?? null,
    isUserTimeout: error instanceof ApiError ? error.isUserTimeout : null,
    fieldErrors: error instanceof ValidationError ? error.fieldErrors : null,
  };
}

function summary(status) {
  return {
    status: status.status,
    queue_position: status.queue_position ?? null,
    logs: Array.isArray(status.logs) ? status.logs.length : null,
  };
}

const ops = {
  async submit({ input, startTimeout }) {
    return fal.queue.submit(ENDPOINT, { input, startTimeout });
  },

  async subscribe({ input, mode, logs }) {
    const updates = [];
    let enqueued = null;
    const options = {
      input,
      logs,
      onEnqueue: (requestId) => (enqueued = requestId),
      onQueueUpdate: (status) => updates.push(summary(status)),
    };
    if (mode === "streaming") options.mode = "streaming";
    else options.pollInterval = 100;
    const result = await fal.subscribe(ENDPOINT, options);
    return { enqueued, updates, data: result.data, requestId: result.requestId };
  },

  async status({ requestId, logs }) {
    return fal.queue.status(ENDPOINT, { requestId, logs });
  },

  async streamStatus({ requestId, logs }) {
    const stream = await fal.queue.streamStatus(ENDPOINT, { requestId, logs });
    const events = [];
    stream.on("data", (status) => events.push(summary(status)));
    const last = await stream.done();
    return { events, last: summary(last), requestId: stream.requestId };
  },

  async result({ requestId }) {
    return fal.queue.result(ENDPOINT, { requestId });
  },

  async cancel({ requestId, quickRetries }) {
    await (quickRetries ? quick : fal).queue.cancel(ENDPOINT, { requestId });
    return null;
  },
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { op, args } = JSON.parse(line);
  let answer;
  try {
    answer = { ok: (await ops[op](args ?? {})) ?? null };
  } catch (error) {
    answer = { error: describeError(error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
