//! Where each placed segment sits in the prompt, and how much of what matters sits where models read best.
//!
//! Models read the start and the end of a long prompt better than its middle. The head region is the head
//! pins and the tail region the tail pins; everything else is the body. The placement score is the share of
//! the high-priority tokens (pinned and required segments, and any of priority at least `HIGH_PRIORITY`)
//! that sit in the head or the tail.

use std::fmt::Write as _;

use super::decision::Admission;
use super::Packed;

/// The least priority that counts as high for the score: the default priority of instructions.
pub const HIGH_PRIORITY: i64 = 90;

/// A prompt region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Head,
    Body,
    Tail,
}

impl Region {
    /// The name the Python API uses.
    pub fn name(self) -> &'static str {
        match self {
            Region::Head => "head",
            Region::Body => "body",
            Region::Tail => "tail",
        }
    }
}

/// One placed segment: its input index, the token offset where it starts (separators included), its
/// tokens, its region, and whether it is high-priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub index: usize,
    pub offset: usize,
    pub tokens: usize,
    pub region: Region,
    pub high: bool,
}

impl Packed {
    /// Each placed segment's place, in prompt order.
    pub fn placement(&self) -> Vec<Placement> {
        let mut offset = 0usize;
        let mut placed = Vec::with_capacity(self.order.len());
        for (position, &index) in self.order.iter().enumerate() {
            let Some(decision) = self.decisions.get(index) else { continue };
            let Ok(admission) = &decision.outcome else { continue };
            if position > 0 {
                offset = offset.saturating_add(self.separator_tokens);
            }
            let region = match admission {
                Admission::PinnedHead => Region::Head,
                Admission::PinnedTail => Region::Tail,
                _ => Region::Body,
            };
            let high = match admission {
                Admission::Priority(priority) | Admission::Partial(priority) => *priority >= HIGH_PRIORITY,
                Admission::QuotaMinimum { .. } => false,
                Admission::PinnedHead | Admission::PinnedTail | Admission::Required | Admission::MandatoryGroup(_) => {
                    true
                }
            };
            placed.push(Placement { index, offset, tokens: decision.tokens_after, region, high });
            offset = offset.saturating_add(decision.tokens_after);
        }
        placed
    }

    /// The share of high-priority tokens in the head or the tail; `None` when no high-priority token is placed.
    pub fn placement_score(&self) -> Option<f64> {
        let placed = self.placement();
        let high: usize = placed.iter().filter(|place| place.high).map(|place| place.tokens).sum();
        let at_edges: usize =
            placed.iter().filter(|place| place.high && place.region != Region::Body).map(|place| place.tokens).sum();
        #[allow(clippy::cast_precision_loss)]
        let score = (high > 0).then(|| at_edges as f64 / high as f64);
        score
    }

    /// One line for the decision log: the tokens in each region, and the score.
    pub(super) fn placement_line(&self) -> String {
        let placed = self.placement();
        let mut line = String::from("placement:");
        for region in [Region::Head, Region::Body, Region::Tail] {
            let tokens: usize = placed.iter().filter(|place| place.region == region).map(|place| place.tokens).sum();
            let _ = write!(line, " {} {tokens},", region.name());
        }
        line.pop();
        match self.placement_score() {
            Some(score) => {
                let _ = write!(line, "; {:.0}% of high-priority tokens in the head or tail", score * 100.0);
            }
            None => line.push_str("; no high-priority tokens"),
        }
        line
    }
}
