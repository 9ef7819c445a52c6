//! `json`: a smaller JSON document built from the original's own values.
//!
//! The text is validated once (`serde_json`, which skips nested values without recursing, so a document
//! nested 100,000 levels deep is fine). Containers are then listed lazily, one level at a time and only
//! where the output goes, keeping only the members at both ends that could ever be shown. A `Shape`
//! says how much of everything to keep (items and keys per end, tokens per string, depth), all scaled by
//! one factor; the largest factor whose rendering fits is found by bisection. What is left out is replaced
//! by the elision marker, as a JSON string: in an array as an item, in an object as the value of the
//! key `"…"`, inside a string as part of it, for a container too deep as the container.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;

use rustc_hash::FxHashMap;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::marker::{density, render, Elided};
use super::middle::middle;
use crate::tokenizer::Tokenizer;

/// Deepest level ever shown expanded.
const MAX_DEPTH: usize = 64;
/// Most members kept at each end of one container.
const MAX_KEEP: usize = 4096;
/// Elided regions in notes up to this size are counted exactly (there can be many notes).
const NOTE_EXACT_LIMIT: usize = 4096;
/// Listing may read at most this many times the text's length in all.
const LISTING_BUDGET: usize = 4;
/// Bisection steps on the scale factor.
const STEPS: usize = 10;
/// The smallest factor tried: everything but the outermost levels elided.
const SMALLEST_LOG: f64 = -14.0;

/// `text` reduced to at most `max_tokens` tokens as valid JSON, or why it cannot be.
pub(super) fn json(tokenizer: &Tokenizer, text: &str, max_tokens: usize, marker: &str) -> Result<String, String> {
    let invalid = |error: serde_json::Error| format!("not valid JSON ({error})");
    let root = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let keep = max_tokens.saturating_add(1).min(MAX_KEEP);
    // A container is validated by listing it (which the reduction needs anyway); a scalar on its own.
    let listing = if matches!(root.as_bytes().first(), Some(b'{' | b'[')) {
        Some(list(root, keep).map_err(invalid)?)
    } else {
        serde_json::from_str::<&RawValue>(root).map_err(invalid)?;
        None
    };
    let mut reducer = Reducer {
        tokenizer,
        text,
        marker,
        note_marker: marker.trim(),
        limit_bytes: max_tokens.saturating_mul(tokenizer.longest_token_bytes()),
        check_every: max_tokens.saturating_mul(2).max(256),
        checked_at: 0,
        keep,
        max_tokens,
        listings: FxHashMap::default(),
        density: None,
        strings: FxHashMap::default(),
        decoded: FxHashMap::default(),
        listed: 0,
        notes: FxHashMap::default(),
    };
    if let Some(listing) = listing {
        reducer.listed = root.len();
        reducer.listings.insert(reducer.offset(root), listing);
    }
    if let Some(whole) = reducer.fit(root, 0.0) {
        return Ok(whole);
    }
    let Some(mut best) = reducer.fit(root, SMALLEST_LOG) else {
        return Err(format!("no reduced form of this JSON fits in {max_tokens} tokens"));
    };
    let (mut fits, mut too_big) = (SMALLEST_LOG, 0.0);
    for _ in 0..STEPS {
        let middle = f64::midpoint(fits, too_big);
        if let Some(rendered) = reducer.fit(root, middle) {
            (best, fits) = (rendered, middle);
        } else {
            too_big = middle;
        }
    }
    Ok(best)
}

/// How much of the document to keep.
#[derive(Debug, Clone, Copy)]
struct Shape {
    items: usize,
    keys: usize,
    string_tokens: usize,
    depth: usize,
}

impl Shape {
    /// Everything scaled by `e^log_factor` (`log_factor <= 0`): items fastest, keys more slowly (they say
    /// what the data is), depth slowest.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn scaled(log_factor: f64, max_tokens: usize, keep: usize) -> Self {
        let factor = log_factor.exp();
        Self {
            items: (keep as f64 * factor) as usize,
            keys: ((keep as f64 * factor.sqrt()) as usize).max(1),
            string_tokens: quantize((max_tokens as f64 * factor) as usize),
            depth: ((MAX_DEPTH as f64 * factor.powf(0.25)) as usize).max(1),
        }
    }
}

/// Strings up to this many tokens are never cut: a marker in a short string leaves little of it.
const SHORTEST_CUT_STRING: usize = 48;

/// `tokens` rounded down to a step of a geometric grid (ratio 1.25) from `SHORTEST_CUT_STRING`, so that
/// renderings at nearby scales cut strings to the same sizes and reuse the cuts.
fn quantize(tokens: usize) -> usize {
    let mut step = SHORTEST_CUT_STRING;
    while step + step / 4 <= tokens {
        step += step / 4;
    }
    step
}

