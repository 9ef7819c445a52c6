//! Stubs: before whole units are evicted, the oldest segments that have a stub are replaced by it, as few
//! as give the fewest evictions that stubbing all of them would. Stubbing more never evicts more, so the
//! number is found by bisection over whole plans, which cost little once the memo knows the counts.
//!
//! A stub's `{n}` is the tokens of the text it replaces. While searching, each stub is planned with the
//! widest number its text could produce (tokens never outnumber bytes), so nothing is counted for stubs
//! that are not chosen. The chosen ones get their real number — exact when known or short, else estimated
//! from a few samples and written with a `~` — and the final plan is made with those.

use std::sync::{Arc, PoisonError};

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::allocate::{Allocator, Plan};
use super::cuts::Cuts;
use super::decision::{Admission, Cut};
use super::sizes::{read, Known};
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
/// Stubs whose numbers one parallel task works out (below this, a task costs more than it saves).
const STATED_PER_TASK: usize = 8;

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

/// The number a stub states for `text`: an exact count if short, else an estimate from sampled density (no
/// wider than the number the stub was planned with). It depends on the text alone, never on what the
/// count memo happens to know, so the same conversation is sent as the same bytes by every process
/// (`exact`, the memo's exact count when it has one, is the same number a count would give).
fn stated(tokenizer: Tokenizer, text: &str, exact: Option<usize>, density: impl FnOnce() -> f64) -> Elided {
    if text.len() <= EXACT_BYTES {
        return Elided::Exact(exact.unwrap_or_else(|| tokenizer.count(text)));
    }
    let widest = 10usize.saturating_pow(text.len().checked_ilog10().unwrap_or(0) + 1) - 1;
    match Elided::estimated(density(), text.len()) {
        Elided::About(number) => Elided::About(number.min(widest)),
        exact @ Elided::Exact(_) => exact,
    }
}

/// Densities remembered at most (the memo is cleared past this many texts).
const DENSITY_MEMO_LIMIT: usize = 1 << 16;

impl Packer {
    /// The memo's exact count of a segment's text, if it has one.
    fn exact_count(&self, segment: &Segment) -> Option<usize> {
        let memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        memo.get(&segment.content_hash).filter(|known| known.exact).map(|known| known.tokens)
    }

    /// Tokens per byte of a segment's text, sampled once per text.
    fn density(&self, tokenizer: Tokenizer, segment: &Segment) -> f64 {
        let hash = segment.content_hash;
        let known = self.densities.lock().unwrap_or_else(PoisonError::into_inner).get(&hash).copied();
        known.unwrap_or_else(|| {
            let density = sampled_density(&tokenizer, &segment.text, SAMPLES, SAMPLE_BYTES);
            let mut densities = self.densities.lock().unwrap_or_else(PoisonError::into_inner);
            if densities.len() >= DENSITY_MEMO_LIMIT {
                densities.clear();
            }
            densities.insert(hash, density);
            density
        })
    }

