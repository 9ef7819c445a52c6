//! Reading a document `serde_json` has validated, without building a tree of it.
//!
//! Three things are needed: the members of one container (listed on demand, keeping only those at both
//! ends that could ever be shown), a value written compactly (whitespace outside strings dropped), and a
//! way to step over a value. Stepping over a big container by scanning it would make listing quadratic
//! in the nesting (a container's listing scans its children, whose listings scan theirs again: 64 levels
//! around a megabyte array would scan it 64 times). So the scan that steps over a container records where
//! each big container inside it ends, and later listings jump over those: each byte is scanned by the
//! listing of its first listed ancestor and after that only by listings of small containers (under `BIG`
//! bytes each) around it. Recording stops `depth` levels below the scan's start, so its stack stays
//! small on a document nested millions deep (nothing that deep is ever listed).
//!
//! The reader trusts that the text is valid JSON, but never panics if it is not: it answers `None`.

use std::collections::VecDeque;
use std::fmt;

use memchr::memchr2;
use rustc_hash::FxHashMap;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Containers of at least this many bytes have their ends recorded by the first pass.
const BIG: usize = 16 * 1024;

/// A byte range of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Span {
    pub(super) fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }
}

/// One member of a container: its key (objects) and its value, as spans of the document.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member {
    pub(super) key: Option<Span>,
    pub(super) value: Span,
}

impl Member {
    /// Where the member starts: at its key, if it has one.
    pub(super) fn start(self) -> usize {
        self.key.map_or(self.value.start, |key| key.start)
    }
}

/// A container's member count and its members at both ends (all of them when there are few).
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) object: bool,
    pub(super) count: usize,
    first: Vec<Member>,
    last: VecDeque<Member>,
}

impl Listing {
    fn new(object: bool) -> Self {
        Self { object, count: 0, first: Vec::new(), last: VecDeque::new() }
    }

    fn push(&mut self, keep: usize, member: Member) {
        self.count += 1;
        if self.first.len() < keep {
            self.first.push(member);
            return;
        }
        if self.last.len() >= keep {
            self.last.pop_front();
        }
        self.last.push_back(member);
    }

    /// The member at `index`, if it was kept.
    pub(super) fn get(&self, index: usize) -> Option<Member> {
        if let Some(member) = self.first.get(index) {
            return Some(*member);
        }
        let back = self.count.checked_sub(self.last.len())?;
        self.last.get(index.checked_sub(back)?).copied()
    }

    /// The kept members, first to last.
    pub(super) fn kept(&self) -> impl Iterator<Item = &Member> {
        self.first.iter().chain(self.last.iter())
    }
}

/// A validated JSON document and the ends of the big containers found so far.
pub(super) struct Document<'t> {
    pub(super) text: &'t str,
    /// How many levels below a scan's start big containers are recorded.
    depth: usize,
    /// The end (exclusive) of big containers, by start.
    ends: FxHashMap<usize, usize>,
    /// The starts of the containers open in a scan (kept to reuse the allocation).
    open: Vec<usize>,
    /// Bytes stepped over by scanning so far (jumps over recorded containers cost nothing).
    pub(super) scanned: usize,
}

impl<'t> Document<'t> {
    /// `text`: valid JSON without surrounding whitespace.
    pub(super) fn new(text: &'t str, depth: usize) -> Self {
        Self { text, depth, ends: FxHashMap::default(), open: Vec::new(), scanned: 0 }
    }

    /// The whole document's span.
    pub(super) fn root(&self) -> Span {
        Span { start: 0, end: self.text.len() }
    }