/// One member of a container: the raw key text (objects) and the raw value text, both in the original.
#[derive(Clone, Copy)]
struct Member<'t> {
    key: Option<&'t str>,
    value: &'t str,
}

/// A container's member count and the members at both ends (all of them when there are few).
struct Listing<'t> {
    object: bool,
    count: usize,
    first: Vec<Member<'t>>,
    last: VecDeque<Member<'t>>,
}

/// Not rendered: the output outgrew anything that could fit.
struct TooLong;

struct Reducer<'a, 't> {
    tokenizer: &'a Tokenizer,
    text: &'t str,
    marker: &'a str,
    note_marker: &'a str,
    limit_bytes: usize,
    /// Output bytes between checks that the rendering so far still fits (a rendering too big for the
    /// limit is abandoned early instead of being built in full).
    check_every: usize,
    checked_at: usize,
    keep: usize,
    max_tokens: usize,
    /// By the value's byte offset.
    listings: FxHashMap<usize, Listing<'t>>,
    /// Tokens per byte of the document, sampled once, for notes on regions too long to count.
    density: Option<f64>,
    /// Shortened strings by (offset, tokens).
    strings: FxHashMap<(usize, usize), String>,
    /// Decoded strings that needed cutting, by offset (decoded once, however many sizes are tried).
    decoded: FxHashMap<usize, Option<String>>,
    /// Bytes listed so far; listing stops (the container becomes a note) past a few times the text, so
    /// that deep single-member nests around a huge container cannot make the work quadratic.
    listed: usize,
    /// Rendered notes by elided region (offset, length).
    notes: FxHashMap<(usize, usize), String>,
}

impl<'t> Reducer<'_, 't> {
    /// The document rendered at scale `e^log_factor`, if it fits.
    fn fit(&mut self, root: &'t str, log_factor: f64) -> Option<String> {
        let shape = Shape::scaled(log_factor, self.max_tokens, self.keep);
        let mut out = String::new();
        self.checked_at = 0;
        self.render(root, &shape, 0, &mut out).ok()?;
        self.tokenizer.fits(&out, self.max_tokens).then_some(out)
    }

    fn offset(&self, part: &str) -> usize {
        (part.as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize)
    }

    fn render(&mut self, value: &'t str, shape: &Shape, depth: usize, out: &mut String) -> Result<(), TooLong> {
        match value.as_bytes().first() {
            Some(b'{' | b'[') if depth >= shape.depth => {
                let note = self.note(self.offset(value), value.len());
                out.push_str(&note);
            }
            Some(b'{' | b'[') => self.render_container(value, shape, depth, out)?,
            Some(b'"') => self.render_string(value, shape, out),
            _ => out.push_str(value),
        }
        if out.len() > self.limit_bytes {
            return Err(TooLong);
        }
        if out.len() > self.checked_at + self.check_every {
            if !self.tokenizer.fits(out, self.max_tokens) {
                return Err(TooLong);
            }
            self.checked_at = out.len();
        }
        Ok(())
    }

    fn render_container(
        &mut self,
        value: &'t str,
        shape: &Shape,
        depth: usize,
        out: &mut String,
    ) -> Result<(), TooLong> {
        let offset = self.offset(value);
        if !self.listings.contains_key(&offset) {
            self.listed += value.len();
            if self.listed > LISTING_BUDGET.saturating_mul(self.text.len()) {
                let note = self.note(offset, value.len());
                out.push_str(&note);
                return Ok(());
            }
            let listing = list(value, self.keep).map_err(|_| TooLong)?;
            self.listings.insert(offset, listing);
        }
        let Some(listing) = self.listings.get(&offset) else { return Err(TooLong) };
        let object = listing.object;
        let per_end = if object { shape.keys } else { shape.items }.min(self.keep);
        let all: Vec<Member<'t>> = listing.first.iter().chain(listing.last.iter()).copied().collect();
        let count = listing.count;
        // Members shown: all of them, or `per_end` from each end around a note (`None`) for the rest. A
        // note longer than what it replaces is not worth it, unless the listing does not hold the rest.
        let mut shown: Vec<Option<Member<'t>>> = all.iter().copied().map(Some).collect();
        let mut note = String::new();
        if count > 2 * per_end {
            let (start, end) = elided_span(&all, per_end, offset, value.len(), |part| self.offset(part));
            note = self.note(start, end.saturating_sub(start));
            if count > all.len() || note.len() < end.saturating_sub(start) {
                let head = all.get(..per_end).unwrap_or_default();
                let tail = all.get(all.len() - per_end..).unwrap_or_default();
                shown = head.iter().copied().map(Some).chain([None]).chain(tail.iter().copied().map(Some)).collect();
            }
        }
        out.push(if object { '{' } else { '[' });
        for (index, member) in shown.into_iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let (key, value) = match member {
                Some(Member { key, value }) => (key.map(Cow::Borrowed), Some(value)),
                None => (object.then(|| Cow::Owned(note_key(&all))), None),
            };
            if let Some(key) = key {
                out.push_str(&key);
                out.push(':');
            }
            match value {
                Some(value) => self.render(value, shape, depth + 1, out)?,
                None => out.push_str(&note),
            }
        }
        out.push(if object { '}' } else { ']' });
        Ok(())
    }

    fn render_string(&mut self, value: &'t str, shape: &Shape, out: &mut String) {
        let tokens = shape.string_tokens.min(self.max_tokens);
        if value.len() <= tokens || self.tokenizer.fits(value, tokens) {
            out.push_str(value);
            return;
        }
        let offset = self.offset(value);
        if !self.strings.contains_key(&(offset, tokens)) {
            let decoded = self.decoded.entry(offset).or_insert_with(|| serde_json::from_str::<String>(value).ok());
            let shortened = match decoded.as_deref() {
                // Over only because of its quotes and escapes: whole, rather than a marker eliding nothing.
                Some(decoded) if self.tokenizer.fits(decoded, tokens) => Some(value.to_owned()),
                Some(decoded) => middle(self.tokenizer, decoded, tokens, self.marker)
                    .and_then(|cut| serde_json::to_string(&cut).ok()),
                None => None,
            };
            let shortened = shortened.unwrap_or_else(|| self.note(offset, value.len()));
            self.strings.insert((offset, tokens), shortened);
        }
        if let Some(shortened) = self.strings.get(&(offset, tokens)) {
            out.push_str(shortened);
        }
    }

    /// The marker for the region `[start, start + length)` of the original, as a JSON string.
    fn note(&mut self, start: usize, length: usize) -> String {
        if let Some(note) = self.notes.get(&(start, length)) {
            return note.clone();
        }
        let region = self.text.get(start..start + length).unwrap_or_default();
        let elided = if length <= NOTE_EXACT_LIMIT {
            Elided::Exact(self.tokenizer.count(region))
        } else {
            let density = *self.density.get_or_insert_with(|| density(self.tokenizer, self.text));
            Elided::estimated(density, length)
        };
        let note = serde_json::to_string(&render(self.note_marker, elided)).unwrap_or_default();
        self.notes.insert((start, length), note.clone());
        note
    }
}

