//! Protection presets: how much work a client pays, how many challenges one visitor may start,
//! how heavily the environment check is obfuscated, and at what risk score enforce mode blocks.
//!
//! Relaxed, Balanced and Strict are fixed bundles; Custom carries the project's own numbers.
//! The whole preset travels in the snapshot, so the edge applies it without asking the origin.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::pow::{ChallengeParams, SALT_LEN};
use crate::rsw::SQUARINGS_RANGE;

/// Bounds a Custom difficulty stays within: below 1 there is no work, above 8 hex digits a
/// sub-challenge takes 4 billion hashes on average.
pub const DIFFICULTY_RANGE: std::ops::RangeInclusive<u32> = 1..=8;
/// More than 500 sub-challenges only inflates the redeem body.
pub const COUNT_RANGE: std::ops::RangeInclusive<u32> = 1..=500;
/// A project's hard rate limit: challenge starts one hashed IP (an IPv6 /64) may make per
/// [`RATE_WINDOW_MS`], sustained. Below 1 the project serves nobody; above 10,000 (83 a
/// second) it no longer limits anything.
pub const RATE_LIMIT_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
/// The period the rate limit is stated in.
pub const RATE_WINDOW_MS: i64 = 2 * 60 * 1000;
/// A block threshold under 1.0 would block clean traffic, whose score is 0.
pub const BLOCK_THRESHOLD_RANGE: std::ops::RangeInclusive<Score> =
    Score::from_tenths(10)..=Score::MAX;

/// A project's protection preset. Serialized with its `name` as the tag; a Custom preset's
/// numbers sit beside it (`{"name":"custom","difficulty":4,...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Preset {
    /// Light work, a generous rate limit, blocks only at 8.0.
    Relaxed,
    /// The default.
    Balanced,
    /// More work, a tight rate limit, blocks from 4.0.
    Strict,
    /// The project's own numbers.
    Custom(Protection),
}

/// Everything a preset decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Target prefix length in hex digits, within [`DIFFICULTY_RANGE`].
    pub difficulty: u32,
    /// Sub-challenges per challenge, within [`COUNT_RANGE`].
    pub challenge_count: u32,
    /// How heavily the environment check is obfuscated. Custom presets published before
    /// this field existed take Balanced's value, as do the two fields after it.
    #[serde(default = "Protection::balanced_obfuscation")]
    pub obfuscation: Obfuscation,
    /// The hard rate limit: challenge starts per hashed IP and [`RATE_WINDOW_MS`], sustained,
    /// within [`RATE_LIMIT_RANGE`] ([`Protection::start_limits`]).
    #[serde(default = "Protection::balanced_rate_limit")]
    pub rate_limit: u32,
    /// In enforce mode, a start whose risk score reaches this is blocked.
    #[serde(default = "Protection::balanced_block_threshold")]
    pub block_threshold: Score,
    /// The kind of work a challenge asks for. Only Custom presets choose; the named presets
    /// ask for SHA-256, which every Cap client solves.
    #[serde(default)]
    pub puzzle: PuzzleKind,
    /// Squarings of an RSW puzzle, within [`SQUARINGS_RANGE`]; read when `puzzle` is RSW.
    #[serde(default = "Protection::balanced_squarings")]
    pub squarings: u32,
}

/// The two start-rate limits of a project ([`Protection::start_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartLimits {
    /// Above it, starts are priced.
    pub soft: Bucket,
    /// Above it, starts are refused.
    pub hard: Bucket,
}

/// A token bucket: `burst` starts at once, refilled at `per_window` starts per
/// [`RATE_WINDOW_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Starts that may come at once.
    pub burst: u32,
    /// Starts per [`RATE_WINDOW_MS`], sustained.
    pub per_window: u32,
}

/// The kind of work a challenge asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PuzzleKind {
    /// Cap's SHA-256 proof of work: `challenge_count` searches at `difficulty`.
    #[default]
    Sha256,
    /// An RSW time-lock puzzle in Cap's format 2: `squarings` modular squarings in a row,
    /// which a GPU cannot spread over its cores ([`crate::rsw`]).
    Rsw,
}

impl PuzzleKind {
    /// Every kind.
    pub const ALL: [PuzzleKind; 2] = [PuzzleKind::Sha256, PuzzleKind::Rsw];