    pub(super) fn get(&self, span: Span) -> &'t str {
        self.text.get(span.start..span.end).unwrap_or_default()
    }

    pub(super) fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn skip_whitespace(&self, mut at: usize) -> usize {
        while matches!(self.byte(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            at += 1;
        }
        at
    }

    /// One past the end of the value starting at `at`.
    fn value_end(&mut self, at: usize) -> Option<usize> {
        let text = self.text;
        let bytes = text.as_bytes();
        let end = match *bytes.get(at)? {
            b'"' => string_end(bytes, at),
            b'[' | b'{' => match self.ends.get(&at) {
                Some(&end) => return Some(end),
                None => self.container_end(at),
            },
            _ => {
                let length = bytes.get(at..)?.iter().position(|byte| b",]} \t\n\r".contains(byte));
                Some(at + length.unwrap_or(bytes.len() - at)).filter(|&end| end > at)
            }
        }?;
        self.scanned = self.scanned.saturating_add(end - at);
        Some(end)
    }

    /// One past the end of the container starting at `at`, by scanning it; the big containers in it (and
    /// it, if big) are recorded on the way, down to `depth` levels.
    fn container_end(&mut self, mut at: usize) -> Option<usize> {
        let text = self.text;
        let bytes = text.as_bytes();
        let (mut level, mut open) = (0usize, std::mem::take(&mut self.open));
        open.clear();
        let end = loop {
            let Some(&byte) = bytes.get(at) else { break None };
            match byte {
                b'"' => {
                    match string_end(bytes, at) {
                        Some(end) => at = end,
                        None => break None,
                    }
                    continue;
                }
                b'[' | b'{' => {
                    if level < self.depth {
                        open.push(at);
                    }
                    level += 1;
                }
                b']' | b'}' => {
                    let Some(inner) = level.checked_sub(1) else { break None };
                    level = inner;
                    if level < self.depth {
                        match open.pop() {
                            Some(start) if at + 1 - start >= BIG => {
                                self.ends.insert(start, at + 1);
                            }
                            _ => {}
                        }
                    }
                    if level == 0 {
                        break Some(at + 1);
                    }
                }
                _ => {}
            }
            at += 1;
        };
        self.open = open;
        end
    }

    /// The members of the container starting at `at`, keeping `keep` at each end; `None` if it is not one.
    pub(super) fn list(&mut self, at: usize, keep: usize) -> Option<Listing> {
        let object = match self.byte(at)? {
            b'{' => true,
            b'[' => false,
            _ => return None,
        };
        let close = if object { b'}' } else { b']' };
        let mut listing = Listing::new(object);
        let mut at = self.skip_whitespace(at + 1);
        if self.byte(at)? == close {
            return Some(listing);
        }
        loop {
            let key = if object {
                let end = string_end(self.text.as_bytes(), at)?;
                let key = Span { start: at, end };
                at = self.skip_whitespace(end);
                (self.byte(at)? == b':').then_some(())?;
                at = self.skip_whitespace(at + 1);
                Some(key)
            } else {
                None
            };
            let end = self.value_end(at)?;
            listing.push(keep, Member { key, value: Span { start: at, end } });
            at = self.skip_whitespace(end);
            match self.byte(at)? {
                b',' => at = self.skip_whitespace(at + 1),
                byte if byte == close => return Some(listing),
                _ => return None,
            }
        }
    }

    /// The value at `span` written compactly: whitespace outside strings dropped, and each string that
    /// escapes what JSON lets it write as it is (`\u00e9`, `\ud83c\udf0d`, `\/`) written as it is, the same
    /// value in fewer tokens.
    pub(super) fn minify_into(&self, span: Span, out: &mut String) {
        let bytes = self.text.as_bytes();
        let (mut at, mut from) = (span.start, span.start);
        while at < span.end {
            match bytes.get(at) {
                Some(b'"') => {
                    let end = string_end(bytes, at).unwrap_or(span.end).min(span.end);
                    if let Some(shorter) = self.text.get(at..end).and_then(unescaped) {
                        out.push_str(self.text.get(from..at).unwrap_or_default());
                        out.push_str(&shorter);
                        from = end;
                    }
                    at = end;
                }
                Some(b' ' | b'\t' | b'\n' | b'\r') => {
                    out.push_str(self.text.get(from..at).unwrap_or_default());
                    at = self.skip_whitespace(at).min(span.end);
                    from = at;
                }
                Some(_) => at += 1,
                None => break,
            }
        }
        out.push_str(self.text.get(from..span.end.max(from)).unwrap_or_default());
    }

    /// Whether the value at `span` is written compactly as it stands: a scalar (only a container can hold
    /// whitespace outside its strings), and not a string that `minify_into` writes shorter.
    pub(super) fn is_compact(&self, span: Span) -> bool {
        match self.byte(span.start) {
            Some(b'[' | b'{') => false,
            Some(b'"') => unescaped(self.get(span)).is_none(),
            _ => true,
        }
    }
}

