// Answers the edge's environment check in Node, without a browser: the check's script runs
// against small stand-ins for the only browser APIs it uses (Blob, FileReaderSync and a 2D
// OffscreenCanvas). The workerd tests use it to redeem as our widget does; it also shows
// what the README says the check does not prove: that a browser ran it.

/** Solid rectangles painted in order; a pixel is the colour of the last one over it. */
class CanvasStandIn {
  constructor() {
    this.painted = [];
    this.fillStyle = "rgb(0,0,0)";
  }

  getContext() {
    return this;
  }

  fillRect(x, y, width, height) {
    const rgb = this.fillStyle.match(/^rgb\((\d+),(\d+),(\d+)\)$/).slice(1).map(Number);
    this.painted.push({ x, y, width, height, rgb });
  }

  getImageData(x, y) {
    const hit = this.painted.findLast((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);
    return { data: hit ? [...hit.rgb, 255] : [0, 0, 0, 0] };
  }
}

/** Runs a check script and returns its answer (8 hex digits); throws what the script reports. */
export function answerEnvironmentCheck(script) {
  let message;
  const self = {
    Blob: class {
      constructor(parts) {
        this.bytes = Buffer.concat(parts);
      }
    },
    FileReaderSync: class {
      readAsArrayBuffer(blob) {
        return new Uint8Array(blob.bytes).buffer;
      }
    },
    OffscreenCanvas: CanvasStandIn,
    postMessage(posted) {
      message = posted;
    },
  };
  new Function("self", script)(self);
  if (!message?.answer) throw new Error(`the check failed: ${message?.error}`);
  return message.answer;
}