    /// The lowercase name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            PuzzleKind::Sha256 => "sha256",
            PuzzleKind::Rsw => "rsw",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<PuzzleKind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl Protection {
    /// Relaxed's bundle.
    pub const RELAXED: Protection = Protection {
        difficulty: 3,
        challenge_count: 60,
        obfuscation: Obfuscation::Lighter,
        rate_limit: 960,
        block_threshold: Score::from_tenths(80),
        puzzle: PuzzleKind::Sha256,
        squarings: 50_000,
    };
    /// Balanced's bundle.
    pub const BALANCED: Protection = Protection {
        difficulty: 4,
        challenge_count: 80,
        obfuscation: Obfuscation::Default,
        rate_limit: 480,
        block_threshold: Score::from_tenths(60),
        puzzle: PuzzleKind::Sha256,
        squarings: 100_000,
    };
    /// Strict's bundle.
    pub const STRICT: Protection = Protection {
        difficulty: 5,
        challenge_count: 120,
        obfuscation: Obfuscation::Stronger,
        rate_limit: 240,
        block_threshold: Score::from_tenths(40),
        puzzle: PuzzleKind::Sha256,
        squarings: 250_000,
    };

    fn balanced_obfuscation() -> Obfuscation {
        Self::BALANCED.obfuscation
    }

    fn balanced_rate_limit() -> u32 {
        Self::BALANCED.rate_limit
    }

    fn balanced_block_threshold() -> Score {
        Self::BALANCED.block_threshold
    }

    fn balanced_squarings() -> u32 {
        Self::BALANCED.squarings
    }

    /// The same numbers pulled into their ranges: the control plane refuses values outside
    /// them, and this keeps a hand-edited KV entry from asking the edge for the impossible.
    pub fn clamped(self) -> Protection {
        let clamp = |value: u32, range: std::ops::RangeInclusive<u32>| {
            value.clamp(*range.start(), *range.end())
        };
        Protection {
            difficulty: clamp(self.difficulty, DIFFICULTY_RANGE),
            challenge_count: clamp(self.challenge_count, COUNT_RANGE),
            obfuscation: self.obfuscation,
            rate_limit: clamp(self.rate_limit, RATE_LIMIT_RANGE),
            block_threshold: self.block_threshold.max(*BLOCK_THRESHOLD_RANGE.start()),
            puzzle: self.puzzle,
            squarings: clamp(self.squarings, SQUARINGS_RANGE),
        }
    }

    /// How fast one network may start challenges, as two token buckets (the README's
    /// *Rate limits* gives the reasoning and the simulation behind the defaults):
    /// - hard: [`Protection::rate_limit`] per [`RATE_WINDOW_MS`], in bursts of a quarter of
    ///   that (at least 4, or all of it when it is smaller). Past it, starts are refused.
    /// - soft: half the hard one. Past it, starts are allowed but scored `high_request_rate`,
    ///   so they pay more work: many people may share one address.
    pub fn start_limits(&self) -> StartLimits {
        let per_window = self.rate_limit.max(1);
        let hard = Bucket {
            burst: (per_window / 4).max(per_window.min(4)),
            per_window,
        };
        let soft = Bucket {
            burst: (hard.burst / 2).max(1),
            per_window: (per_window / 2).max(1),
        };
        StartLimits { soft, hard }
    }

    /// The challenge a client must solve.
    pub fn params(&self) -> ChallengeParams {
        ChallengeParams {
            c: self.challenge_count,
            s: SALT_LEN,
            d: self.difficulty,
        }
    }
}

impl Preset {
    /// What the preset decides, within the documented ranges.
    pub fn protection(self) -> Protection {
        match self {
            Preset::Relaxed => Protection::RELAXED,
            Preset::Balanced => Protection::BALANCED,
            Preset::Strict => Protection::STRICT,
            Preset::Custom(custom) => custom.clamped(),
        }
    }

    /// The challenge a client must solve under this preset.
    pub fn params(self) -> ChallengeParams {
        self.protection().params()
    }

    /// The lowercase preset name stored in the database and shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Relaxed => "relaxed",
            Preset::Balanced => "balanced",
            Preset::Strict => "strict",
            Preset::Custom(_) => "custom",
        }
    }
}

/// How heavily the edge obfuscates the environment check it sends with a challenge: heavier
/// costs a scripted solver more to reverse and a real browser a little more to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Obfuscation {
    /// Least work for browsers.
    Lighter,
    /// The middle ground.
    Default,
    /// Most work to reverse.
    Stronger,
}

impl Obfuscation {
    /// Every level, lightest first.
    pub const ALL: [Obfuscation; 3] = [
        Obfuscation::Lighter,
        Obfuscation::Default,
        Obfuscation::Stronger,
    ];

    /// The lowercase name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Obfuscation::Lighter => "lighter",
            Obfuscation::Default => "default",
            Obfuscation::Stronger => "stronger",
        }
    }

    /// The level with this name.
    pub fn from_name(name: &str) -> Option<Obfuscation> {
        Self::ALL.into_iter().find(|level| level.name() == name)
    }
}

/// A risk score from 0.0 to 10.0 in steps of a tenth. Kept in tenths so scores compare and
/// hash exactly; on the wire it is a plain number (`6.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Score(u8);

impl Score {
    /// The highest score.
    pub const MAX: Score = Score(100);

    /// The score of `tenths` tenths, capped at [`Score::MAX`].
    pub const fn from_tenths(tenths: u8) -> Score {
        Score(if tenths > 100 { 100 } else { tenths })
    }

    /// The score in tenths, 0 to 100.
    pub fn tenths(self) -> u8 {
        self.0
    }

