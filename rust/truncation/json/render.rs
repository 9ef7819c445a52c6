//! Writing the reduced document for one root budget: each container as its plan says (members whole or
//! reduced to a share, a note for the rest), strings cut in the middle, and the notes themselves.

use rustc_hash::FxHashMap;

use super::plan::{Plan, Show};
use super::scan::{unescaped, Document, Listing, Span};
use super::MAX_DEPTH;
use crate::tokenizer::Tokenizer;
use crate::truncation::marker::{density, render, render_note, render_short_note, Elided, EXACT_LIMIT};
use crate::truncation::middle::middle;

/// Elided regions in notes up to this size are counted exactly (there can be many notes).
const NOTE_EXACT_LIMIT: usize = 4096;
/// Listing may scan at most this many times the text's length (plus `LISTING_SLACK`) in all; past that a
/// container is a note that does not say how many members it has. Jumping over recorded big containers,
/// listing scans each byte about once, so this is only a guard.
const LISTING_BUDGET: usize = 4;
const LISTING_SLACK: usize = 64 << 20;
/// Tokens of a cut string's own text worth showing around the marker, at the least.
const MIN_KEPT: usize = 4;
/// Tries at cutting a string whose escapes make it longer than its share once encoded.
const STRING_TRIES: usize = 6;

/// What a note is for: its regions' start, end and bytes, how many members, and whether it is short.
type NoteKey = (usize, usize, usize, usize, bool);

/// A cut string, as JSON, and its tokens.
struct Cut {
    json: String,
    tokens: usize,
}

/// Which notes say only how many members went: none, the root's (the cheapest way to free a few tokens
/// of a small limit), or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShortNotes {
    Never,
    Root,
    Always,
}

/// One document being reduced: the document, the caches that renderings at different budgets share.
pub(super) struct Reducer<'a, 't> {
    pub(super) tokenizer: &'a Tokenizer,
    pub(super) document: Document<'t>,
    /// The marker inside cut strings, and trimmed for notes.
    marker: &'a str,
    pub(super) note_marker: &'a str,
    /// Which notes that count what went say only that (`render_short_note`), for tight room.
    pub(super) short_notes: ShortNotes,
    /// Members kept at each end of a listed container.
    keep: usize,
    /// The smallest share worth giving a string that has to be cut (the marker and `MIN_KEPT` tokens);
    /// containers work out theirs (`need`).
    pub(super) min_share: usize,
    /// Listings by the container's start (`None`: over the listing budget).
    listings: FxHashMap<usize, Option<Listing>>,
    /// Exact tokens of members written whole, by member start (`Err(n)`: more than `n`).
    pub(super) sizes: FxHashMap<usize, Result<usize, usize>>,
    /// Decoded strings by start (`None` when they do not decode), and cuts by (start, share).
    pub(super) decoded: FxHashMap<usize, Option<String>>,
    cuts: FxHashMap<(usize, usize), Cut>,
    /// Notes (as JSON) and their tokens by (regions' start, end and bytes, members, short).
    notes: FxHashMap<NoteKey, (String, usize)>,
    /// The key of each object's note, by the object's start.
    note_keys: FxHashMap<usize, String>,
    density: Option<f64>,
}

impl<'a, 't> Reducer<'a, 't> {
    /// A reducer of `document` with `marker` (`{n}` is what went), keeping `keep` members at each end of
    /// every container it lists.
    pub(super) fn new(tokenizer: &'a Tokenizer, document: Document<'t>, marker: &'a str, keep: usize) -> Self {
        let cut = serde_json::to_string(&render(marker, Elided::widest(document.text.len())));
        let min_share = tokenizer.count(&cut.unwrap_or_default()) + MIN_KEPT;
        Self {
            tokenizer,
            document,
            marker,
            note_marker: marker.trim(),
            short_notes: ShortNotes::Never,
            keep,
            min_share,
            listings: FxHashMap::default(),
            sizes: FxHashMap::default(),
            decoded: FxHashMap::default(),
            cuts: FxHashMap::default(),
            notes: FxHashMap::default(),
            note_keys: FxHashMap::default(),
            density: None,
        }
    }

