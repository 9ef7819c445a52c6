//! The pre-tokenizer: the pieces of a text that BPE encodes separately.
//!
//! tiktoken splits text with one regular expression per encoding (letters with an optional leading
//! character, digit runs of up to three, punctuation runs, whitespace runs with a look-ahead). `bpe-openai`
//! runs that expression as a lazy DFA, which was the largest single cost of counting real text. Most text
//! agents send is ASCII, where every class of the expression is a byte test, so this module scans ASCII
//! pieces by hand and asks the DFA only for a piece whose extent depends on a non-ASCII character (which
//! may be a letter, a mark, a digit or whitespace). Leftmost-first matching from a piece's start depends
//! only on the text from there on, so the DFA, run anchored at that point, gives the same piece it would
//! give scanning the whole text. Tests compare both on random and real text, byte for byte.

use super::Encoding;

/// Which alternatives the encoding's expression has (they differ in case handling and contractions).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// `'s|'t|…` first, then `[^\r\n\p{L}\p{N}]?\p{L}+`, punctuation with trailing `[\r\n]*`.
    Cl100k,
    /// Case-aware words with optional contractions, punctuation with trailing `[\r\n/]*`.
    O200k,
}

/// An ASCII byte's class for the expression; `NonAscii` means "ask the DFA".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Upper,
    Lower,
    Digit,
    /// `\r` or `\n`.
    Newline,
    /// U+0020, the only character ` ?` matches.
    Space,
    /// `\t`, `\x0B`, `\x0C`: whitespace that is neither a newline nor a space.
    OtherSpace,
    /// Every other ASCII byte: not a letter, digit or whitespace (punctuation, symbols, controls).
    Other,
    NonAscii,
    End,
}

const fn class_of(byte: u8) -> Class {
    match byte {
        b'A'..=b'Z' => Class::Upper,
        b'a'..=b'z' => Class::Lower,
        b'0'..=b'9' => Class::Digit,
        b'\r' | b'\n' => Class::Newline,
        b' ' => Class::Space,
        b'\t' | b'\x0B' | b'\x0C' => Class::OtherSpace,
        0x80..=0xFF => Class::NonAscii,
        _ => Class::Other,
    }
}

/// Every byte's class, looked up rather than matched (the scan's inner loops are a lookup per byte).
// Indexing in a constant: an index out of range would fail the build, never a run.
#[allow(clippy::indexing_slicing)]
const CLASSES: [Class; 256] = {
    let mut classes = [Class::Other; 256];
    let mut byte: u8 = 0;
    loop {
        classes[byte as usize] = class_of(byte);
        if byte == u8::MAX {
            break classes;
        }
        byte += 1;
    }
};

fn class(bytes: &[u8], at: usize) -> Class {
    // A `u8` always indexes the table; the fallback is never taken.
    bytes.get(at).map_or(Class::End, |&byte| CLASSES.get(usize::from(byte)).copied().unwrap_or(Class::NonAscii))
}

fn is_space(class: Class) -> bool {
    matches!(class, Class::Newline | Class::Space | Class::OtherSpace)
}

/// A decision needs a non-ASCII character's class.
struct NeedsDfa;

