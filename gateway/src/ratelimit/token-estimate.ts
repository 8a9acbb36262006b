/**
 * The token estimate a request reserves before it is forwarded:
 *
 *   ceil(body bytes / 4) + max_tokens
 *
 * - the prompt: about four bytes of UTF-8 a token, counted over the whole
 *   JSON body (every field upstream-ai renders into the prompt is in it:
 *   `input`, `context`, `messages`; the JSON punctuation makes it a slight
 *   over-estimate, which the settle corrects);
 * - the answer: `options.max_tokens` when it is an integer upstream-ai
 *   accepts (1–131 072), else AI_ENGINE_TOKEN_ESTIMATE_DEFAULT_MAX_TOKENS.
 * The same four-bytes rule estimates a stream cut short (usage.ts).
 */

/** Bytes of UTF-8 per token, for estimates. */
export const BYTES_PER_TOKEN = 4

/** The largest `options.max_tokens` upstream-ai accepts; a larger one is refused there, so it is not trusted here. */
const MAX_TOKENS_LIMIT = 131_072

/** Tokens of a text, estimated: ceil(UTF-8 bytes / 4). */
export function estimateTextTokens (bytes: number): number {
  return Math.ceil(bytes / BYTES_PER_TOKEN)
}

/** The request's `options.max_tokens` when usable, else `defaultMaxTokens`. */
export function requestedMaxTokens (json: Record<string, unknown>, defaultMaxTokens: number): number {
  const options = json.options
  const maxTokens = options !== null && typeof options === 'object' ? (options as Record<string, unknown>).max_tokens : undefined
  return typeof maxTokens === 'number' && Number.isInteger(maxTokens) && maxTokens >= 1 && maxTokens <= MAX_TOKENS_LIMIT
    ? maxTokens
    : defaultMaxTokens
}

/** The reservation for one request: its prompt estimate and its whole estimate (prompt + max_tokens). */
export function estimateTokens (body: { raw: Buffer; json: Record<string, unknown> }, defaultMaxTokens: number): { prompt: number; total: number } {
  const prompt = estimateTextTokens(body.raw.length)
  return { prompt, total: prompt + requestedMaxTokens(body.json, defaultMaxTokens) }
}