    /// The whole document reduced for a budget of `budget` tokens (estimated; the caller counts it).
    pub(super) fn render(&mut self, budget: usize) -> String {
        let root = self.document.root();
        let mut out = String::new();
        if self.size(root, None, budget).is_some() {
            self.document.minify_into(root, &mut out);
        } else {
            self.render_value(root, budget, 0, &mut out);
        }
        out
    }

    /// Whether the document is written whole (compactly) for a budget of `budget` tokens.
    pub(super) fn is_whole(&mut self, budget: usize) -> bool {
        self.size(self.document.root(), None, budget).is_some()
    }

    /// The value at `span` reduced to about `share` tokens, appended to `out`; its estimated tokens.
    pub(super) fn render_value(&mut self, span: Span, share: usize, depth: usize, out: &mut String) -> usize {
        match self.document.byte(span.start) {
            Some(b'[' | b'{') if depth >= MAX_DEPTH => self.render_empty(span, out),
            Some(b'[' | b'{') => self.render_container(span, share, depth, out),
            Some(b'"') => self.render_string(span, share, out),
            _ => {
                let value = self.document.get(span);
                out.push_str(value);
                self.tokenizer.count(value)
            }
        }
    }

    /// Takes `listing` as the listing of the container at `start`.
    pub(super) fn listed(&mut self, start: usize, listing: Listing) {
        self.listings.insert(start, Some(listing));
    }

    /// The listing of the container at `start`, listed now if need be; `None` past the listing budget.
    pub(super) fn listing(&mut self, span: Span) -> Option<&Listing> {
        if !self.listings.contains_key(&span.start) {
            let budget = LISTING_BUDGET.saturating_mul(self.document.text.len()).saturating_add(LISTING_SLACK);
            let over = self.document.scanned > budget;
            let listing = if over { None } else { self.document.list(span.start, self.keep) };
            self.listings.insert(span.start, listing);
        }
        self.listings.get(&span.start).and_then(Option::as_ref)
    }

    fn render_container(&mut self, span: Span, share: usize, depth: usize, out: &mut String) -> usize {
        let Some(plan) = self.plan(span, share) else { return self.render_empty(span, out) };
        if plan.shown.is_empty() {
            return self.render_empty(span, out);
        }
        let object = plan.object;
        let (note, note_tokens) = self.note_for(span, &plan);
        out.push(if object { '{' } else { '[' });
        let (mut tokens, mut carry) = (super::BRACKETS, 0);
        for (position, shown) in plan.shown.iter().enumerate() {
            if position > 0 {
                out.push(',');
                tokens += 1;
            }
            if position == plan.front && !object && !note.is_empty() {
                out.push_str(&note);
                out.push(',');
                tokens += note_tokens + 1;
            }
            if let Some(key) = shown.member.key {
                out.push_str(self.document.get(key));
                out.push(':');
            }
            match shown.show {
                Show::Whole(size) => {
                    self.document.minify_into(shown.member.value, out);
                    tokens += size;
                }
                Show::Reduced { key_tokens } => {
                    // What the members before did not use goes to this one.
                    let share = plan.share + carry;
                    let used = self.render_value(shown.member.value, share, depth + 1, out);
                    carry = share.saturating_sub(used);
                    tokens += key_tokens + used;
                }
            }
        }
        if !note.is_empty() && (object || plan.front == plan.shown.len()) {
            out.push(',');
            if object {
                out.push_str(&self.note_key(span));
                out.push(':');
            }
            out.push_str(&note);
            tokens += note_tokens + 2;
        }
        out.push(if object { '}' } else { ']' });
        tokens
    }

    /// A container with none of its members: `[note]` or `{"…": note}`.
    fn render_empty(&mut self, span: Span, out: &mut String) -> usize {
        let inside = Span { start: span.start + 1, end: span.end.saturating_sub(1) };
        let (object, count) = match self.listing(span) {
            Some(listing) => (listing.object, Some(listing.count)),
            None => (self.document.byte(span.start) == Some(b'{'), None),
        };
        let (note, tokens) = self.note(span, &[inside], count, object);
        out.push(if object { '{' } else { '[' });
        if object {
            out.push_str(&self.note_key(span));
            out.push(':');
        }
        out.push_str(&note);
        out.push(if object { '}' } else { ']' });
        tokens + super::BRACKETS + if object { 2 } else { 0 }
    }

