//! Placement: the task said again at the tail when a long body has pushed it into the middle, where models
//! read worst (Liu et al., 2023).
//!
//! The copy is a segment of its own, appended after the inputs (index `segments.len()`), pinned to the tail
//! and counted like any other; its decision says what it restates. When the budget cannot hold it beside
//! what must be kept, the pack is made without it and the source's decision says so: the option never makes
//! a pack fail.

use std::sync::Arc;

use super::Packer;
use crate::segment::{Pin, Segment, Truncation};
use crate::truncation::Strategy;

/// What the restated copy starts with, so the model reads it as a reminder and not as a new request.
pub const RESTATE_HEADER: &str = "(Restated from earlier in this conversation, as a reminder:)\n";

/// The kind of a restated copy.
pub const RESTATED_KIND: &str = "restatement";

/// What a copy's id adds to its source's.
const RESTATED_SUFFIX: &str = "#restated";

/// Which segment to restate, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restate {
    /// The segment to restate: the first of these ids found; when empty, the first segment of `kind`.
    pub ids: Vec<String>,
    /// The kind whose first segment is the task (`instruction`: in a conversation, the first user message).
    pub kind: String,
    /// Restate only when more than this many tokens come after the source.
    pub after_tokens: usize,
}

/// The source's index and the copy, if the policy asks for one and the body after the source is long.
pub(super) struct Restated {
    pub source: usize,
    pub segments: Vec<Segment>,
}

impl Packer {
    /// `segments` with the copy appended, when `restate` applies to them.
    pub(super) fn restated(&self, segments: &[Segment], restate: Option<&Restate>) -> Option<Restated> {
        let restate = restate?;
        self.tokenizer?;
        let source = if restate.ids.is_empty() {
            segments.iter().position(|segment| *segment.kind == *restate.kind)?
        } else {
            restate.ids.iter().find_map(|id| segments.iter().position(|segment| *segment.id == **id))?
        };
        let original = segments.get(source)?;
        // Untrusted text never goes to the tail; a tail pin is there already.
        if self.policy.trust.untrusted(original) || original.pin == Pin::Tail {
            return None;
        }
        let after = segments.get(source + 1..)?;
        // Reads no further than the threshold (and remembers what it read for the pack).
        if self.total_up_to(after, restate.after_tokens).is_some() {
            return None;
        }
        let mut copy = Segment::new(
            unique_id(segments, &original.id),
            RESTATED_KIND,
            Arc::<str>::from(format!("{RESTATE_HEADER}{}", original.text)),
        );
        copy.pin = Pin::Tail;
        copy.truncation = Some(Truncation::Cut(Strategy::Head));
        copy.overhead = original.overhead;
        copy.untrusted = Some(false);
        let mut extended = segments.to_vec();
        extended.push(copy);
        Some(Restated { source, segments: extended })
    }
}

/// The source's id with the suffix, and more of it until no input has that id.
fn unique_id(segments: &[Segment], id: &str) -> String {
    let mut candidate = format!("{id}{RESTATED_SUFFIX}");
    while segments.iter().any(|segment| *segment.id == *candidate) {
        candidate.push_str(RESTATED_SUFFIX);
    }
    candidate
}

impl super::Packed {
    /// The placed segments the packer appended after `inputs` inputs: each one's source and text as sent, in
    /// order.
    pub fn appended_texts(&self, inputs: usize) -> Vec<(usize, &str)> {
        self.order
            .iter()
            .filter_map(|&index| {
                let appended = self.appended.get(index.checked_sub(inputs)?)?;
                let text = match self.texts.get(index) {
                    Some(Some(cut)) => cut.as_str(),
                    _ => &*appended.segment.text,
                };
                Some((appended.source, text))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::tokenizer::{Encoding, Tokenizer};

    fn packer(after_tokens: usize) -> Packer {
        let restate = Restate { ids: Vec::new(), kind: "instruction".to_owned(), after_tokens };
        Packer::new(Some(Tokenizer::new(Encoding::O200kBase)), Policy { restate: Some(restate), ..Policy::default() })
    }

    fn conversation() -> Vec<Segment> {
        let mut segments = vec![Segment::new("task", "instruction", "Fix the parser.")];
        segments.extend((0..4).map(|turn| Segment::new(format!("h{turn}"), "history", "log line ".repeat(20))));
        segments
    }

    #[test]
    fn a_long_body_gets_the_task_again_at_the_tail() -> crate::error::Result<()> {
        let segments = conversation();
        let packed = packer(50).pack(&segments, 1_000, None)?;
        assert_eq!(packed.decisions.len(), segments.len() + 1);
        assert_eq!(packed.order.last(), Some(&segments.len()));
        assert_eq!(packed.appended_texts(segments.len()), [(0, &*format!("{RESTATE_HEADER}Fix the parser."))]);
        let everything =
            packed.render(&[segments, packed.appended.iter().map(|a| a.segment.clone()).collect()].concat(), "\n\n");
        assert_eq!(packed.tokens, Tokenizer::new(Encoding::O200kBase).count(&everything));
        Ok(())
    }

    #[test]
    fn a_short_body_does_not() -> crate::error::Result<()> {
        let segments = conversation();
        let packed = packer(10_000).pack(&segments, 1_000, None)?;
        assert_eq!(packed.decisions.len(), segments.len());
        assert!(packed.appended.is_empty());
        Ok(())
    }
}
