// RSW time-lock puzzles (Cap's format 2): square `x` `t` times modulo `N`. JavaScript's BigInt
// does this at about the speed of native code (README: the measured ratios), so there is no
// wasm version: a visitor with or without WebAssembly pays the same.

/** Squarings between progress reports: a few milliseconds' work. */
const CHUNK = 2000;
const HEX = /^[0-9a-f]{1,512}$/i;

/** Whether a format-2 puzzle is an RSW puzzle this solver takes. */
export function isRswPuzzle(puzzle) {
  const payload = puzzle?.payload;
  return (
    puzzle?.protocol === "rsw" &&
    HEX.test(payload?.N) &&
    !/^0*1?$/.test(payload.N) &&
    HEX.test(payload?.x) &&
    Number.isSafeInteger(payload?.t) &&
    payload.t >= 0
  );
}

/**
 * `x^(2^t) mod N`, all hex, as Cap's widget answers it (lowercase, no leading zeros).
 * `onProgress(done)` hears the squarings done every few milliseconds.
 */
export function solveRsw({ N, x, t }, onProgress) {
  const modulus = BigInt(`0x${N}`);
  let y = BigInt(`0x${x}`) % modulus;
  for (let done = 0; done < t; ) {
    const end = Math.min(t, done + CHUNK);
    for (; done < end; done++) y = (y * y) % modulus;
    onProgress?.(done);
  }
  return y.toString(16);
}