    /// The note for what `plan` leaves out of the container at `span` (empty if it leaves nothing out).
    fn note_for(&mut self, span: Span, plan: &Plan) -> (String, usize) {
        let count = plan.count.saturating_sub(plan.shown.len());
        if count == 0 {
            return (String::new(), 0);
        }
        // The runs of members left out: one in an array (between its ends), any in an object.
        let (mut gaps, mut end, mut next) = (Vec::new(), span.start + 1, 0);
        for shown in &plan.shown {
            if shown.index > next {
                gaps.push(Span { start: end, end: shown.member.start().max(end) });
            }
            (end, next) = (shown.member.value.end, shown.index + 1);
        }
        if next < plan.count {
            gaps.push(Span { start: end, end: span.end.saturating_sub(1).max(end) });
        }
        self.note(span, &gaps, Some(count), plan.object)
    }

    /// Whether the note of the container at `span` says only how many went.
    pub(super) fn short_note(&self, span: Span) -> bool {
        match self.short_notes {
            ShortNotes::Never => false,
            ShortNotes::Root => span.start == self.document.root().start,
            ShortNotes::Always => true,
        }
    }

    /// The note for the regions `gaps` of the container at `span`, which hold `count` members, as a JSON
    /// string; and its tokens.
    pub(super) fn note(&mut self, span: Span, gaps: &[Span], count: Option<usize>, object: bool) -> (String, usize) {
        let bytes: usize = gaps.iter().map(|gap| gap.len()).sum();
        let (first, last) = (gaps.first().map_or(0, |gap| gap.start), gaps.last().map_or(0, |gap| gap.end));
        let short = self.short_note(span);
        let key = (first, last, bytes, count.unwrap_or(usize::MAX), short);
        if let Some((note, tokens)) = self.notes.get(&key) {
            return (note.clone(), *tokens);
        }
        let text = match count {
            Some(count) if short => render_short_note(self.note_marker, count, object),
            _ => self.full_note(gaps, bytes, count, object),
        };
        let note = serde_json::to_string(&text).unwrap_or_else(|_| String::from("\"\""));
        let note_tokens = self.tokenizer.count(&note);
        self.notes.insert(key, (note.clone(), note_tokens));
        (note, note_tokens)
    }

    /// The note's text in full: the marker with how many members went (if known) and their tokens.
    fn full_note(&mut self, gaps: &[Span], bytes: usize, count: Option<usize>, object: bool) -> String {
        let tokens = if bytes <= NOTE_EXACT_LIMIT {
            Elided::Exact(gaps.iter().map(|gap| self.tokenizer.count(self.document.get(*gap))).sum())
        } else {
            let density = *self.density.get_or_insert_with(|| density(self.tokenizer, self.document.text));
            Elided::estimated(density, bytes)
        };
        match count {
            Some(count) => render_note(self.note_marker, count, object, tokens),
            None => render(self.note_marker, tokens),
        }
    }

    /// A key for the note of the object at `start` that none of its listed keys has (compared decoded).
    pub(super) fn note_key(&mut self, span: Span) -> String {
        if let Some(key) = self.note_keys.get(&span.start) {
            return key.clone();
        }
        let keys: Vec<Span> = match self.listing(span) {
            Some(listing) => listing.kept().filter_map(|member| member.key).collect(),
            None => Vec::new(),
        };
        let keys: Vec<String> =
            keys.into_iter().filter_map(|key| serde_json::from_str::<String>(self.document.get(key)).ok()).collect();
        let mut key = String::from("…");
        while keys.contains(&key) {
            key.push('…');
        }
        let key = format!("\"{key}\"");
        self.note_keys.insert(span.start, key.clone());
        key
    }

