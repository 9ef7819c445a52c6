//! The decision log: one decision per input segment, with the rule that caused it.

use std::fmt::Write as _;

/// Why a segment is in the packed prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Pinned to the head or the tail.
    PinnedHead,
    /// Pinned to the tail.
    PinnedTail,
    /// Marked required.
    Required,
    /// A member of a group that holds a pinned or required segment.
    MandatoryGroup(String),
    /// Admitted to meet its kind's quota minimum.
    QuotaMinimum {
        /// The kind.
        kind: String,
        /// Its resolved minimum.
        min: usize,
    },
    /// Admitted in priority order.
    Priority(i64),
    /// Admitted cut down to the room that was left, as the last unit.
    Partial(i64),
}

/// Why a segment is not in the packed prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Eviction {
    /// It did not fit in what was left after everything of higher priority.
    DoesNotFit {
        /// Tokens the unit needed (including separators).
        needed: usize,
        /// Tokens that were left.
        room: usize,
        /// Its priority.
        priority: i64,
        /// `needed` is a lower bound: the unit was counted only until it could not fit.
        at_least: bool,
    },
    /// Its kind's quota maximum would have been exceeded.
    QuotaMaximum {
        /// The kind.
        kind: String,
        /// Its resolved maximum.
        max: usize,
        /// Tokens the kind already had.
        used: usize,
    },
    /// Another member of its group could not be kept.
    GroupMember {
        /// The group.
        group: String,
        /// The member that caused it.
        because: String,
    },
    /// Above its kind's single-segment cap and not allowed to be truncated.
    AboveCap {
        /// The kind.
        kind: String,
        /// The resolved cap.
        cap: usize,
    },
    /// Evicted after rendering, when tokens merging across a separator pushed the prompt over budget.
    BoundaryRepair,
    /// Its cut to the planned size kept nothing (no character boundary within that many tokens).
    CutToNothing {
        /// The planned size.
        tokens: usize,
    },
    /// Past its `expires_at` at the time of the pack (seconds since the epoch).
    Expired {
        /// When it expired.
        expires_at: f64,
        /// The time of the pack.
        now: f64,
    },
    /// A segment with the same key and a higher version (or the same version, observed later) is current.
    Superseded {
        /// The key.
        key: String,
        /// The id of the current one.
        by: String,
    },
    /// Replaced, with the rest of its run, by a summary.
    Summarised {
        /// The summary's id.
        into: String,
        /// The summary's tokens as placed.
        tokens: usize,
        /// What made it: the hook's name, or the cut of the run's text that stood in for a failed hook.
        by: String,
    },
}

/// Why a kept segment was cut.
#[derive(Debug, Clone, PartialEq)]
pub enum Cut {
    /// Above its kind's single-segment cap (preemption).
    AboveCap {
        /// The kind.
        kind: String,
        /// The resolved cap.
        cap: usize,
    },
    /// The mandatory set did not fit whole.
    MandatoryOverBudget,
    /// Mandatory segments of its kind exceeded the kind's quota maximum.
    MandatoryOverQuota(String),
    /// Replaced by its stub, so that fewer whole units are evicted.
    Stubbed,
    /// Only part of it fitted (the last unit admitted).
    PartialFit,
}

/// What happened to one input segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The segment's position in the input.
    pub index: usize,
    /// Its tokens as given; a lower bound when `counted` is false.
    pub tokens_before: usize,
    /// Whether `tokens_before` is exact. Evicted segments are counted only as far as the decision needed.
    pub counted: bool,
    /// Its tokens as placed (0 when evicted).
    pub tokens_after: usize,
    /// Kept and why, or evicted and why.
    pub outcome: Result<Admission, Eviction>,
    /// Why it was cut, if it was.
    pub cut: Option<Cut>,
    /// The strategy (or hook) that cut it, if it was cut.
    pub strategy: Option<String>,
    /// Why the segment's own strategy was not the one used (or what `auto` tried first), if so.
    pub fallback: Option<String>,
    /// What trust did to it: a demoted pin, matched injection patterns, a quarantine.
    pub flags: Vec<String>,
    /// Whether it was packed as untrusted (fenced when sent, never in the head or the tail).
    pub untrusted: bool,
}

