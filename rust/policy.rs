//! The scheduling policy, validated in Python (pydantic) and handed over once as plain data.

use std::collections::{BTreeMap, BTreeSet};

use crate::packer::Restate;
use crate::segment::Truncation;
use crate::trust::TrustPolicy;

/// A size: a number of tokens or a fraction of the usable budget (budget minus the output reserve).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// An absolute number of tokens.
    Tokens(usize),
    /// A fraction in [0, 1] of the usable budget, rounded down.
    Fraction(f64),
}

impl Amount {
    /// The size in tokens for a usable budget.
    pub fn resolve(self, usable: usize) -> usize {
        match self {
            Amount::Tokens(tokens) => tokens,
            // usable < 2^53 in practice; the float product is exact enough and clamped to usable.
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Amount::Fraction(fraction) => ((fraction.clamp(0.0, 1.0) * usable as f64).floor() as usize).min(usable),
        }
    }
}

/// A per-kind quota, like cgroups' memory.min / memory.max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Reserved for the kind while it has segments to fill it.
    pub min: Amount,
    /// Never exceeded by the kind.
    pub max: Option<Amount>,
}

/// Everything the allocator needs to know beyond the segments and the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Tokens kept free for the model's answer.
    pub reserve_output: usize,
    /// Per-kind quotas.
    pub quotas: BTreeMap<String, Quota>,
    /// Per-kind single-segment caps: a larger segment is cut (or evicted if it cannot be) before admission.
    pub segment_caps: BTreeMap<String, Amount>,
    /// Per-kind default priorities.
    pub priorities: BTreeMap<String, i64>,
    /// Priority of kinds not in `priorities`.
    pub default_priority: i64,
    /// Per-kind default truncation.
    pub truncation: BTreeMap<String, Truncation>,
    /// Kinds whose runs are reordered by relevance, most relevant at the edges.
    pub reorder: BTreeSet<String>,
    /// What `text()` puts between segments; counted in the budget.
    pub separator: String,
    /// What middle truncation puts where it cut; `{n}` becomes the number of tokens elided.
    pub elision_marker: String,
    /// Whether the segments are sent joined into one text by `separator` (so the render is counted again,
    /// as tokens can merge across a separator) or as separate messages (whose exact counts add up).
    pub joined: bool,
    /// Segments observed longer ago than this many seconds are stale: their priority is lowered by
    /// `stale_penalty`.
    pub max_age: Option<f64>,
    pub stale_penalty: i64,
    /// Whether a stale segment is sent with the date it was observed, "(as of 2026-03-02) ".
    pub as_of: bool,
    /// How untrusted segments are fenced, demoted and scanned.
    pub trust: TrustPolicy,
    /// Whether (and which) instruction is said again at the tail after a long body.
    pub restate: Option<Restate>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            reserve_output: 0,
            quotas: BTreeMap::new(),
            segment_caps: BTreeMap::new(),
            priorities: BTreeMap::new(),
            default_priority: 0,
            truncation: BTreeMap::new(),
            reorder: BTreeSet::new(),
            separator: "\n\n".to_owned(),
            elision_marker: crate::truncation::DEFAULT_MARKER.to_owned(),
            joined: true,
            max_age: None,
            stale_penalty: 0,
            as_of: false,
            trust: TrustPolicy::default(),
            restate: None,
        }
    }
}

impl Policy {
    /// The priority of a kind when a segment does not set one.
    pub fn priority_of(&self, kind: &str) -> i64 {
        self.priorities.get(kind).copied().unwrap_or(self.default_priority)
    }

    /// The truncation of a kind when a segment does not set one.
    pub fn truncation_of(&self, kind: &str) -> Truncation {
        self.truncation.get(kind).cloned().unwrap_or(Truncation::None)
    }
}