/// The end of the piece that starts at `at` (`at < bytes.len()`), if ASCII decides it.
fn piece_end(pattern: Pattern, bytes: &[u8], at: usize) -> Result<usize, NeedsDfa> {
    let first = class(bytes, at);
    if first == Class::NonAscii {
        return Err(NeedsDfa);
    }
    if pattern == Pattern::Cl100k && bytes.get(at) == Some(&b'\'') {
        let after = contraction(bytes, at)?;
        if after > at {
            return Ok(after);
        }
    }
    // Letters, after at most one character that is not a newline, letter or digit.
    let letters_from = if matches!(first, Class::Space | Class::OtherSpace | Class::Other) { at + 1 } else { at };
    if let Some(end) = letters(pattern, bytes, letters_from)? {
        return Ok(end);
    }
    if first == Class::Digit {
        let mut end = at + 1;
        while end < at + 3 && class(bytes, end) == Class::Digit {
            end += 1;
        }
        // Fewer than three digits before a non-ASCII character, which may be a digit too.
        if end < at + 3 && class(bytes, end) == Class::NonAscii {
            return Err(NeedsDfa);
        }
        return Ok(end);
    }
    // ` ?[^\s\p{L}\p{N}]+` then trailing newlines (and slashes for o200k).
    let symbols_from = if first == Class::Space { at + 1 } else { at };
    let mut end = symbols_from;
    while class(bytes, end) == Class::Other {
        end += 1;
    }
    if class(bytes, end) == Class::NonAscii {
        return Err(NeedsDfa);
    }
    if end > symbols_from {
        while matches!(bytes.get(end), Some(b'\r' | b'\n'))
            || (pattern == Pattern::O200k && bytes.get(end) == Some(&b'/'))
        {
            end += 1;
        }
        return Ok(end);
    }
    // Whitespace: up to the last newline of the run, else the run less the space before a non-space.
    let mut end = at;
    let mut after_newline = None;
    while is_space(class(bytes, end)) {
        if class(bytes, end) == Class::Newline {
            after_newline = Some(end + 1);
        }
        end += 1;
    }
    match class(bytes, end) {
        Class::NonAscii => Err(NeedsDfa),
        _ if after_newline.is_some() => Ok(after_newline.unwrap_or(end)),
        Class::End => Ok(end),
        _ if end - at >= 2 => Ok(end - 1),
        _ => Ok(end),
    }
}

/// The end of a letter run starting at `from`, with its contraction, or `None` if no letter is there.
fn letters(pattern: Pattern, bytes: &[u8], from: usize) -> Result<Option<usize>, NeedsDfa> {
    let mut end = from;
    match pattern {
        Pattern::Cl100k => {
            while matches!(class(bytes, end), Class::Upper | Class::Lower) {
                end += 1;
            }
            if class(bytes, end) == Class::NonAscii {
                return Err(NeedsDfa);
            }
            Ok((end > from).then_some(end))
        }
        Pattern::O200k => {
            // `[upper]*[lower]+` or else `[upper]+[lower]*`: an upper run, then a lower run, one of them
            // non-empty; ASCII upper and lower case are disjoint, so there is nothing to backtrack.
            while class(bytes, end) == Class::Upper {
                end += 1;
            }
            while class(bytes, end) == Class::Lower {
                end += 1;
            }
            if class(bytes, end) == Class::NonAscii {
                return Err(NeedsDfa);
            }
            if end == from {
                return Ok(None);
            }
            Ok(Some(contraction(bytes, end)?))
        }
    }
}

/// The end of `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `at`, or `at` if none matches there.
fn contraction(bytes: &[u8], at: usize) -> Result<usize, NeedsDfa> {
    if bytes.get(at) != Some(&b'\'') {
        return Ok(at);
    }
    let lower = |offset: usize| match bytes.get(at + offset) {
        Some(byte) if byte.is_ascii() => Ok(Some(byte.to_ascii_lowercase())),
        Some(_) => Err(NeedsDfa), // case folding maps some non-ASCII letters to these (U+017F to `s`)
        None => Ok(None),
    };
    Ok(match lower(1)? {
        Some(b's' | b't' | b'm' | b'd') => at + 2,
        Some(first @ (b'r' | b'v' | b'l')) => {
            let second = if first == b'l' { b'l' } else { b'e' };
            if lower(2)? == Some(second) {
                at + 3
            } else {
                at
            }
        }
        _ => at,
    })
}

/// The pieces of a text, in order.
pub(super) struct Pieces<'a> {
    pattern: Pattern,
    dfa: &'static bpe_openai::Tokenizer,
    text: &'a str,
    at: usize,
}

