// OCP Metrics · calls to this server's API with the page's bearer token.
import { state } from './state.js';

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// Request headers: `Accept` and, once the user gave one, the bearer token.
export function authHeaders(accept) {
  const headers = { Accept: accept };
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  return headers;
}

// One JSON request; an unreachable server or a non-2xx answer throws an ApiError with the
// server's message.
export async function api(method, path, body) {
  const headers = authHeaders('application/json');
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'The server cannot be reached: ' + e.message);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    let msg = (data && data.message) || `HTTP ${res.status} ${res.statusText}`;
    if (res.status === 401) msg += ' — set a valid token in the header.';
    throw new ApiError(res.status, msg);
  }
  return data;
}
