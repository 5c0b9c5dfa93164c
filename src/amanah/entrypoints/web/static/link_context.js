// Linking Messenger on the web and desktop (/link/messenger/context).
// Messenger opened this page in its webview (a URL button with messenger_extensions). Ask it who the
// user is: MessengerExtensions.getContext returns a signed_request that only the bank's server can
// verify (HMAC with the app secret). The server checks it; the customer then logs in and consents.
// Without the SDK (not configured, not inside Messenger, no JavaScript) the page says what to do instead.
(function () {
  "use strict";
  const card = document.getElementById("messenger-context");
  const form = document.getElementById("context-form");
  const field = document.getElementById("signed-request");
  const button = document.getElementById("context-continue");
  const waiting = document.getElementById("context-waiting");
  const unavailable = document.getElementById("context-unavailable");
  if (!card || !form || !field || !button) return;
  const appId = card.dataset.appId || "";
  const sdk = card.dataset.sdk || "";
  let settled = false;

  // On the desktop, Messenger's webview is a frame; the bank's sign-in pages refuse to be framed,
  // so the flow continues in a new tab (opened by the user's click).
  if (window.self !== window.top) form.target = "_blank";

  function unavailableHere() {
    if (settled) return;
    settled = true;
    if (waiting) waiting.hidden = true;
    if (unavailable) unavailable.hidden = false;
    button.disabled = true;
  }

  function ready(signedRequest) {
    if (settled) return;
    if (typeof signedRequest !== "string" || signedRequest.indexOf(".") < 1) {
      unavailableHere();
      return;
    }
    settled = true;
    field.value = signedRequest;
    if (waiting) waiting.hidden = true;
    button.disabled = false;
  }

  // Messenger's SDK calls window.extAsyncInit once it is loaded.
  window.extAsyncInit = function () {
    const ext = window.MessengerExtensions;
    if (!ext || typeof ext.getContext !== "function") {
      unavailableHere();
      return;
    }
    ext.getContext(
      appId,
      function (context) { ready(context && context.signed_request); },
      function () { unavailableHere(); }
    );
  };

  if (!appId || !sdk) {
    unavailableHere();
    return;
  }
  const script = document.createElement("script");
  script.src = sdk;
  script.async = true;
  script.onerror = unavailableHere;
  document.head.appendChild(script);
  window.setTimeout(unavailableHere, 15000);
})();