impl<'a> Pieces<'a> {
    pub(super) fn new(encoding: Encoding, dfa: &'static bpe_openai::Tokenizer, text: &'a str) -> Self {
        let pattern = match encoding {
            Encoding::O200kBase => Pattern::O200k,
            Encoding::Cl100kBase => Pattern::Cl100k,
        };
        Self { pattern, dfa, text, at: 0 }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.text.get(self.at..).filter(|rest| !rest.is_empty())?;
        let length = match piece_end(self.pattern, self.text.as_bytes(), self.at) {
            Ok(end) => end - self.at,
            // The DFA always finds a piece: every character is matched by some alternative.
            Err(NeedsDfa) => self.dfa.split(rest).next().map_or(rest.len(), str::len),
        };
        // Every ASCII piece ends before an ASCII byte or at the end, so `length` is on a char boundary.
        let piece = rest.get(..length).filter(|piece| !piece.is_empty()).unwrap_or(rest);
        self.at += piece.len();
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so that the test needs no extra crate.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
            let index = usize::try_from(self.next() % choices.len() as u64).unwrap_or(0);
            choices.get(index).copied().unwrap_or("")
        }
    }

    /// Fragments that sit on the expression's boundaries: case changes, contractions (with non-ASCII
    /// look-alikes), digit runs next to non-ASCII digits, whitespace runs before and after newlines and
    /// non-ASCII spaces, punctuation runs with trailing slashes, marks and letters outside ASCII.
    const FRAGMENTS: &[&str] = &[
        "a",
        "Z",
        "hello",
        "World",
        "HTTPServer",
        "ABC",
        "xY",
        "'s",
        "'S",
        "'t",
        "'re",
        "'RE",
        "'ve",
        "'m",
        "'ll",
        "'Ll",
        "'d",
        "'x",
        "'",
        "'\u{17F}",
        "\u{17F}",
        "1",
        "12",
        "1234",
        "\u{663}",
        "\u{B2}",
        " ",
        "  ",
        "\t",
        "\x0B",
        "\x0C",
        "\n",
        "\r\n",
        "\r",
        " \n ",
        "\u{A0}",
        "\u{2003}",
        "\u{85}",
        "\u{3000}",
        ".",
        "..",
        "/",
        "//",
        "{",
        "}",
        "\"",
        "#",
        "\x00",
        "\x1F",
        "\x7F",
        "é",
        "e\u{301}",
        "\u{301}",
        "中文",
        "🌍",
        "Ω",
        "ǅ",
        "ʰ",
        "-",
        "_",
        "=",
        "+",
        " the",
        " The",
        "!\n",
        ".\n/",
        "x/\n",
        "$",
    ];

    fn random_text(random: &mut Random, fragments: usize) -> String {
        (0..fragments).map(|_| random.pick(FRAGMENTS)).collect()
    }

    #[test]
    fn pieces_match_the_dfa_on_random_text() {
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        for encoding in Encoding::ALL {
            let dfa = encoding.bpe();
            for round in 0..4000 {
                let text = random_text(&mut random, 1 + round % 40);
                let ours: Vec<&str> = Pieces::new(encoding, dfa, &text).collect();
                let theirs: Vec<&str> = dfa.split(&text).collect();
                assert_eq!(ours, theirs, "{encoding}: {text:?}");
            }
        }
    }

    #[test]
    fn pieces_match_the_dfa_on_code_and_prose() {
        let text = "fn main() {\n    let x = vec![1, 22, 333, 4444];\n    println!(\"{x:?}\");\n}\n\n\
                    // It's done; they'll SEE it. We've   spaces\t\there   \n\n   \r\n  end  \n\
                    https://example.com/a/b//c?q=1&r=2 <div class=\"x\">Hi</div> 3.14159 -1e10 __init__ ";
        for encoding in Encoding::ALL {
            let dfa = encoding.bpe();
            let ours: Vec<&str> = Pieces::new(encoding, dfa, text).collect();
            let theirs: Vec<&str> = dfa.split(text).collect();
            assert_eq!(ours, theirs, "{encoding}");
        }
    }
}
