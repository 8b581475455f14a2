//! The environment check: a small script the edge generates for each challenge, obfuscated
//! at the preset's level, whose answer depends on running in a browser's worker.
//!
//! The script reads seeded bytes back through `FileReaderSync` (a browser-only worker API),
//! paints seeded rectangles on an `OffscreenCanvas`, reads pixels back at seeded points and
//! folds everything into a 32-bit answer. The edge never stores the answer: it derives the
//! scene again from the master secret and the challenge id at redeem time.
//!
//! What a right answer proves: the client ran this challenge's JavaScript, with something
//! that answers like a worker's `FileReaderSync` and 2D `OffscreenCanvas`, during the
//! challenge's lifetime; a client that only speaks HTTP cannot redeem. What it does not
//! prove: that a browser ran it (a JavaScript runtime with stand-ins for those two APIs
//! answers too), that a person is there (headless browsers pass), or that nobody reversed
//! the generator (obfuscation only raises the price, per challenge).
//! Colours come from a four-level palette and are read back rounded, so the small canvas
//! noise some browsers add against fingerprinting (Brave, Safari, Firefox's protections)
//! does not change the answer.

use std::fmt::Write as _;

use humanproof_protocol::{ChallengeClaims, MasterSecret, Obfuscation};

/// Channel levels of the palette: far enough apart that anti-fingerprinting noise of a
/// few units never moves a pixel to another level.
const LEVELS: [u8; 4] = [0, 85, 170, 255];
/// The fold's multiplier (odd, so every step is a bijection).
const FOLD: u32 = 0x9e37_79b1;

/// The per-challenge secret the scene grows from.
pub fn seed(master: &MasterSecret, challenge_id: &str) -> [u8; 32] {
    master.derive(&format!("humanproof/instrumentation/v1/{challenge_id}"))
}

