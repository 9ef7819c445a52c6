//! Cutting text on a token boundary so that it fits a token budget.
//!
//! The cut is made in the original text's own tokenisation, then checked by re-counting the kept text:
//! BPE is not prefix-stable (the tokens of a cut piece can differ from the first tokens of the whole
//! piece) and a cut inside a multi-byte character is not valid text. So we start at the cut the original
//! tokens suggest, step back to the longest candidate that is valid and re-counts within budget, then
//! step forward while the next valid candidate still fits. Both walks are one or two steps in practice.
//! Only the part of the text that the kept side needs is ever encoded.

use std::collections::VecDeque;

use super::restart::restart_at_or_before;
use super::Tokenizer;

/// Which end of a text truncation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keep {
    /// Keep the start, drop the end.
    Head,
    /// Keep the end, drop the start.
    Tail,
}

impl Keep {
    /// The option's name as the Python API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Keep::Head => "head",
            Keep::Tail => "tail",
        }
    }
}

/// Byte offsets at which the text can be cut after `k` tokens of its own tokenisation, produced lazily.
trait Cuts {
    /// Where to cut to keep `k` tokens (k >= 1), or `None` when the text has fewer.
    fn cut(&mut self, k: usize) -> Option<usize>;
}

impl Tokenizer {
    /// The longest prefix (`Keep::Head`) or suffix (`Keep::Tail`) of `text` that ends on one of its
    /// token boundaries, is valid text, and counts at most `max_tokens` tokens. A text that already
    /// fits is returned whole.
    pub fn truncate<'t>(&self, text: &'t str, max_tokens: usize, keep: Keep) -> &'t str {
        if self.fits(text, max_tokens) {
            return text;
        }
        match keep {
            Keep::Head => {
                let mut cuts =
                    HeadCuts { tokenizer: self, pieces: self.pieces(text), piece_start: 0, ends: Vec::new() };
                let kept = |cut: usize| text.get(..cut);
                let cut = self.longest_fitting(&mut cuts, max_tokens, 0, kept);
                kept(cut).unwrap_or_default()
            }
            Keep::Tail => {
                let mut cuts = TailCuts::new(self, text, max_tokens);
                let kept = |cut: usize| text.get(cut..);
                let cut = self.longest_fitting(&mut cuts, max_tokens, text.len(), kept);
                kept(cut).unwrap_or_default()
            }
        }
    }

    /// The cut of the longest fitting candidate; `empty` is the cut that keeps nothing. `kept` returns
    /// `None` for a cut inside a character.
    fn longest_fitting<'t>(
        &self,
        cuts: &mut impl Cuts,
        max_tokens: usize,
        empty: usize,
        kept: impl Fn(usize) -> Option<&'t str>,
    ) -> usize {
        let fits = |cut: usize| kept(cut).is_some_and(|candidate| self.fits(candidate, max_tokens));
        // Walk back from the cut the original tokens suggest.
        let mut best = (0, empty);
        for k in (1..=max_tokens).rev() {
            match cuts.cut(k) {
                Some(cut) if fits(cut) => {
                    best = (k, cut);
                    break;
                }
                _ => {}
            }
        }
        // Walk forward while the next valid candidate still fits. It ends at the latest on the whole
        // text, which is valid and (we checked) does not fit.
        let (mut k, mut cut) = best;
        while let Some(next) = cuts.cut(k + 1) {
            k += 1;
            if kept(next).is_some() {
                if !fits(next) {
                    break;
                }
                cut = next;
            }
        }
        cut
    }
}

/// Token end offsets from the start of the text, encoding one piece at a time as they are asked for.
struct HeadCuts<'a, I> {
    tokenizer: &'a Tokenizer,
    pieces: I,
    piece_start: usize,
    ends: Vec<usize>,
}

impl<'a, I: Iterator<Item = &'a str>> Cuts for HeadCuts<'a, I> {
    fn cut(&mut self, k: usize) -> Option<usize> {
        while self.ends.len() < k {
            let piece = self.pieces.next()?;
            let mut end = self.piece_start;
            for token in self.tokenizer.encode_piece(piece) {
                end += self.tokenizer.token_len(token);
                self.ends.push(end);
            }
            self.piece_start += piece.len();
        }
        k.checked_sub(1).and_then(|index| self.ends.get(index).copied())
    }
}

/// Token start offsets from the end of the text. The pre-tokenizer only runs forwards, so we split from a
/// restart point a little before the end (see `restart`) and remember the starts of the last pieces (each
/// piece is at least one token, so `max_tokens + 2` of them are enough unless re-counting asks for more,
/// when we go back for twice as many). Without restart points that means splitting from the start.
struct TailCuts<'a> {
    tokenizer: &'a Tokenizer,
    text: &'a str,
    /// Starts of the pieces not yet encoded, ascending; all pieces from the last of these on are encoded.
    pending: VecDeque<usize>,
    /// Start of the earliest encoded piece (the end of the text before any is).
    encoded_from: usize,
    window: usize,
    starts: Vec<usize>,
}

/// Bytes to look back per piece wanted, before the first restart point search.
const BYTES_PER_PIECE: usize = 8;

