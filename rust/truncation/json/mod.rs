//! `json`: a smaller JSON document built from the original's own values, using the room it is given.
//!
//! The text is validated once, its root listed in the same pass (`serde_json`, which skips nested values
//! without recursing, so a document nested 100,000 levels deep is fine). Nothing else reads the whole
//! document: containers are listed on demand, one level at a time and only where the output goes, keeping
//! only the members at both ends that could ever be shown, and a listing jumps over the big containers an
//! earlier one has stepped over (see `scan`), so that deep nests around a huge array stay linear.
//!
//! Why a budget per container, not one global shape. An earlier version scaled one shape (items and keys
//! per end, tokens per string, depth) by a single factor and bisected on it. On nested responses that
//! leaves most of the room empty: the factor that makes the biggest branch fit starves every other, and
//! at 600 tokens it kept 12 tokens of a 158k-token array (the whole array one note). Here the budget is
//! handed out top-down instead (see `plan`): each container shares its budget among the members it shows
//! (an array's from both ends, an object's in order), writes small ones whole and reduces big ones to a
//! share, recursively, and what a reduced member does not use goes to the ones after it. Members are
//! sized by exact counts of their compact text, but only up to the room (a huge member costs the room, not
//! its length), so one rendering costs about the limit's worth of counting, not the document's.
//!
//! Adding up members' counts is not quite the count of the whole (tokens merge across `,"` and `":`), so
//! the root budget is searched: render, count the result exactly, and move the budget in proportion to
//! the miss (bisecting once both sides are known), keeping the best rendering that fits. What is
//! returned has been counted and is within the limit; a few renderings get it within a few percent.
//!
//! What is left out is said by the elision marker, as a JSON string: in an array as an item, in an
//! object as the value of the key `"…"` (more `…` if the object has that key), both naming how many
//! items or members went and their tokens (`[… 1,234 items, 56,789 tokens elided …]`), or, when full
//! notes leave much of a small limit unused, only how many (`[… 1,234 items …]`; see `json`); inside a string
//! as part of it; for a container too deep, or with no room for any member, inside the container alone.
//! The output is compact (no whitespace outside strings): the original's indentation is not worth tokens.

mod plan;
mod render;
mod scan;
mod trim;

use serde_json::value::RawValue;

use self::render::{Reducer, ShortNotes};
use self::scan::Document;
use crate::tokenizer::Tokenizer;

/// Deepest level ever shown expanded; containers deeper are notes.
const MAX_DEPTH: usize = 100;
/// Tokens of a container's brackets, as estimated.
const BRACKETS: usize = 2;
/// Most members kept at each end of one container.
const MAX_KEEP: usize = 1 << 16;
/// Renderings tried while searching the root budget.
const STEPS: usize = 14;
/// The root budget searched is at most this many times the limit.
const MAX_BUDGET_FACTOR: usize = 8;
/// A rendering within `1 / CLOSE_ENOUGH` of the limit ends the search.
const CLOSE_ENOUGH: usize = 50;
/// Short notes (only how many went), everywhere and then on the root alone, are also tried when full ones
/// leave a cut under this percentage of the limit.
const SHORT_NOTES_UNDER: usize = 90;
/// A search whose best cut is under this percentage of the limit sweeps the root budget as well.
const SWEEP_UNDER: usize = 80;
/// Root budgets a sweep tries, evenly spaced from half the limit to `SWEEP_TO` times it (every one for a
/// small limit, where one member more or less decides).
const SWEEP_STEPS: usize = 128;
const SWEEP_TO: usize = 3;
/// A document whose compact form is at most this many times the limit is small enough to try leaving out
/// members of one container only (see `trim`), when the search ends under `SWEEP_UNDER`.
const TRIM_UP_TO: usize = 2;

/// `text` reduced to at most `max_tokens` tokens as valid JSON, or why it cannot be.
pub(super) fn json(tokenizer: &Tokenizer, text: &str, max_tokens: usize, marker: &str) -> Result<String, String> {
    let invalid = |error: serde_json::Error| format!("not valid JSON ({error})");
    let root = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    // Members cost at least two tokens (a separator and a value), and the budget is at most
    // `MAX_BUDGET_FACTOR` times the limit: no more than this many can be shown from one end.
    let keep = max_tokens.saturating_mul(MAX_BUDGET_FACTOR / 2).saturating_add(16).min(MAX_KEEP);
    // A container is validated by listing it (which the reduction needs anyway); a scalar on its own.
    let listing = if matches!(root.as_bytes().first(), Some(b'{' | b'[')) {
        Some(scan::list_root(root, keep).map_err(invalid)?)
    } else {
        serde_json::from_str::<&RawValue>(root).map_err(invalid)?;
        None
    };
    let mut reducer = Reducer::new(tokenizer, Document::new(root, MAX_DEPTH + 2), marker, keep);
    if let Some(listing) = listing {
        reducer.listed(0, listing);
    }
    // Full notes first; where they leave much of the room unused (a note is a good part of a small
    // limit), short ones too, and the better fit of the two.
    let mut best = search(&mut reducer, max_tokens);
    for short_notes in [ShortNotes::Always, ShortNotes::Root] {
        if best.as_ref().is_some_and(|found| {
            found.whole || found.tokens.saturating_mul(100) >= max_tokens.saturating_mul(SHORT_NOTES_UNDER)
        }) {
            break;
        }
        reducer.short_notes = short_notes;
        if let Some(short) = search(&mut reducer, max_tokens) {
            if best.as_ref().is_none_or(|found| short.tokens > found.tokens) {
                best = Some(short);
            }
        }
    }
    // A small document a little over the limit and still far under it: members of one container left out.
    let far_under = best
        .as_ref()
        .is_none_or(|found| !found.whole && found.tokens.saturating_mul(100) < max_tokens.saturating_mul(SWEEP_UNDER));
    if far_under && reducer.is_whole(max_tokens.saturating_mul(TRIM_UP_TO)) {
        for short_notes in [ShortNotes::Always, ShortNotes::Never] {
            reducer.short_notes = short_notes;
            if let Some((text, tokens)) = reducer.trimmed(max_tokens) {
                if best.as_ref().is_none_or(|found| tokens > found.tokens) {
                    best = Some(Found { text, tokens, whole: false });
                }
            }
        }
    }
    if let Some(best) = best {
        return Ok(best.text);
    }
    // Nothing fitted on the way: the smallest rendering there is (the root's short note), if it fits.
    let smallest = reducer.render(0);
    if tokenizer.fits(&smallest, max_tokens) {
        return Ok(smallest);
    }
    Err(format!("no reduced form of this JSON fits in {max_tokens} tokens"))
}

