// Passkeys in the dashboard: buttons with data-passkey="register|sign-in|second-factor"
// run a WebAuthn ceremony against the control plane. Binary fields travel as base64url,
// as webauthn-rs reads and writes them. `pageText` is dashboard.js's (loaded first).
const toBytes = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const toText = (buffer) =>
  btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    body: JSON.stringify(body ?? {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error?.message ?? pageText("passkey-failed"));
  return answer;
}

function credentialJson(credential) {
  const response = {};
  for (const field of ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"]) {
    if (credential.response[field]) response[field] = toText(credential.response[field]);
  }
  return {
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    response,
    extensions: credential.getClientExtensionResults(),
  };
}

async function register(name) {
  const { ceremony, options } = await post("/account/passkeys/register/start");
  const publicKey = options.publicKey;
  publicKey.challenge = toBytes(publicKey.challenge);
  publicKey.user.id = toBytes(publicKey.user.id);
  for (const excluded of publicKey.excludeCredentials ?? []) excluded.id = toBytes(excluded.id);
  const credential = await navigator.credentials.create({ publicKey });
  return post("/account/passkeys/register/finish", { ceremony, name, credential: credentialJson(credential) });
}

async function authenticate(prefix) {
  const { ceremony, options } = await post(`${prefix}/start`);
  const publicKey = options.publicKey;
  publicKey.challenge = toBytes(publicKey.challenge);
  for (const allowed of publicKey.allowCredentials ?? []) allowed.id = toBytes(allowed.id);
  const credential = await navigator.credentials.get({ publicKey });
  return post(`${prefix}/finish`, { ceremony, credential: credentialJson(credential) });
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-passkey]");
  if (!button) return;
  const status = document.getElementById("passkey-status");
  button.disabled = true;
  try {
    const action = button.dataset.passkey;
    const done =
      action === "register"
        ? await register(document.getElementById("passkey-name")?.value ?? "")
        : await authenticate(action === "sign-in" ? "/sign-in/passkey" : "/sign-in/second-factor/passkey");
    // Sign-in pages carry where the visitor was going (an invitation, say) in data-next.
    location.assign(button.dataset.next || done.redirect);
  } catch (error) {
    status.textContent = error.name === "NotAllowedError" ? pageText("passkey-cancelled") : error.message;
    button.disabled = false;
  }
});
