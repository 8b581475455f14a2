// The one way tests and benchmarks start Chromium: Debian's build (or CHROMIUM_PATH),
// headless, with everything that would reach the network on its own turned off.
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Launches headless Chromium; `args` are added to the defaults. */
export function launchChromium(args = []) {
  return chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...args] });
}
