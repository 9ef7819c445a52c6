//! Keeping the start and the end of a text around an elision marker: the search `middle` and `lines` share.
//!
//! A candidate is `text[..head] + marker + text[tail..]`, the marker naming the tokens of `text[head..tail]`.
//! From a first guess, the longer side shrinks until the candidate fits (tokens can merge across the
//! marker), then each side grows by one step (a token, a line) while the longer candidate still fits. So the
//! result fits, and neither side could take its next step.

use std::cell::Cell;

use super::marker::{density, render, Elided, EXACT_LIMIT};
use crate::tokenizer::{SplitIndex, Tokenizer};

/// How a strategy's sides move: by tokens (`middle`) or by whole lines (`lines`). Heads are byte ends,
/// tails byte starts; `None` when a side cannot move that way. Longer sides move `by` steps (or as many
/// as there are, at least one).
pub(super) trait Steps {
    fn longer_head(&self, head: usize, by: usize) -> Option<usize>;
    fn shorter_head(&self, head: usize) -> Option<usize>;
    fn longer_tail(&self, head: usize, tail: usize, by: usize) -> Option<usize>;
    fn shorter_tail(&self, head: usize, tail: usize) -> Option<usize>;
}

/// One text being cut to a limit around a marker.
pub(super) struct Frame<'a> {
    pub(super) tokenizer: &'a Tokenizer,
    pub(super) text: &'a str,
    pub(super) max_tokens: usize,
    pub(super) marker: &'a str,
    /// Tokens per byte of the elided text, sampled once for the first region too long to count.
    pub(super) density: Cell<Option<f64>>,
    /// When the cut keeps much of the text: its split indexed once, so that each candidate is counted by
    /// reading only around its joins instead of in full.
    pub(super) index: Option<SplitIndex>,
}

/// A text at most this many bytes per token of the limit is indexed before cutting (the index costs one
/// pass over the text; a search step without it costs about one pass over what is kept).
const INDEX_BYTES_PER_TOKEN: usize = 16;

impl<'a> Frame<'a> {
    pub(super) fn new(tokenizer: &'a Tokenizer, text: &'a str, max_tokens: usize, marker: &'a str) -> Self {
        // Also indexed: a text whose elided part would be counted exactly (up to `EXACT_LIMIT` bytes) for
        // every candidate's marker; one pass instead of one per search step.
        let indexed = max_tokens.saturating_mul(INDEX_BYTES_PER_TOKEN).saturating_add(EXACT_LIMIT);
        let index = (text.len() <= indexed).then(|| SplitIndex::new(tokenizer, text));
        Self { tokenizer, text, max_tokens, marker, density: Cell::new(None), index }
    }

    /// Exact tokens of `text[start..end]`.
    pub(super) fn count_range(&self, start: usize, end: usize) -> usize {
        match &self.index {
            Some(index) => index.count_range(self.tokenizer, self.text, start, end),
            None => self.tokenizer.count(self.text.get(start..end).unwrap_or_default()),
        }
    }

    /// Tokens of the marker at its widest (the most digits any count for this text could need).
    pub(super) fn widest_marker(&self) -> usize {
        self.tokenizer.count(&render(self.marker, Elided::widest(self.text.len())))
    }

    /// The marker for eliding `text[head..tail]`.
    fn marker_for(&self, head: usize, tail: usize) -> String {
        let elided = self.text.get(head..tail).unwrap_or_default();
        let count = if elided.len() <= EXACT_LIMIT {
            Elided::Exact(self.count_range(head, tail))
        } else {
            let density = self.density.get().unwrap_or_else(|| density(self.tokenizer, elided));
            self.density.set(Some(density));
            Elided::estimated(density, elided.len())
        };
        render(self.marker, count)
    }

    fn fitting(&self, head: usize, tail: usize) -> Option<String> {
        // More kept bytes than the limit's tokens could ever hold: no need to build and count it.
        let kept = head + (self.text.len() - tail);
        if kept > self.max_tokens.saturating_mul(self.tokenizer.longest_token_bytes()) {
            return None;
        }
        let marker = self.marker_for(head, tail);
        let (start, end) = (self.text.get(..head).unwrap_or_default(), self.text.get(tail..).unwrap_or_default());
        if let Some(index) = &self.index {
            let tokens = index.count_joined(self.tokenizer, self.text, head, &marker, tail);
            return (tokens <= self.max_tokens).then(|| [start, &marker, end].concat());
        }
        let candidate = [start, &marker, end].concat();
        self.tokenizer.fits(&candidate, self.max_tokens).then_some(candidate)
    }

    /// The settled candidate from a first guess, with its final head and tail; `None` if not even the
    /// marker alone fits.
    pub(super) fn settle(
        &self,
        steps: &impl Steps,
        mut head: usize,
        mut tail: usize,
    ) -> Option<(String, usize, usize)> {
        let mut best = loop {
            if let Some(candidate) = self.fitting(head, tail) {
                break candidate;
            }
            let shrink_head = head >= self.text.len() - tail;
            let (first, second) = if shrink_head { (true, false) } else { (false, true) };
            let mut moved = false;
            for side in [first, second] {
                if side {
                    if let Some(shorter) = steps.shorter_head(head) {
                        head = shorter;
                        moved = true;
                        break;
                    }
                } else if let Some(shorter) = steps.shorter_tail(head, tail) {
                    tail = shorter;
                    moved = true;
                    break;
                }
            }
            if !moved {
                return None;
            }
        };
        // Grow each side, doubling the step while it fits (so a poor first guess costs log steps), until
        // neither side can take one more step.
        loop {
            let mut grew = false;
            let mut by = 1;
            loop {
                let longer = steps.longer_tail(head, tail, by).filter(|&longer| longer > head);
                match longer.and_then(|longer| Some((longer, self.fitting(head, longer)?))) {
                    Some((longer, candidate)) => (tail, best, grew, by) = (longer, candidate, true, by * 2),
                    None if by > 1 => by = 1,
                    None => break,
                }
            }
            by = 1;
            loop {
                let longer = steps.longer_head(head, by).filter(|&longer| longer < tail);
                match longer.and_then(|longer| Some((longer, self.fitting(longer, tail)?))) {
                    Some((longer, candidate)) => (head, best, grew, by) = (longer, candidate, true, by * 2),
                    None if by > 1 => by = 1,
                    None => break,
                }
            }
            if !grew {
                return Some((best, head, tail));
            }
        }
    }
}