    /// The stubs to use, if stubbing keeps units that would otherwise be evicted; `None` to pack as given.
    ///
    /// Plans once with every candidate stubbed, then gives the newest their text back while the room that
    /// plan left covers the difference: what remains stubbed is the oldest ones, as few as keep every unit
    /// that plan kept. A final plan checks it; if quotas or caps made it evict more, a bisection on how many
    /// of the oldest to stub decides instead.
    pub(super) fn choose_stubs(
        &self,
        tokenizer: Tokenizer,
        base: &Allocator<'_>,
        cuts: &mut Cuts,
    ) -> Result<Option<Stubbed>> {
        let segments = base.segments;
        let known = self.remembered(segments);
        let candidates = candidates(tokenizer, segments, &known);
        if candidates.is_empty() {
            return Ok(None);
        }
        // Stubs never replace mandatory segments, the only ones cut while planning: `cuts` holds for them.
        let with_stubs = |count: usize, cuts: &mut Cuts| -> Result<(Vec<Segment>, Plan)> {
            let mut work = segments.to_vec();
            for candidate in candidates.iter().take(count) {
                if let Some(slot) = work.get_mut(candidate.index) {
                    slot.clone_from(&candidate.widest);
                }
            }
            let known = self.remembered(&work);
            let plan = self.plan(&Allocator { segments: &work, known: &known, ..*base }, cuts)?;
            self.remember(&work, plan.sizes.counted_now(&known, &work));
            Ok((work, plan))
        };
        // Every candidate stubbed first, then the segments as they are (not a copy): if that evicts nothing,
        // or no more than with stubs, no stubs. It only has to show that it evicts more, so it stops once it
        // has (the old texts that would be stubbed are not read to the end of the fill).
        let (_, plan) = with_stubs(candidates.len(), cuts)?;
        let least = evictions(&plan);
        let known_now = self.remembered(segments);
        let unstubbed = self.plan(&Allocator { known: &known_now, enough_evictions: Some(least), ..*base }, cuts)?;
        self.remember(segments, unstubbed.sizes.counted_now(&known_now, segments));
        let evicted = evictions(&unstubbed);
        if evicted == 0 || least >= evicted {
            return Ok(None);
        }
        // The room that plan left; a segment admitted partially (cut to the room left) would give way.
        let mut slack = base.usable.saturating_add(base.separator);
        for (index, outcome) in plan.outcome.iter().enumerate() {
            if matches!(outcome, Ok(admission) if !matches!(admission, Admission::Partial(_))) {
                slack = slack.saturating_sub(plan.sizes.planned(index).saturating_add(base.separator));
            }
        }
        let mut stubbed = candidates.len();
        let mut learnt = Vec::new();
        for candidate in candidates.iter().rev() {
            let index = candidate.index;
            if plan.outcome.get(index).is_some_and(std::result::Result::is_ok) {
                let stub_size = plan.sizes.planned(index);
                let allowed = slack.saturating_add(stub_size);
                let Some(size) = size_up_to(tokenizer, base, &known, index, allowed, &mut learnt) else { break };
                slack = allowed - size;
            }
            stubbed -= 1;
        }
        self.remember(segments, learnt.into_iter());
        if stubbed < candidates.len() && evictions(&with_stubs(stubbed, cuts)?.1) > least {
            stubbed = fewest_stubs(candidates.len(), least, |count| Ok(evictions(&with_stubs(count, cuts)?.1)))?;
        }
        if stubbed == 0 {
            return Ok(None);
        }
        let chosen_candidates = candidates.get(..stubbed).unwrap_or_default();
        // Each stub's number samples its text; the texts are many and independent, so on every core.
        let numbers: Vec<Option<Elided>> = chosen_candidates
            .par_iter()
            .with_min_len(STATED_PER_TASK)
            .map(|candidate| {
                let segment = segments.get(candidate.index)?;
                let exact = self.exact_count(segment);
                Some(stated(tokenizer, &segment.text, exact, || self.density(tokenizer, segment)))
            })
            .collect();
        // Exact numbers counted just now go to the memo: the next pack of this conversation states them
        // without counting again.
        let counted_now = chosen_candidates.iter().zip(&numbers).filter_map(|(candidate, number)| match number {
            Some(Elided::Exact(tokens)) => Some((candidate.index, Known { tokens: *tokens, exact: true })),
            _ => None,
        });
        self.remember(segments, counted_now);
        let mut work = segments.to_vec();
        let mut chosen = Vec::with_capacity(stubbed);
        for (candidate, number) in chosen_candidates.iter().zip(numbers) {
            let index = candidate.index;
            let (Some(segment), Some(slot), Some(number)) = (segments.get(index), work.get_mut(index), number) else {
                continue;
            };
            let Some(template) = segment.stub.as_deref() else { continue };
            let (mut before, mut counted) = self.known_size(&known, segments, index);
            before = before.max(candidate.at_least);
            if let Elided::Exact(tokens) = number {
                (before, counted) = (tokens.saturating_add(segment.overhead), true);
            }
            *slot = replaced(segment, render(template, number));
            chosen.push((index, before, counted));
        }
        Ok(Some(Stubbed { segments: work, chosen }))
    }