/// The check a challenge token calls for, if any: the script sent with the challenge and
/// the answer expected at its redeem both come from here.
pub fn scene_for(master: &MasterSecret, challenge: &ChallengeClaims) -> Option<Scene> {
    let scene = Scene::new(seed(master, &challenge.jti), challenge.ins?);
    Some(if challenge.ins_without_canvas {
        scene.without_canvas()
    } else {
        scene
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Colour {
    /// Palette level (0–3) of red, green and blue.
    levels: [u8; 3],
}

impl Colour {
    fn css(self) -> String {
        let [r, g, b] = self.levels.map(|level| LEVELS[usize::from(level)]);
        format!("rgb({r},{g},{b})")
    }

    /// What the script folds in: the three levels as one number, 0–63.
    fn code(self) -> u32 {
        let [r, g, b] = self.levels.map(u32::from);
        (r << 4) | (g << 2) | b
    }
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    colour: Colour,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    x: u32,
    y: u32,
    salt: u32,
}

/// Everything one challenge's check is made of.
#[derive(Debug, Clone)]
pub struct Scene {
    seed: [u8; 32],
    level: Obfuscation,
    start: u32,
    bytes: Vec<u8>,
    size: u32,
    background: Colour,
    rects: Vec<Rect>,
    probes: Vec<Probe>,
    /// Whether the script paints and probes a canvas; see [`Scene::without_canvas`].
    canvas: bool,
}

/// splitmix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u32) -> u32 {
        (self.next() % u64::from(bound.max(1))) as u32
    }

    fn colour(&mut self) -> Colour {
        Colour {
            levels: [0; 3].map(|_: u8| self.below(4) as u8),
        }
    }
}

impl Scene {
    /// The scene for `seed` at `level`: heavier levels paint more and probe more.
    pub fn new(seed: [u8; 32], level: Obfuscation) -> Scene {
        let mut rng = Rng(u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")));
        let (size, rects, probes, bytes) = match level {
            Obfuscation::Lighter => (48, 6, 4, 8),
            Obfuscation::Default => (64, 10, 6, 12),
            Obfuscation::Stronger => (96, 16, 8, 16),
        };
        let start = rng.next() as u32;
        let bytes = (0..bytes).map(|_| rng.below(256) as u8).collect();
        let background = rng.colour();
        let rects = (0..rects)
            .map(|_| Rect {
                x: rng.below(size),
                y: rng.below(size),
                width: 1 + rng.below(size / 2),
                height: 1 + rng.below(size / 2),
                colour: rng.colour(),
            })
            .collect();
        let probes = (0..probes)
            .map(|_| Probe {
                x: rng.below(size),
                y: rng.below(size),
                salt: rng.below(1 << 16),
            })
            .collect();
        Scene {
            seed,
            level,
            start,
            bytes,
            size,
            background,
            rects,
            probes,
            canvas: true,
        }
    }

    /// The same scene for browsers whose workers have no `OffscreenCanvas` (Safari before
    /// 16.4): only the `FileReaderSync` half runs, so it proves less, and the start that
    /// asked for it is scored for that.
    pub fn without_canvas(self) -> Scene {
        Scene {
            canvas: false,
            ..self
        }
    }

    /// The answer a browser computes, as the script reports it (8 hex digits).
    pub fn answer(&self) -> String {
        let mut acc = self.start;
        for &byte in &self.bytes {
            acc = (acc ^ u32::from(byte)).wrapping_mul(FOLD);
        }
        for probe in self.probes.iter().filter(|_| self.canvas) {
            acc = (acc ^ (self.colour_at(probe.x, probe.y).code() + probe.salt)).wrapping_mul(FOLD);
        }
        format!("{acc:08x}")
    }

    /// The colour the canvas has at a pixel: the last rectangle painted over it.
    fn colour_at(&self, x: u32, y: u32) -> Colour {
        self.rects
            .iter()
            .rev()
            .find(|r| (r.x..r.x + r.width).contains(&x) && (r.y..r.y + r.height).contains(&y))
            .map_or(self.background, |r| r.colour)
    }

    /// The worker script. It posts `{answer}` or `{error}` and never touches the page: it
    /// runs in a dedicated worker started from a `blob:` URL, so no `eval` is needed.
    pub fn script(&self) -> String {
        let mut obfuscator = Obfuscator::new(self.seed, self.level);
        let names = [
            "FileReaderSync",
            "readAsArrayBuffer",
            "Blob",
            "OffscreenCanvas",
            "getContext",
            "2d",
            "fillStyle",
            "fillRect",
            "getImageData",
            "data",
            "postMessage",
        ];
        let [
            reader,
            read,
            blob,
            canvas,
            context,
            two_d,
            fill_style,
            fill_rect,
            image_data,
            data,
            post,
        ] = names.map(|name| obfuscator.string(name));
        let bytes = self
            .bytes
            .iter()
            .map(|&b| obfuscator.number(u32::from(b)))
            .collect::<Vec<_>>()
            .join(",");
        let rects = self
            .rects
            .iter()
            .map(|r| {
                let [x, y, w, h] = [r.x, r.y, r.width, r.height].map(|n| obfuscator.number(n));
                format!("[{x},{y},{w},{h},{}]", obfuscator.string(&r.colour.css()))
            })
            .collect::<Vec<_>>()
            .join(",");
        let probes = self
            .probes
            .iter()
            .map(|p| {
                format!(
                    "[{},{},{}]",
                    obfuscator.number(p.x),
                    obfuscator.number(p.y),
                    obfuscator.number(p.salt)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let (size, start, fold) = (
            obfuscator.number(self.size),
            obfuscator.number(self.start),
            obfuscator.number(FOLD),
        );
        let background = obfuscator.string(&self.background.css());
        let mut steps = vec![
            format!("a={start}>>>0;m={fold}|0;"),
            format!(
                "d=new Uint8Array(new self[{reader}]()[{read}](new self[{blob}]([new Uint8Array([{bytes}])])));"
            ),
            "for(const b of d)a=Math.imul(a^b,m)>>>0;".to_owned(),
        ];
        let canvas_steps = [
            format!(
                "c=new self[{canvas}]({size},{size})[{context}]({two_d});c[{fill_style}]={background};c[{fill_rect}](0,0,{size},{size});"
            ),
            format!(
                "for(const r of [{rects}]){{c[{fill_style}]=r[4];c[{fill_rect}](r[0],r[1],r[2],r[3]);}}"
            ),
            format!(
                "for(const p of [{probes}]){{const v=c[{image_data}](p[0],p[1],1,1)[{data}];\
                 a=Math.imul(a^(((Math.round(v[0]/85)<<4)|(Math.round(v[1]/85)<<2)|Math.round(v[2]/85))+p[2]),m)>>>0;}}"
            ),
        ];
        if self.canvas {
            steps.extend(canvas_steps);
        }
        let body = obfuscator.control_flow(&steps);
        format!(
            "\"use strict\";(()=>{{{table}let a,m,d,c;try{{{body}self[{post}]({{answer:a.toString(16).padStart(8,\"0\")}});}}\
             catch(e){{self[{post}]({{error:String(e&&e.message||e)}});}}}})();",
            table = obfuscator.table(),
        )
    }
}

/// Turns plain names and numbers into what each level sends.
struct Obfuscator {
    level: Obfuscation,
    rng: Rng,
    key: u32,
    strings: Vec<String>,
}

impl Obfuscator {
    fn new(seed: [u8; 32], level: Obfuscation) -> Self {
        let mut rng = Rng(u64::from_le_bytes(seed[8..16].try_into().expect("8 bytes")));
        let key = 1 + rng.below(250);
        Self {
            level,
            rng,
            key,
            strings: Vec::new(),
        }
    }

    /// A string expression: a literal (lighter) or an entry of the encoded table.
    fn string(&mut self, text: &str) -> String {
        if self.level == Obfuscation::Lighter {
            return format!("{text:?}");
        }
        let index = self
            .strings
            .iter()
            .position(|known| known == text)
            .unwrap_or_else(|| {
                self.strings.push(text.to_owned());
                self.strings.len() - 1
            });
        format!("t[{}]", self.number(index as u32))
    }

    /// A number expression: a literal (lighter) or an XOR of two seeded halves.
    fn number(&mut self, n: u32) -> String {
        if self.level == Obfuscation::Lighter {
            return n.to_string();
        }
        let mask = self.rng.next() as u32 & 0x7fff_ffff;
        format!("(0x{:x}^0x{:x})>>>0", n ^ mask, mask)
    }

    /// The decoder of the string table, seeded per challenge.
    fn table(&self) -> String {
        if self.strings.is_empty() {
            return String::new();
        }
        let mut encoded = String::new();
        for (i, text) in self.strings.iter().enumerate() {
            let codes: Vec<String> = text
                .chars()
                .map(|c| (u32::from(c) ^ self.key).to_string())
                .collect();
            let _ = write!(
                encoded,
                "{}[{}]",
                if i == 0 { "" } else { "," },
                codes.join(",")
            );
        }
        format!(
            "const t=[{encoded}].map(s=>String.fromCharCode(...s.map(n=>n^{})));",
            self.key
        )
    }

    /// The steps in order (lighter, default), or flattened into a dispatcher over seeded
    /// state numbers with unreachable decoy states (stronger).
    fn control_flow(&mut self, steps: &[String]) -> String {
        if self.level != Obfuscation::Stronger {
            return steps.concat();
        }
        let mut states: Vec<u32> = Vec::new();
        while states.len() < steps.len() * 2 + 1 {
            let state = self.rng.below(1 << 20);
            if !states.contains(&state) {
                states.push(state);
            }
        }
        let (real, rest) = states.split_at(steps.len());
        let (decoys, end) = (&rest[..steps.len()], rest[steps.len()]);
        let mut cases: Vec<String> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let next = real.get(i + 1).copied().unwrap_or(end);
                // n*(n+1) is even for every integer: the decoy branch never runs.
                format!("case {}:{step}if(((a&65535)*((a&65535)+1))%2===1){{s={};break;}}s={next};break;", real[i], decoys[i])
            })
            .collect();
        cases.extend(decoys.iter().map(|&decoy| {
            format!(
                "case {decoy}:a=Math.imul(a,{})>>>0;s={end};break;",
                self.rng.below(1 << 30) | 1
            )
        }));
        // Shuffle the cases so their order says nothing about the flow.
        for i in (1..cases.len()).rev() {
            cases.swap(i, self.rng.below(i as u32 + 1) as usize);
        }
        format!(
            "for(let s={};s!=={end};)switch(s){{{}}}",
            real[0],
            cases.concat()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterSecret {
        MasterSecret::new("instrumentation-test-master-secret-0123").unwrap()
    }

    #[test]
    fn the_answer_follows_the_last_rectangle_painted() {
        let colour = |r, g, b| Colour { levels: [r, g, b] };
        let scene = Scene {
            seed: [0; 32],
            level: Obfuscation::Lighter,
            start: 1,
            bytes: vec![7],
            size: 10,
            background: colour(0, 0, 0),
            rects: vec![
                Rect {
                    x: 0,
                    y: 0,
                    width: 5,
                    height: 5,
                    colour: colour(3, 0, 0),
                },
                Rect {
                    x: 2,
                    y: 2,
                    width: 5,
                    height: 5,
                    colour: colour(0, 3, 1),
                },
            ],
            probes: vec![
                Probe {
                    x: 1,
                    y: 1,
                    salt: 0,
                },
                Probe {
                    x: 3,
                    y: 3,
                    salt: 5,
                },
                Probe {
                    x: 9,
                    y: 9,
                    salt: 9,
                },
            ],
            canvas: true,
        };
        assert_eq!(
            [(1, 1), (3, 3), (9, 9)].map(|(x, y)| scene.colour_at(x, y).code()),
            [48, 13, 0]
        );
        let mut acc = (1u32 ^ 7).wrapping_mul(FOLD);
        for value in [48, 13 + 5, 9] {
            acc = (acc ^ value).wrapping_mul(FOLD);
        }
        assert_eq!(scene.answer(), format!("{acc:08x}"));
        assert_eq!(scene.colour_at(0, 0).css(), "rgb(255,0,0)");
    }

    #[test]
    fn without_a_canvas_only_the_reader_half_runs_and_counts() {
        let full = Scene::new(seed(&master(), "challenge-d"), Obfuscation::Lighter);
        let partial = full.clone().without_canvas();
        let mut acc = full.start;
        for &byte in &full.bytes {
            acc = (acc ^ u32::from(byte)).wrapping_mul(FOLD);
        }
        assert_eq!(partial.answer(), format!("{acc:08x}"));
        assert_ne!(partial.answer(), full.answer());
        let script = partial.script();
        assert!(
            script.contains("FileReaderSync") && !script.contains("OffscreenCanvas"),
            "{script}"
        );
    }

    #[test]
    fn a_token_names_its_scene() {
        let master = master();
        let mut claims: ChallengeClaims = serde_json::from_value(serde_json::json!({
            "sk": "hp_site_a", "jti": "challenge-e", "c": 1, "s": 32, "d": 1, "iat": 0, "exp": 1, "host": "example.com",
        }))
        .unwrap();
        assert!(scene_for(&master, &claims).is_none(), "no check was sent");
        claims.ins = Some(Obfuscation::Default);
        let full = Scene::new(seed(&master, "challenge-e"), Obfuscation::Default);
        assert_eq!(scene_for(&master, &claims).unwrap().answer(), full.answer());
        claims.ins_without_canvas = true;
        assert_eq!(
            scene_for(&master, &claims).unwrap().answer(),
            full.without_canvas().answer()
        );
    }

    #[test]
    fn scenes_are_per_challenge_and_reproducible() {
        let (a, b) = (
            seed(&master(), "challenge-a"),
            seed(&master(), "challenge-b"),
        );
        assert_eq!(
            Scene::new(a, Obfuscation::Default).answer(),
            Scene::new(a, Obfuscation::Default).answer()
        );
        assert_ne!(
            Scene::new(a, Obfuscation::Default).answer(),
            Scene::new(b, Obfuscation::Default).answer()
        );
        assert_eq!(
            Scene::new(a, Obfuscation::Stronger).script(),
            Scene::new(a, Obfuscation::Stronger).script()
        );
    }

    #[test]
    fn heavier_levels_hide_more() {
        let seed = seed(&master(), "challenge-c");
        let [lighter, default, stronger] =
            Obfuscation::ALL.map(|level| Scene::new(seed, level).script());
        assert!(lighter.contains("OffscreenCanvas") && lighter.contains("FileReaderSync"));
        for hidden in [&default, &stronger] {
            assert!(
                !hidden.contains("OffscreenCanvas") && !hidden.contains("getImageData"),
                "{hidden}"
            );
        }
        assert!(!default.contains("switch(s)") && stronger.contains("switch(s)"));
        assert!(lighter.len() < default.len() && default.len() < stronger.len());
        for script in [lighter, default, stronger] {
            assert!(
                !script.contains("eval") && !script.contains("Function("),
                "no eval-style construct"
            );
        }
    }
}