    /// Reads a decimal number such as `6` or `6.5`, rounded to a tenth; `None` outside 0–10.
    pub fn from_decimal(value: f64) -> Option<Score> {
        let tenths = (value * 10.0).round();
        (value.is_finite() && (0.0..=100.0).contains(&tenths)).then_some(Score(tenths as u8))
    }

    /// The score as a decimal number.
    pub fn as_decimal(self) -> f64 {
        f64::from(self.0) / 10.0
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_decimal())
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Score::from_decimal(value)
            .ok_or_else(|| serde::de::Error::custom("a score is a number from 0 to 10"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_bundles() {
        assert_eq!(
            Preset::Relaxed.params(),
            ChallengeParams { c: 60, s: 32, d: 3 }
        );
        assert_eq!(
            Preset::Balanced.params(),
            ChallengeParams { c: 80, s: 32, d: 4 }
        );
        assert_eq!(
            Preset::Strict.params(),
            ChallengeParams {
                c: 120,
                s: 32,
                d: 5
            }
        );
        let thresholds: Vec<String> = [Preset::Relaxed, Preset::Balanced, Preset::Strict]
            .map(|p| p.protection().block_threshold.to_string())
            .into();
        assert_eq!(thresholds, ["8.0", "6.0", "4.0"]);
        // Stricter presets allow fewer starts and obfuscate more.
        let bundles = [
            Protection::RELAXED,
            Protection::BALANCED,
            Protection::STRICT,
        ];
        assert_eq!(bundles.map(|p| p.rate_limit), [960, 480, 240]);
        let balanced = Protection::BALANCED.start_limits();
        assert_eq!(
            (
                balanced.hard.burst,
                balanced.soft.burst,
                balanced.soft.per_window
            ),
            (120, 60, 240)
        );
        // A tight Custom limit is a plain count: all of it at once, as before buckets.
        let tight = |rate_limit| {
            Protection {
                rate_limit,
                ..Protection::BALANCED
            }
            .start_limits()
        };
        assert_eq!((tight(3).hard.burst, tight(3).soft.burst), (3, 1));
        assert_eq!((tight(1).hard.burst, tight(1).soft.per_window), (1, 1));
        assert_eq!(bundles.map(|p| p.obfuscation), Obfuscation::ALL);
    }

    #[test]
    fn custom_numbers_are_pulled_into_range() {
        let wild = Preset::Custom(Protection {
            difficulty: 40,
            challenge_count: 0,
            obfuscation: Obfuscation::Lighter,
            rate_limit: 0,
            block_threshold: Score::from_tenths(2),
            puzzle: PuzzleKind::Rsw,
            squarings: 1,
        });
        let protection = wild.protection();
        assert_eq!(wild.params(), ChallengeParams { c: 1, s: 32, d: 8 });
        assert_eq!(protection.rate_limit, 1);
        assert_eq!(protection.block_threshold, Score::from_tenths(10));
        assert_eq!(protection.squarings, 10_000);
    }

    #[test]
    fn presets_keep_their_wire_shape() {
        let custom = Preset::Custom(Protection {
            difficulty: 2,
            block_threshold: Score::from_tenths(65),
            ..Protection::STRICT
        });
        let json = serde_json::to_value(custom).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "custom", "difficulty": 2, "challenge_count": 120,
                "obfuscation": "stronger", "rate_limit": 240, "block_threshold": 6.5,
                "puzzle": "sha256", "squarings": 250000})
        );
        assert_eq!(serde_json::from_value::<Preset>(json).unwrap(), custom);
        assert_eq!(
            serde_json::to_value(Preset::Balanced).unwrap(),
            serde_json::json!({"name": "balanced"})
        );
    }

    #[test]
    fn custom_presets_published_before_the_risk_fields_read_as_balanced() {
        let old = serde_json::json!({"name": "custom", "difficulty": 2, "challenge_count": 5});
        let Preset::Custom(protection) = serde_json::from_value(old).unwrap() else {
            panic!("custom")
        };
        assert_eq!(
            protection,
            Protection {
                difficulty: 2,
                challenge_count: 5,
                ..Protection::BALANCED
            }
        );
    }

    #[test]
    fn scores_read_and_print_in_tenths() {
        assert_eq!(Score::from_decimal(6.0), Some(Score::from_tenths(60)));
        assert_eq!(Score::from_decimal(4.25), Some(Score::from_tenths(43)));
        assert_eq!(
            Score::from_decimal(10.0).map(|s| s.to_string()).as_deref(),
            Some("10.0")
        );
        for bad in [-0.1, 10.06, f64::NAN, f64::INFINITY] {
            assert_eq!(Score::from_decimal(bad), None, "{bad}");
        }
        assert!(serde_json::from_str::<Score>("11").is_err());
        assert_eq!(
            serde_json::to_string(&Score::from_tenths(45)).unwrap(),
            "4.5"
        );
    }
}