impl Decision {
    /// "kept", "truncated", "stubbed" or "evicted".
    pub fn action(&self) -> &'static str {
        match (&self.outcome, self.tokens_after < self.tokens_before) {
            (Err(_), _) => "evicted",
            (Ok(_), _) if self.cut == Some(Cut::Stubbed) => "stubbed",
            (Ok(_), true) => "truncated",
            (Ok(_), false) => "kept",
        }
    }

    /// A short machine-readable tag for the rule that decided it.
    pub fn rule(&self) -> &'static str {
        match &self.outcome {
            Ok(Admission::PinnedHead) => "pinned_head",
            Ok(Admission::PinnedTail) => "pinned_tail",
            Ok(Admission::Required) => "required",
            Ok(Admission::MandatoryGroup(_)) => "mandatory_group",
            Ok(Admission::QuotaMinimum { .. }) => "quota_min",
            Ok(Admission::Priority(_)) => "priority",
            Ok(Admission::Partial(_)) => "partial",
            Err(Eviction::DoesNotFit { .. }) => "does_not_fit",
            Err(Eviction::QuotaMaximum { .. }) => "quota_max",
            Err(Eviction::GroupMember { .. }) => "group_member",
            Err(Eviction::AboveCap { .. }) => "above_cap",
            Err(Eviction::BoundaryRepair) => "boundary_repair",
            Err(Eviction::CutToNothing { .. }) => "cut_to_nothing",
            Err(Eviction::Summarised { .. }) => "summarised",
            Err(Eviction::Expired { .. }) => "expired",
            Err(Eviction::Superseded { .. }) => "superseded",
        }
    }

    /// One human-readable sentence: the rule, and the cut if there was one.
    pub fn detail(&self) -> String {
        let mut text = match &self.outcome {
            Ok(Admission::PinnedHead) => "pinned to the head".to_owned(),
            Ok(Admission::PinnedTail) => "pinned to the tail".to_owned(),
            Ok(Admission::Required) => "required".to_owned(),
            Ok(Admission::MandatoryGroup(group)) => format!("in group {group:?} with a pinned or required segment"),
            Ok(Admission::QuotaMinimum { kind, min }) => format!("fills the {kind} quota minimum of {min}"),
            Ok(Admission::Priority(priority)) => format!("fits by priority {priority}"),
            Ok(Admission::Partial(priority)) => format!("priority {priority}, cut to the room that was left"),
            Err(Eviction::DoesNotFit { needed, room, priority, at_least }) => {
                let needed = if *at_least { format!("at least {needed}") } else { needed.to_string() };
                format!("does not fit: needs {needed}, {room} left after higher priorities (priority {priority})")
            }
            Err(Eviction::QuotaMaximum { kind, max, used }) => {
                format!("{kind} quota maximum of {max} reached ({used} used)")
            }
            Err(Eviction::GroupMember { group, because }) => format!("group {group:?} evicted with {because}"),
            Err(Eviction::AboveCap { kind, cap }) => {
                format!("above the {kind} cap of {cap} and not truncatable")
            }
            Err(Eviction::BoundaryRepair) => "evicted to repair a token merge across a separator".to_owned(),
            Err(Eviction::Summarised { into, tokens, by }) => {
                format!("summarised into {into} ({tokens} tokens) by {by}")
            }
            Err(Eviction::CutToNothing { tokens }) => {
                format!("cutting it to {tokens} tokens on a character boundary kept nothing")
            }
            Err(Eviction::Expired { expires_at, now }) => {
                format!("expired at {} (the pack's time is {})", moment(*expires_at), moment(*now))
            }
            Err(Eviction::Superseded { key, by }) => format!("superseded by {by}, a newer version of {key:?}"),
        };
        if let (Some(Cut::Stubbed), Ok(_)) = (&self.cut, &self.outcome) {
            let before =
                if self.counted { self.tokens_before.to_string() } else { format!("≥{}", self.tokens_before) };
            let _ = write!(
                text,
                "; stubbed {before} -> {} tokens: replaced by its stub so that fewer whole units are evicted",
                self.tokens_after
            );
        } else if let (Some(cut), Ok(_)) = (&self.cut, &self.outcome) {
            if self.tokens_after < self.tokens_before {
                let why = match cut {
                    Cut::AboveCap { kind, cap } => format!("above the {kind} cap of {cap}"),
                    Cut::MandatoryOverBudget => "the mandatory set did not fit whole".to_owned(),
                    Cut::MandatoryOverQuota(kind) => format!("mandatory {kind} segments exceeded its quota"),
                    Cut::PartialFit => "only part of it fitted".to_owned(),
                    Cut::Stubbed => "replaced by its stub".to_owned(),
                };
                let by = self.strategy.as_deref().map(|strategy| format!(" by {strategy}")).unwrap_or_default();
                let before =
                    if self.counted { self.tokens_before.to_string() } else { format!("≥{}", self.tokens_before) };
                let _ = write!(text, "; cut {before} -> {} tokens{by}: {why}", self.tokens_after);
                if let Some(fallback) = &self.fallback {
                    let _ = write!(text, " ({fallback})");
                }
            }
        }
        text
    }
}

/// A time (seconds since the epoch) as an RFC 3339 date in UTC, to the second.
pub(crate) fn moment(seconds: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let whole = seconds.floor() as i64;
    chrono::DateTime::from_timestamp(whole, 0)
        .map_or_else(|| format!("{seconds}s"), |time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}