/// The root container of `text`, listed as `serde_json` validates the whole document (one pass for both);
/// the error if `text` is not valid JSON.
pub(super) fn list_root(text: &str, keep: usize) -> Result<Listing, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let listing = (&mut deserializer).deserialize_any(RootVisitor { text, keep })?;
    deserializer.end()?;
    Ok(listing)
}

/// Lists a container whose members `serde_json` borrows from `text` (and validates, without recursing).
struct RootVisitor<'t> {
    text: &'t str,
    keep: usize,
}

impl RootVisitor<'_> {
    fn span(&self, part: &str) -> Span {
        let start = (part.as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize);
        Span { start, end: start + part.len() }
    }
}

impl<'de> Visitor<'de> for RootVisitor<'_> {
    type Value = Listing;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object or array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut listing = Listing::new(false);
        while let Some(value) = seq.next_element::<&RawValue>()? {
            listing.push(self.keep, Member { key: None, value: self.span(value.get()) });
        }
        Ok(listing)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut listing = Listing::new(true);
        while let Some(key) = map.next_key::<&RawValue>()? {
            let value = map.next_value::<&RawValue>()?;
            listing.push(self.keep, Member { key: Some(self.span(key.get())), value: self.span(value.get()) });
        }
        Ok(listing)
    }
}

/// `string` (a JSON string with its quotes) written again with only the escapes JSON requires, if it has
/// others (`\u` for a character that can stand as it is, `\/`); `None` if it has none, or does not decode
/// (a lone surrogate stays as written).
pub(super) fn unescaped(string: &str) -> Option<String> {
    let bytes = string.as_bytes();
    let needless = memchr::memchr_iter(b'\\', bytes).any(|at| match bytes.get(at + 1) {
        Some(b'/') => true,
        Some(b'u') => bytes.get(at + 2..at + 6).is_some_and(|hex| !hex.starts_with(b"00") || hex > b"001f".as_slice()),
        _ => false,
    });
    if !needless {
        return None;
    }
    serde_json::from_str::<String>(string).ok().and_then(|decoded| serde_json::to_string(&decoded).ok())
}

/// One past the closing quote of the string whose opening quote is at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut at = at + 1;
    loop {
        at += memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes.get(at) == Some(&b'\\') {
            at += 2;
        } else {
            return Some(at + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_jumps_over_big_containers_and_keeps_both_ends() {
        let big = format!("[{}]", vec!["\"x]\\\"\""; 10_000].join(", "));
        let text = format!("{{ \"a\" : {big} , \"b\": [1, 2 ,3], \"c\":\"}}\" }}");
        let mut document = Document::new(&text, 4);
        let listing = document.list(0, 8).unwrap();
        assert_eq!(document.ends.len(), 1);
        assert!(listing.object);
        assert_eq!(listing.count, 3);
        let values: Vec<&str> = listing.kept().map(|member| document.get(member.value)).collect();
        assert_eq!(values, [big.as_str(), "[1, 2 ,3]", "\"}\""]);
        let inner = document.list(listing.get(0).unwrap().value.start, 2).unwrap();
        assert_eq!(inner.count, 10_000);
        assert!(inner.get(1).is_some() && inner.get(2).is_none() && inner.get(9_998).is_some());
        let mut out = String::new();
        document.minify_into(listing.get(1).unwrap().value, &mut out);
        assert_eq!(out, "[1,2,3]");
        assert!(Document::new("[1, [2", 4).list(0, 4).is_none());
        // The root, listed as it is validated, is the same listing.
        let root = list_root(&text, 8).unwrap();
        let spans = |listing: &Listing| listing.kept().map(|member| (member.key, member.value)).collect::<Vec<_>>();
        assert_eq!(spans(&root), spans(&listing));
        assert!(list_root("[1, 2", 8).unwrap_err().to_string().starts_with("EOF while parsing"));
        // Big containers inside a scanned one are recorded, down to the depth asked.
        let nested = format!("[[[{big}]]]");
        let mut document = Document::new(&nested, 2);
        assert_eq!(document.list(0, 2).unwrap().count, 1);
        let mut starts: Vec<usize> = document.ends.keys().copied().collect();
        starts.sort_unstable();
        assert_eq!(starts, [1, 2]);
    }
}