    /// The string at `span` in about `share` tokens: whole, or its start and end around the marker.
    fn render_string(&mut self, span: Span, share: usize, out: &mut String) -> usize {
        if let Some(cut) = self.cuts.get(&(span.start, share)) {
            out.push_str(&cut.json);
            return cut.tokens;
        }
        let raw = self.document.get(span);
        let whole = unescaped(raw).unwrap_or_else(|| raw.to_owned());
        let cut = match self.tokenizer.count_up_to(&whole, share) {
            Some(tokens) => Cut { json: whole, tokens },
            None => self.cut_string(span, share),
        };
        out.push_str(&cut.json);
        let tokens = cut.tokens;
        self.cuts.insert((span.start, share), cut);
        tokens
    }

    fn cut_string(&mut self, span: Span, share: usize) -> Cut {
        let (tokenizer, marker, raw) = (self.tokenizer, self.marker, self.document.get(span));
        self.decode(span);
        let Some(decoded) = self.decoded.get(&span.start).and_then(Option::as_deref) else {
            return marker_only(tokenizer, marker, raw);
        };
        let mut target = share.saturating_sub(2);
        if let Some(tokens) = tokenizer.count_up_to(decoded, target) {
            // Over only because of its quotes and escapes: shorter by their share of it, so that the
            // marker never stands for nothing.
            target = tokens.saturating_sub(1).min(target * share / tokenizer.count(raw).max(1));
        }
        // Escapes make the JSON longer than the decoded text by a ratio not known in advance: narrow the target
        // between the largest cut that fits and the smallest that did not, keeping the best that fits.
        let (mut best, mut last): (Option<Cut>, Option<Cut>) = (None, None);
        let (mut fits_at, mut over_at) = (0usize, None::<usize>);
        for _ in 0..STRING_TRIES {
            let Some(text) = middle(tokenizer, decoded, target, marker) else { break };
            // A target that keeps the whole text is too large: the marker must stand for something.
            let whole = text.len() >= decoded.len();
            let Ok(json) = serde_json::to_string(&text) else { break };
            let tokens = tokenizer.count(&json);
            let cut = Cut { json, tokens };
            if tokens <= share && !whole {
                fits_at = target;
                if best.as_ref().is_none_or(|best| tokens > best.tokens) {
                    best = Some(cut);
                }
                if tokens.saturating_mul(10) >= share.saturating_mul(9) {
                    break;
                }
                // Larger: by the room left, or between this and the smallest that did not fit (a target that
                // keeps the whole text counts as not fitting).
                target = over_at.map_or_else(|| target * share / tokens.max(1), |over| usize::midpoint(target, over));
            } else {
                over_at = Some(target);
                if !whole {
                    last = Some(cut);
                }
                // Smaller: between the largest that fitted and this, or by the excess and a twentieth more (so
                // that the next cut fits, and the search narrows from both sides).
                target = if fits_at > 0 {
                    usize::midpoint(fits_at, target)
                } else {
                    (target * share / tokens.max(1)).saturating_sub(target / 20)
                };
            }
            if target <= fits_at || over_at.is_some_and(|over| target >= over) {
                break;
            }
        }
        if let Some(best) = best {
            return best;
        }
        last.unwrap_or_else(|| marker_only(tokenizer, marker, decoded))
    }

    /// Whether the string at `span` decodes (decoded once, and kept).
    pub(super) fn decode(&mut self, span: Span) -> bool {
        let raw = self.document.get(span);
        self.decoded.entry(span.start).or_insert_with(|| serde_json::from_str::<String>(raw).ok()).is_some()
    }
}

/// The marker for all of `text`, as a JSON string.
fn marker_only(tokenizer: &Tokenizer, marker: &str, text: &str) -> Cut {
    let elided = if text.len() <= EXACT_LIMIT {
        Elided::Exact(tokenizer.count(text))
    } else {
        Elided::estimated(density(tokenizer, text), text.len())
    };
    let json = serde_json::to_string(&render(marker, elided)).unwrap_or_else(|_| String::from("\"\""));
    Cut { tokens: tokenizer.count(&json), json }
}
