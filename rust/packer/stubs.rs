//! Stubs: before whole units are evicted, the oldest segments that have a stub are replaced by it, as few
//! as give the fewest evictions that stubbing all of them would. Stubbing more never evicts more, so the
//! number is found by bisection over whole plans, which cost little once the memo knows the counts.
//!
//! A stub's `{n}` is the tokens of the text it replaces. While searching, each stub is planned with the
//! widest number its text could produce (tokens never outnumber bytes), so nothing is counted for stubs
//! that are not chosen. The chosen ones get their real number — exact when known or short, else estimated
//! from a few samples and written with a `~` — and the final plan is made with those.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::allocate::{Allocator, Plan};
use super::decision::Cut;
use super::sizes::read;
use super::{Packed, Packer};
use crate::error::Result;
use crate::segment::{content_hash, Segment, Truncation};
use crate::tokenizer::Tokenizer;
use crate::truncation::{render, sampled_density, Elided};

/// Texts up to this many bytes get an exact number in their stub; longer ones an estimate, so that stubbing
/// a long history does not tokenise all of it just to write numbers.
const EXACT_BYTES: usize = 512;
const SAMPLES: usize = 3;
const SAMPLE_BYTES: usize = 128;

/// The segments with the chosen stubs in their place, and the chosen ones' input indices with their sizes
/// before stubbing (tokens, whether exact).
pub(super) struct Stubbed {
    pub(super) segments: Vec<Segment>,
    pub(super) chosen: Vec<(usize, usize, bool)>,
}

fn evictions(plan: &Plan) -> usize {
    plan.outcome.iter().filter(|outcome| outcome.is_err()).count()
}

/// `segment` with `text` in its place, never cut (a stub is already as short as it gets).
fn replaced(segment: &Segment, text: String) -> Segment {
    let mut stub = segment.clone();
    stub.content_hash = content_hash(&text);
    stub.text = Arc::from(text);
    stub.truncation = Some(Truncation::None);
    stub.stub = None;
    stub
}

/// The number a stub states for `text`: its known exact count, an exact count if short, else an estimate.
fn stated(tokenizer: Tokenizer, text: &str, known: Option<usize>) -> Elided {
    match known {
        Some(tokens) => Elided::Exact(tokens),
        None if text.len() <= EXACT_BYTES => Elided::Exact(tokenizer.count(text)),
        None => Elided::estimated(sampled_density(&tokenizer, text, SAMPLES, SAMPLE_BYTES), text.len()),
    }
}

impl Packer {
    /// The stubs to use, if `plan` evicts whole units and stubbing saves some.
    pub(super) fn choose_stubs(
        &self,
        tokenizer: Tokenizer,
        base: &Allocator<'_>,
        plan: &Plan,
    ) -> Result<Option<Stubbed>> {
        let evicted = evictions(plan);
        if evicted == 0 {
            return Ok(None);
        }
        let segments = base.segments;
        // Optional segments whose stub is shorter than they are, oldest first, each planned at its widest.
        // Each with its size before stubbing, and whether that is exact (else a lower bound).
        let mut candidates: Vec<(usize, Segment, usize, bool)> = Vec::new();
        let mut widest_tokens: FxHashMap<(&str, usize), usize> = FxHashMap::default();
        for (index, segment) in segments.iter().enumerate() {
            let Some(template) = segment.stub.as_deref().filter(|_| !segment.is_mandatory()) else { continue };
            // The widest number of as many digits as the text has bytes (tokens never outnumber bytes).
            let digits = segment.text.len().checked_ilog10().unwrap_or(0) + 1;
            let widest = render(template, Elided::widest(10usize.saturating_pow(digits) - 1));
            let stub_tokens =
                *widest_tokens.entry((template, widest.len())).or_insert_with(|| tokenizer.count(&widest));
            let (mut tokens, mut exact) =
                (plan.sizes.before(index).saturating_sub(segment.overhead), plan.sizes.counted(index));
            if tokens <= stub_tokens {
                let count = read(tokenizer, &segment.text, stub_tokens, tokens);
                if count.tokens <= stub_tokens {
                    continue;
                }
                (tokens, exact) = (count.tokens, count.exact);
            }
            candidates.push((index, replaced(segment, widest), tokens.saturating_add(segment.overhead), exact));
        }
        let attempt = |count: usize| -> Result<usize> {
            let mut work = segments.to_vec();
            for (index, stub, _, _) in candidates.iter().take(count) {
                if let Some(slot) = work.get_mut(*index) {
                    slot.clone_from(stub);
                }
            }
            let known = self.remembered(&work);
            let plan = Allocator { segments: &work, known: &known, ..*base }.plan()?;
            self.remember(&work, plan.sizes.counted_now(&known, &work));
            Ok(evictions(&plan))
        };
        if candidates.is_empty() {
            return Ok(None);
        }
        let least = attempt(candidates.len())?;
        if least >= evicted {
            return Ok(None);
        }
        let (mut low, mut high) = (1, candidates.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if attempt(middle)? <= least {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        let mut work = segments.to_vec();
        let mut chosen = Vec::with_capacity(high);
        for &(index, _, before, counted) in candidates.iter().take(high) {
            let (Some(segment), Some(slot)) = (segments.get(index), work.get_mut(index)) else { continue };
            let Some(template) = segment.stub.as_deref() else { continue };
            let number = stated(tokenizer, &segment.text, counted.then(|| before.saturating_sub(segment.overhead)));
            let (before, counted) = match number {
                Elided::Exact(tokens) => (tokens.saturating_add(segment.overhead), true),
                Elided::About(_) => (before, counted),
            };
            *slot = replaced(segment, render(template, number));
            chosen.push((index, before, counted));
        }
        Ok(Some(Stubbed { segments: work, chosen }))
    }
}

impl Stubbed {
    /// Record the stubs in a realised pack: their text, their size before, and why.
    pub(super) fn mark(&self, packed: &mut Packed) {
        for &(index, before, counted) in &self.chosen {
            let Some(decision) = packed.decisions.get_mut(index) else { continue };
            decision.tokens_before = before;
            decision.counted = counted;
            if decision.outcome.is_err() {
                continue;
            }
            decision.cut = Some(Cut::Stubbed);
            decision.strategy = Some("stub".to_owned());
            if let (Some(slot), Some(stub)) = (packed.texts.get_mut(index), self.segments.get(index)) {
                *slot = Some(stub.text.to_string());
            }
        }
    }
}
