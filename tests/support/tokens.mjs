// HumanProof's token format re-implemented in JavaScript from the README's description:
// the workerd tests use it to mint tokens the edge must refuse (expired, forged), and it
// checks that the Rust format is what the documentation says.
import { createHmac } from "node:crypto";

const b64url = (buffer) => Buffer.from(buffer).toString("base64url");

export function projectKey(masterSecret, projectId, keyVersion) {
  return createHmac("sha256", masterSecret)
    .update(`humanproof/project-key/v1/${projectId}/${keyVersion}`)
    .digest();
}

export function sign(key, kind, claims) {
  const signed = `${kind}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${b64url(createHmac("sha256", key).update(signed).digest())}`;
}

export function peek(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
}

/** The signature header of a telemetry batch, as the edge's queue consumer sends it. */
export function signBatch(masterSecret, nowMs, body) {
  const key = createHmac("sha256", masterSecret).update("humanproof/telemetry/v1").digest();
  return `t=${nowMs},v1=${createHmac("sha256", key).update(`${nowMs}.`).update(body).digest("hex")}`;
}