/// The byte span between the last member kept at the start and the first kept at the end.
fn elided_span(
    all: &[Member<'_>],
    per_end: usize,
    offset: usize,
    length: usize,
    at: impl Fn(&str) -> usize,
) -> (usize, usize) {
    let start = per_end
        .checked_sub(1)
        .and_then(|index| all.get(index))
        .map_or(offset + 1, |member| at(member.value) + member.value.len());
    let end = all
        .len()
        .checked_sub(per_end)
        .and_then(|index| all.get(index))
        .filter(|_| per_end > 0)
        .map_or(offset + length - 1, |member| at(member.key.unwrap_or(member.value)));
    (start, end)
}

/// A key for an object's note that none of its listed keys has (compared decoded, escapes and all).
fn note_key(members: &[Member<'_>]) -> String {
    let keys: Vec<String> =
        members.iter().filter_map(|member| serde_json::from_str::<String>(member.key?).ok()).collect();
    let mut key = String::from("…");
    while keys.contains(&key) {
        key.push('…');
    }
    format!("\"{key}\"")
}

/// The members of the container `value`, keeping `keep` at each end.
fn list(value: &str, keep: usize) -> Result<Listing<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(value);
    let listing = (&mut deserializer).deserialize_any(ListingVisitor { keep })?;
    deserializer.end()?;
    Ok(listing)
}

struct ListingVisitor {
    keep: usize,
}

impl<'t> Listing<'t> {
    fn push(&mut self, keep: usize, member: Member<'t>) {
        self.count += 1;
        if self.first.len() < keep {
            self.first.push(member);
            return;
        }
        if self.last.len() == keep {
            self.last.pop_front();
        }
        self.last.push_back(member);
    }
}

impl<'de> Visitor<'de> for ListingVisitor {
    type Value = Listing<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object or array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut listing = Listing { object: false, count: 0, first: Vec::new(), last: VecDeque::new() };
        while let Some(value) = seq.next_element::<&RawValue>()? {
            listing.push(self.keep, Member { key: None, value: value.get() });
        }
        Ok(listing)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut listing = Listing { object: true, count: 0, first: Vec::new(), last: VecDeque::new() };
        while let Some(key) = map.next_key::<&RawValue>()? {
            let value = map.next_value::<&RawValue>()?;
            listing.push(self.keep, Member { key: Some(key.get()), value: value.get() });
        }
        Ok(listing)
    }
}