impl<'a> TailCuts<'a> {
    fn new(tokenizer: &'a Tokenizer, text: &'a str, max_tokens: usize) -> Self {
        let mut cuts = Self {
            tokenizer,
            text,
            pending: VecDeque::new(),
            encoded_from: text.len(),
            window: max_tokens.saturating_add(2),
            starts: Vec::new(),
        };
        cuts.refill();
        cuts
    }

    /// Remember the starts of the last `window` pieces before `encoded_from`.
    fn refill(&mut self) {
        let bytes = self.text.as_bytes();
        let mut span = self.window.saturating_mul(BYTES_PER_PIECE).max(4096);
        loop {
            let from = restart_at_or_before(bytes, self.encoded_from.saturating_sub(span));
            self.pending.clear();
            let mut start = from;
            for piece in self.tokenizer.pieces(self.text.get(from..).unwrap_or_default()) {
                if start >= self.encoded_from {
                    break;
                }
                if self.pending.len() == self.window {
                    self.pending.pop_front();
                }
                self.pending.push_back(start);
                start += piece.len();
            }
            if from == 0 || self.pending.len() == self.window {
                break;
            }
            span = span.saturating_mul(2);
        }
        self.window = self.window.saturating_mul(2);
    }
}

impl Cuts for TailCuts<'_> {
    fn cut(&mut self, k: usize) -> Option<usize> {
        while self.starts.len() < k {
            if self.pending.is_empty() {
                if self.encoded_from == 0 {
                    return None;
                }
                self.refill();
            }
            let piece_start = self.pending.pop_back()?;
            let piece = self.text.get(piece_start..self.encoded_from)?;
            let mut end = self.encoded_from;
            for token in self.tokenizer.encode_piece(piece).into_iter().rev() {
                end -= self.tokenizer.token_len(token);
                self.starts.push(end);
            }
            self.encoded_from = piece_start;
        }
        k.checked_sub(1).and_then(|index| self.starts.get(index).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    fn tokenizers() -> [Tokenizer; 2] {
        Encoding::ALL.map(Tokenizer::new)
    }

    /// The token-boundary candidates of `text` (prefix or suffix byte cuts) that are valid text.
    fn valid_cuts(tokenizer: &Tokenizer, text: &str, keep: Keep) -> Vec<usize> {
        let tokens = tokenizer.encode(text);
        let mut offsets = vec![0];
        for token in &tokens {
            offsets.push(offsets.last().unwrap() + tokenizer.token_len(*token));
        }
        match keep {
            Keep::Head => offsets.into_iter().filter(|&cut| text.is_char_boundary(cut)).collect(),
            Keep::Tail => offsets.into_iter().rev().filter(|&cut| text.is_char_boundary(cut)).collect(),
        }
    }

    fn check(tokenizer: &Tokenizer, text: &str, max_tokens: usize, keep: Keep) {
        let kept = tokenizer.truncate(text, max_tokens, keep);
        assert!(tokenizer.count(kept) <= max_tokens, "{keep:?} {max_tokens} {text:?} -> {kept:?}");
        match keep {
            Keep::Head => assert!(text.starts_with(kept)),
            Keep::Tail => assert!(text.ends_with(kept)),
        }
        if kept.len() == text.len() {
            assert!(tokenizer.count(text) <= max_tokens);
            return;
        }
        // Maximal: the next longer valid candidate does not fit.
        let cuts = valid_cuts(tokenizer, text, keep);
        let candidate = |cut: usize| match keep {
            Keep::Head => &text[..cut],
            Keep::Tail => &text[cut..],
        };
        let position = cuts.iter().position(|&cut| candidate(cut).len() == kept.len()).expect("on a token boundary");
        let next = cuts[position + 1];
        assert!(tokenizer.count(candidate(next)) > max_tokens, "{keep:?} {max_tokens} {text:?}: not maximal");
    }

    #[test]
    fn head_and_tail_are_exact_prefixes_and_suffixes_and_maximal() {
        let texts = [
            "The quick brown fox jumps over the lazy dog. ".repeat(20),
            "日本語のテキストと emoji 🌍🌍🌍 and accents: éàü ".repeat(10),
            "a".repeat(3000),
            "line one\n\n   indented\t\ttabs\r\n".repeat(30),
            "{\"key\": [1, 2, 3], \"nested\": {\"x\": \"y\"}}".repeat(15),
            " ".repeat(500) + "x",
        ];
        for tokenizer in tokenizers() {
            for text in &texts {
                for max_tokens in [0, 1, 2, 3, 7, 50, 333] {
                    check(&tokenizer, text, max_tokens, Keep::Head);
                    check(&tokenizer, text, max_tokens, Keep::Tail);
                }
            }
        }
    }

    #[test]
    fn text_that_fits_is_returned_whole() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let text = "short text";
        assert_eq!(tokenizer.truncate(text, 100, Keep::Tail), text);
        assert_eq!(tokenizer.truncate("", 0, Keep::Head), "");
    }

    #[test]
    fn tail_rescans_when_it_needs_more_pieces() {
        // A tiny window forces the rescan path.
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let text = "word ".repeat(100);
        let mut cuts = TailCuts::new(&tokenizer, &text, 1);
        let all: Vec<usize> = (1..).map_while(|k| cuts.cut(k)).collect();
        assert_eq!(all.len(), tokenizer.count(&text));
        assert_eq!(all.last(), Some(&0));
    }
}
