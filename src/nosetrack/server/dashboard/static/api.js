// Every request the page makes goes through apiFetch, so a server with API keys gets the key typed into the
// header's form (the webcam's WebSocket offers it as a subprotocol, see webcam.js). The key stays in this
// tab's sessionStorage; it is never put in the page or a URL.

import { byId as $ } from "./dom.js";

const STORAGE_KEY = "nosetrack-api-key";

export function apiKey() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export async function apiFetch(url, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(url, { ...options, headers });
  if (response.status === 401) $("api-key-form").hidden = false;
  return response;
}

export function startApiKeyForm() {
  const form = $("api-key-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(STORAGE_KEY, $("api-key").value.trim());
    $("api-key").value = "";
    form.hidden = true;
  });
}
