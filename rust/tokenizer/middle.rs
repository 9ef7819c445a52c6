//! Middle truncation: keep the start and the end of a text, with a marker saying how much was elided.

use std::borrow::Cow;

use super::{Keep, Tokenizer};

/// The default elision marker; `{n}` becomes the number of tokens elided, with thousands separators.
pub const DEFAULT_MARKER: &str = "\n[… {n} tokens elided …]\n";

/// The marker with `{n}` replaced by the number of elided tokens, written with thousands separators.
fn render_marker(marker: &str, elided: usize) -> String {
    let digits = elided.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    marker.replace("{n}", &grouped)
}

/// How far past a side's current size to look for a longer candidate: a character can span four tokens.
const LOOKAHEAD: usize = 4;

impl Tokenizer {
    /// `text` in at most `max_tokens` tokens: its longest start and end around `marker` (in which `{n}`
    /// becomes the number of tokens elided, the elided text counted on its own). The marker counts inside
    /// the limit. A text that fits comes back whole; when the marker alone does not fit, the head does.
    ///
    /// The start and the end share the room evenly, then each grows while one more of its tokens still
    /// fits, so neither side could take another token.
    pub fn truncate_middle<'t>(&self, text: &'t str, max_tokens: usize, marker: &str) -> Cow<'t, str> {
        if self.fits(text, max_tokens) {
            return Cow::Borrowed(text);
        }
        // Tokens never outnumber bytes, so no final marker is longer (in digits) than this one.
        let widest = self.count(&render_marker(marker, text.len()));
        let Some(content) = max_tokens.checked_sub(widest) else {
            return Cow::Borrowed(self.truncate(text, max_tokens, Keep::Head));
        };
        let (mut head, mut tail) = (content.div_ceil(2), content / 2);
        // Balanced split first; shrink the larger side until it fits (re-counting can merge across the marker).
        let mut best = loop {
            let candidate = self.middle_candidate(text, head, tail, marker);
            if self.fits(&candidate.text, max_tokens) {
                break candidate;
            }
            if head == 0 && tail == 0 {
                return Cow::Borrowed(self.truncate(text, max_tokens, Keep::Head));
            }
            if head >= tail {
                head -= 1;
            } else {
                tail -= 1;
            }
        };
        // Grow each side while a longer version of it still fits.
        loop {
            let mut grew = false;
            for grow_tail in [true, false] {
                for extra in 1..=LOOKAHEAD {
                    let (h, t) = if grow_tail { (head, tail + extra) } else { (head + extra, tail) };
                    let candidate = self.middle_candidate(text, h, t, marker);
                    if candidate.kept <= best.kept {
                        continue;
                    }
                    if self.fits(&candidate.text, max_tokens) {
                        (head, tail, best, grew) = (h, t, candidate, true);
                    }
                    break;
                }
            }
            if !grew {
                break;
            }
        }
        Cow::Owned(best.text)
    }

    fn middle_candidate(&self, text: &str, head: usize, tail: usize, marker: &str) -> Candidate {
        let start = self.truncate(text, head, Keep::Head);
        let rest = text.get(start.len()..).unwrap_or_default();
        let end = self.truncate(rest, tail, Keep::Tail);
        let elided = rest.get(..rest.len() - end.len()).unwrap_or_default();
        let text = [start, &render_marker(marker, self.count(elided)), end].concat();
        Candidate { text, kept: start.len() + end.len() }
    }
}

struct Candidate {
    text: String,
    /// Bytes of the original kept (start plus end).
    kept: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    const MARKER: &str = "\n[... {n} tokens elided ...]\n";

    #[test]
    fn keeps_start_and_end_around_a_marker_within_the_limit() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let text = (0..500).map(|i| format!("line {i}: ok")).collect::<Vec<_>>().join("\n");
        for max_tokens in [20, 50, 333] {
            let cut = tokenizer.truncate_middle(&text, max_tokens, MARKER);
            assert!(tokenizer.count(&cut) <= max_tokens);
            let (start, rest) = cut.split_once("\n[... ").unwrap();
            let (n, end) = rest.split_once(" tokens elided ...]\n").unwrap();
            assert!(text.starts_with(start) && text.ends_with(end));
            let elided = &text[start.len()..text.len() - end.len()];
            assert_eq!(n.replace(',', "").parse::<usize>().unwrap(), tokenizer.count(elided));
        }
    }

    #[test]
    fn markers_group_thousands() {
        assert_eq!(render_marker("[{n}]", 12_345), "[12,345]");
        assert_eq!(render_marker("[{n}]", 999), "[999]");
        assert_eq!(render_marker("[{n}] {n}", 1_000_000), "[1,000,000] 1,000,000");
        assert!(DEFAULT_MARKER.contains("{n}"));
    }

    #[test]
    fn fitting_text_is_whole_and_a_marker_that_cannot_fit_gives_the_head() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        assert_eq!(tokenizer.truncate_middle("short", 10, MARKER), "short");
        let text = "word ".repeat(100);
        let cut = tokenizer.truncate_middle(&text, 3, MARKER);
        assert_eq!(cut, tokenizer.truncate(&text, 3, Keep::Head));
    }
}
