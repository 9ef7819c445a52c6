//! Token counts of one text's split at its restart points, so that texts made of long runs of it (a cut
//! that keeps its start and end around a marker, a region of it) are counted by reading only near their
//! joins.
//!
//! At a restart point (see `restart`) every piece of the split ends and a new one starts, whatever comes
//! before it, and the pieces before it depend only on the text up to it and the character at it. So a text
//! that shares a stretch around a restart point with the original is split exactly like the original
//! there, and the tokens between two such points are the original's.

use super::restart::starts_piece;
use super::{Keep, PieceCache, Tokenizer};

/// Bytes kept beyond a restart point to be sure its character is whole (UTF-8 is at most four bytes).
const CHAR: usize = 4;

/// Restart points of a text with the tokens before each.
pub(crate) struct SplitIndex {
    /// `(byte offset, tokens before it)`, increasing, starting with `(0, 0)` and ending with `(len, total)`.
    points: Vec<(usize, usize)>,
}

impl SplitIndex {
    /// One pass over `text`.
    pub(crate) fn new(tokenizer: &Tokenizer, text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut points = vec![(0, 0)];
        let (mut offset, mut total) = (0usize, 0usize);
        PieceCache::with(tokenizer.encoding, |cache| {
            for piece in tokenizer.pieces(text) {
                if offset > 0 && starts_piece(bytes, offset) {
                    points.push((offset, total));
                }
                total += cache.count(piece.as_bytes(), |piece| tokenizer.count_piece(piece));
                offset += piece.len();
            }
        });
        points.push((text.len(), total));
        Self { points }
    }

    fn total(&self) -> usize {
        self.points.last().map_or(0, |&(_, tokens)| tokens)
    }

    /// The latest point at or before `at`.
    fn at_or_before(&self, at: usize) -> (usize, usize) {
        let index = self.points.partition_point(|&(offset, _)| offset <= at);
        self.points.get(index.saturating_sub(1)).copied().unwrap_or((0, 0))
    }

    /// The earliest point at or after `at` (the end if none is).
    fn at_or_after(&self, at: usize) -> (usize, usize) {
        let index = self.points.partition_point(|&(offset, _)| offset < at);
        self.points.get(index).or(self.points.last()).copied().unwrap_or((0, 0))
    }

    /// Exact tokens of `text[..head] + joint + text[tail..]` (`text` is the indexed text).
    pub(crate) fn count_joined(
        &self,
        tokenizer: &Tokenizer,
        text: &str,
        head: usize,
        joint: &str,
        tail: usize,
    ) -> usize {
        // A restart point whose two sides stay in the kept start, and one whose two sides stay in the end.
        let (start, before) = if head >= CHAR { self.at_or_before(head - CHAR) } else { (0, 0) };
        let (end, through) = self.at_or_after(tail + 1);
        let joined =
            [text.get(start..head).unwrap_or_default(), joint, text.get(tail..end).unwrap_or_default()].concat();
        before + tokenizer.count(&joined) + (self.total() - through)
    }

    /// The end of the longest start of `text` (the indexed text) on a token boundary with at most `tokens`
    /// tokens, as `Tokenizer::truncate(text, tokens, Keep::Head)` finds it, but read only from the last
    /// restart point within `tokens`: the tokens from there on are the text's own.
    pub(crate) fn head_end(&self, tokenizer: &Tokenizer, text: &str, tokens: usize) -> usize {
        let reached = self.points.partition_point(|&(_, before)| before <= tokens);
        let (start, before) = self.points.get(reached.saturating_sub(1)).copied().unwrap_or((0, 0));
        let rest = text.get(start..).unwrap_or_default();
        start + tokenizer.truncate(rest, tokens.saturating_sub(before), Keep::Head).len()
    }

    /// The start of the longest end of `text[from..]` (`text` is the indexed text) on a token boundary with
    /// at most `tokens` tokens, as `Tokenizer::truncate(&text[from..], tokens, Keep::Tail)` finds it, but
    /// read only from the latest restart point after `from` whose end is too long for `tokens`.
    pub(crate) fn tail_start(&self, tokenizer: &Tokenizer, text: &str, from: usize, tokens: usize) -> usize {
        let total = self.total();
        let too_long = self.points.partition_point(|&(_, before)| total - before > tokens);
        let start = match self.points.get(too_long.saturating_sub(1)) {
            Some(&(offset, before)) if too_long > 0 && offset > from && total - before > tokens => offset,
            _ => from,
        };
        let rest = text.get(start..).unwrap_or_default();
        text.len() - tokenizer.truncate(rest, tokens, Keep::Tail).len()
    }

    /// Exact tokens of `text[start..end]` (`text` is the indexed text).
    pub(crate) fn count_range(&self, tokenizer: &Tokenizer, text: &str, start: usize, end: usize) -> usize {
        let (first, before_first) = self.at_or_after(start + 1);
        let (last, before_last) = if end >= CHAR { self.at_or_before(end - CHAR) } else { (0, 0) };
        if first > last || first + CHAR > end || last <= start {
            return tokenizer.count(text.get(start..end).unwrap_or_default());
        }
        tokenizer.count(text.get(start..first).unwrap_or_default())
            + (before_last - before_first)
            + tokenizer.count(text.get(last..end).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    #[test]
    fn joined_and_range_counts_match_counting_the_text_itself() {
        let base = "fn main() {\n    let x = 42; // the answer\n    println!(\"{x}\");\n}\n\nIt's a test, isn't it? \
                    Ünïcödé wörds, 中文字符, and numbers 1234567 too.\n  \n\t- item one\n- item two\n";
        let text = base.repeat(4);
        let joints = ["", "\n[… 1,234 tokens elided …]\n", " x", "\n\n", "'s", "é"];
        for encoding in Encoding::ALL {
            let tokenizer = Tokenizer::new(encoding);
            let index = SplitIndex::new(&tokenizer, &text);
            assert_eq!(index.total(), tokenizer.count(&text));
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&at| text.is_char_boundary(at)).collect();
            for (step, &head) in boundaries.iter().enumerate().step_by(11) {
                for &tail in boundaries.iter().skip(step).step_by(29) {
                    let expected = tokenizer.count(text.get(head..tail).unwrap());
                    assert_eq!(index.count_range(&tokenizer, &text, head, tail), expected, "{head}..{tail}");
                    for joint in joints {
                        let joined = [&text[..head], joint, &text[tail..]].concat();
                        let counted = index.count_joined(&tokenizer, &text, head, joint, tail);
                        assert_eq!(counted, tokenizer.count(&joined), "{head} {joint:?} {tail}");
                    }
                }
            }
            for tokens in 0..=index.total() + 2 {
                let expected = tokenizer.truncate(&text, tokens, Keep::Head).len();
                assert_eq!(index.head_end(&tokenizer, &text, tokens), expected, "{tokens}");
                for &from in boundaries.iter().step_by(37) {
                    let rest = &text[from..];
                    let expected = text.len() - tokenizer.truncate(rest, tokens, Keep::Tail).len();
                    assert_eq!(index.tail_start(&tokenizer, &text, from, tokens), expected, "{from} {tokens}");
                }
            }
        }
    }
}