    /// A segment's size as the memo knows it (tokens with overhead, and whether exact).
    fn known_size(&self, known: &[Option<Known>], segments: &[Segment], index: usize) -> (usize, bool) {
        let overhead = segments.get(index).map_or(0, |segment| segment.overhead);
        let fresh = self.remembered(segments.get(index..=index).unwrap_or_default()).pop().flatten();
        match fresh.or_else(|| known.get(index).copied().flatten()) {
            Some(count) => (count.tokens.saturating_add(overhead), count.exact),
            None => (overhead, false),
        }
    }
}

/// The fewest of the oldest candidates to stub for at most `least` evictions (stubbing more never evicts
/// more, so a bisection).
fn fewest_stubs(all: usize, least: usize, mut evictions: impl FnMut(usize) -> Result<usize>) -> Result<usize> {
    let (mut low, mut high) = (0, all);
    while low < high {
        let middle = low + (high - low) / 2;
        if evictions(middle)? <= least {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(high)
}

/// The size segment `index` would be planned at (cut to its kind's cap when above it) if at most
/// `limit`, else `None`; counts learnt go to `learnt` for the memo.
fn size_up_to(
    tokenizer: Tokenizer,
    base: &Allocator<'_>,
    known: &[Option<Known>],
    index: usize,
    limit: usize,
    learnt: &mut Vec<(usize, Known)>,
) -> Option<usize> {
    let segment = base.segments.get(index)?;
    // A segment that may not be cut and is above its kind's cap would be evicted whole.
    let uncut_cap = base.policy.segment_caps.get(&*segment.kind).filter(|_| base.cut_cap(index).is_none());
    let limit = uncut_cap.map_or(limit, |cap| limit.min(cap.resolve(base.usable)));
    let cap = base.cut_cap(index).filter(|&cap| cap <= limit);
    let asked = cap.unwrap_or(limit).checked_sub(segment.overhead)?;
    let before = known.get(index).copied().flatten();
    let count = match before {
        Some(count) if count.exact || count.tokens > asked => count,
        _ => {
            let count = read(tokenizer, &segment.text, asked, before.map_or(0, |count| count.tokens));
            learnt.push((index, count));
            count
        }
    };
    match (count.exact && count.tokens <= asked, cap) {
        (true, _) => Some(count.tokens.saturating_add(segment.overhead)),
        (false, Some(cap)) => Some(cap),
        (false, None) => None,
    }
}

/// A segment of an optional unit with a stub shorter than itself: its stub planned at its widest, and a lower bound
/// of its size (with overhead).
struct Candidate {
    index: usize,
    widest: Segment,
    at_least: usize,
}

/// The candidates for stubbing, oldest first.
fn candidates(tokenizer: Tokenizer, segments: &[Segment], known: &[Option<Known>]) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    let mut widest_tokens: FxHashMap<(&str, usize), usize> = FxHashMap::default();
    // Members of mandatory units are kept anyway (and may be cut, which a stub may not).
    let mandatory_groups: FxHashSet<&str> = segments
        .iter()
        .filter(|segment| segment.is_mandatory())
        .filter_map(|segment| segment.group.as_deref())
        .collect();
    for (index, segment) in segments.iter().enumerate() {
        let optional =
            !segment.is_mandatory() && segment.group.as_deref().is_none_or(|group| !mandatory_groups.contains(group));
        let Some(template) = segment.stub.as_deref().filter(|_| optional) else { continue };
        // The widest number of as many digits as the text has bytes (tokens never outnumber bytes).
        let digits = segment.text.len().checked_ilog10().unwrap_or(0) + 1;
        let widest = render(template, Elided::widest(10usize.saturating_pow(digits) - 1));
        let stub_tokens = *widest_tokens.entry((template, widest.len())).or_insert_with(|| tokenizer.count(&widest));
        let count = known.get(index).copied().flatten();
        let mut tokens = count.map_or(0, |count| count.tokens);
        if tokens <= stub_tokens && count.is_some_and(|count| count.exact) {
            continue;
        }
        if tokens <= stub_tokens {
            tokens = read(tokenizer, &segment.text, stub_tokens, tokens).tokens;
            if tokens <= stub_tokens {
                continue;
            }
        }
        let at_least = tokens.saturating_add(segment.overhead);
        candidates.push(Candidate { index, widest: replaced(segment, widest), at_least });
    }
    candidates
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