/// A rendering within the limit, its tokens, and whether it is the whole document.
struct Found {
    text: String,
    tokens: usize,
    whole: bool,
}

/// The best rendering within `max_tokens` found by searching the root budget: one that is whole or within
/// `1 / CLOSE_ENOUGH` of the limit ends the search, or the most tokens after `STEPS` renderings.
fn search(reducer: &mut Reducer, max_tokens: usize) -> Option<Found> {
    let tokenizer = reducer.tokenizer;
    let mut best: Option<Found> = None;
    let (mut fits, mut too_big) = (None, None);
    let mut budget = max_tokens;
    for _ in 0..STEPS {
        let text = reducer.render(budget);
        let tokens = tokenizer.count(&text);
        if tokens <= max_tokens {
            fits = Some(budget);
            let whole = reducer.is_whole(budget);
            if whole || (max_tokens - tokens) * CLOSE_ENOUGH <= max_tokens {
                return Some(Found { text, tokens, whole });
            }
            if best.as_ref().is_none_or(|found| tokens > found.tokens) {
                best = Some(Found { text, tokens, whole });
            }
        } else {
            too_big = Some(budget);
        }
        match next_budget(budget, tokens, max_tokens, fits, too_big) {
            Some(next) => budget = next,
            None => break,
        }
    }
    if best.as_ref().is_none_or(|found| found.tokens.saturating_mul(100) < max_tokens.saturating_mul(SWEEP_UNDER)) {
        sweep(reducer, max_tokens, &mut best);
    }
    best
}

/// Renderings are not monotone in the root budget (a member shown whole at one budget is reduced, and
/// differently written, at the next: 67 gave 58 tokens and 68 gave 47 for one document), so bisecting can
/// step over a budget whose rendering fits better. In the rare search that ends far under the limit, evenly
/// spaced budgets are tried too, until one uses most of the limit.
fn sweep(reducer: &mut Reducer, max_tokens: usize, best: &mut Option<Found>) {
    let tokenizer = reducer.tokenizer;
    let (low, high) = (max_tokens / 2, max_tokens.saturating_mul(SWEEP_TO));
    let step = (high - low).div_ceil(SWEEP_STEPS).max(1);
    for budget in (low..=high).step_by(step) {
        let text = reducer.render(budget);
        let tokens = tokenizer.count(&text);
        if tokens <= max_tokens && best.as_ref().is_none_or(|found| tokens > found.tokens) {
            let whole = reducer.is_whole(budget);
            *best = Some(Found { text, tokens, whole });
        }
        let enough = |found: &Found| found.tokens.saturating_mul(100) >= max_tokens.saturating_mul(SHORT_NOTES_UNDER);
        if best.as_ref().is_some_and(enough) {
            return;
        }
    }
}

/// The next root budget to try: while only budgets that fit (or only ones that do not) are known, where
/// the tokens would reach the limit if they grew in proportion to the budget; once both are known, their
/// midpoint (renderings are step functions of the budget, on which interpolating crawls); `None` when no
/// budget is left between them.
fn next_budget(
    budget: usize,
    tokens: usize,
    max_tokens: usize,
    fits: Option<usize>,
    too_big: Option<usize>,
) -> Option<usize> {
    let low = fits.unwrap_or(0);
    let high = too_big.unwrap_or_else(|| max_tokens.saturating_mul(MAX_BUDGET_FACTOR).saturating_add(1));
    if high <= low.saturating_add(1) {
        return None;
    }
    let proportional = budget.saturating_mul(max_tokens) / tokens.max(1);
    let next = match (fits, too_big) {
        (Some(_), Some(_)) => low + (high - low) / 2,
        _ if proportional > low && proportional < high => proportional,
        _ => low + (high - low) / 2,
    };
    (next != budget).then_some(next)
}

#[cfg(test)]
mod bench;
#[cfg(test)]
mod gen;
#[cfg(test)]
mod tests;
