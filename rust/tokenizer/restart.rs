//! Places where the pre-tokenizer is known to start a piece, found by looking at two bytes.
//!
//! The pre-tokenizer only runs forwards, and its pieces depend on what came before. But at some positions
//! every possible match of both encodings' patterns must end: no alternative can continue a letter or digit
//! run into ASCII punctuation or whitespace (the apostrophe starts contractions, so it is excluded), and
//! no alternative that holds a newline can continue into a character that is not whitespace other than `/`
//! (o200k's punctuation pieces may carry trailing `\r`, `\n` and `/`). Splitting from such a position
//! gives exactly the pieces that splitting the whole text gives from there, so cutting the tail of a long
//! text can start a few kilobytes before its end instead of at its start. Tests check every restart point
//! of random texts against the full split.

/// Whether a piece of the full text's split starts at byte `at` (positions 0 and `len` always qualify).
/// `false` means "not known", not "no".
pub(super) fn starts_piece(bytes: &[u8], at: usize) -> bool {
    let (Some(&before), Some(&after)) = (at.checked_sub(1).and_then(|index| bytes.get(index)), bytes.get(at)) else {
        return at == 0 || at == bytes.len();
    };
    let ends_word =
        before.is_ascii_alphanumeric() && after.is_ascii() && !after.is_ascii_alphanumeric() && after != b'\'';
    ends_word || (before == b'\n' && first_char(bytes, at).is_some_and(|next| !next.is_whitespace() && next != '/'))
}

/// The character that starts at byte `at`, if one does.
fn first_char(bytes: &[u8], at: usize) -> Option<char> {
    let width = match bytes.get(at)? {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    std::str::from_utf8(bytes.get(at..at + width)?).ok()?.chars().next()
}

/// The latest restart point at or before `at`, or 0.
pub(super) fn restart_at_or_before(bytes: &[u8], at: usize) -> usize {
    (1..=at.min(bytes.len())).rev().find(|&position| starts_piece(bytes, position)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::tokenizer::{Encoding, Tokenizer};

    /// Random texts over an alphabet chosen to stress the rules: letters, digits, apostrophes, slashes,
    /// every ASCII whitespace, a non-breaking space, marks, and non-ASCII letters and digits.
    fn texts() -> impl Iterator<Item = String> {
        const ALPHABET: &[&str] = &[
            "a", "Z", "7", "'", "'s", "/", " ", "  ", "\n", "\r\n", "\t", "\x0b", "\x0c", "\u{a0}", "\u{301}", "é",
            "中", "٣", ".", ",", "{", "\"", "-", "\u{2028}", "🌍", "x'", "\n/", ".\n/", "\u{93e}", "Я", "\u{85}",
            "\u{3000}",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..3000).map(move |_| {
            let mut text = String::new();
            let length = 1 + (state % 40) as usize;
            for _ in 0..length {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(ALPHABET[usize::try_from(state % ALPHABET.len() as u64).unwrap()]);
            }
            text
        })
    }

    #[test]
    fn every_restart_point_starts_a_piece_of_the_full_split() {
        for encoding in Encoding::ALL {
            let tokenizer = Tokenizer::new(encoding);
            for text in texts() {
                let mut starts = BTreeSet::from([text.len()]);
                let mut start = 0;
                for piece in tokenizer.pieces(&text) {
                    starts.insert(start);
                    start += piece.len();
                }
                for at in 0..=text.len() {
                    if starts_piece(text.as_bytes(), at) {
                        assert!(starts.contains(&at), "{encoding}: {text:?} does not start a piece at {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn restart_points_are_found_backwards() {
        let text = b"first line\nsecond";
        assert_eq!(restart_at_or_before(text, text.len() - 1), 11);
        assert_eq!(restart_at_or_before(text, 10), 10);
        assert_eq!(restart_at_or_before(text, 9), 5);
        assert_eq!(restart_at_or_before("日本語".as_bytes(), 6), 0);
    }
}
