//! The elision marker: a template in which `{n}` becomes the number of tokens removed.

use crate::tokenizer::Tokenizer;

/// The default elision marker.
pub const DEFAULT_MARKER: &str = "\n[… {n} tokens elided …]\n";

/// Elided regions up to this many bytes are counted exactly; longer ones are estimated from samples, so
/// that cutting a 100 MB log to 2,000 tokens does not tokenise 100 MB just to write one number.
pub(crate) const EXACT_LIMIT: usize = 64 * 1024;
const SAMPLES: usize = 16;
const SAMPLE_BYTES: usize = 2048;

/// How many tokens a cut removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elided {
    /// Counted exactly.
    Exact(usize),
    /// Estimated from evenly spaced samples (rounded to three significant digits); written with a `~`.
    About(usize),
}

impl Elided {
    /// The estimate for `bytes` bytes of text with `density` tokens per byte.
    pub(crate) fn estimated(density: f64, bytes: usize) -> Self {
        // Byte counts are far below 2^53: the float arithmetic is exact enough for an estimate.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let estimate = (density * bytes as f64).round() as usize;
        Self::About(three_significant_digits(estimate))
    }

    /// The widest number a region of `bytes` bytes could produce (tokens never outnumber bytes).
    pub(crate) fn widest(bytes: usize) -> Self {
        Self::About(bytes)
    }
}

/// Tokens per byte of `region`, from exact counts of evenly spaced samples.
pub(crate) fn density(tokenizer: &Tokenizer, region: &str) -> f64 {
    sampled_density(tokenizer, region, SAMPLES, SAMPLE_BYTES)
}

/// Tokens per byte of `region`, from exact counts of `samples` evenly spaced samples of `sample_bytes`.
pub(crate) fn sampled_density(tokenizer: &Tokenizer, region: &str, samples: usize, sample_bytes: usize) -> f64 {
    let stride = region.len() / samples.max(1);
    let (mut bytes, mut tokens) = (0usize, 0usize);
    for sample in 0..samples {
        let start = floor_char_boundary(region, sample * stride);
        let end = floor_char_boundary(region, start + sample_bytes);
        let text = region.get(start..end).unwrap_or_default();
        bytes += text.len();
        tokens += tokenizer.count(text);
    }
    #[allow(clippy::cast_precision_loss)]
    let density = tokens as f64 / bytes.max(1) as f64;
    density
}

/// `marker` with `{n}` replaced by `elided`, with thousands separators (and `~` for an estimate).
pub(crate) fn render(marker: &str, elided: Elided) -> String {
    marker.replace("{n}", &tokens(elided))
}

/// The note for `count` members of a container (items of an array, or members of an object) that went,
/// `elided` tokens in all: `marker` with `{n}` replaced by, say, `1,234 items, 56,789`, so that the
/// default marker reads `[… 1,234 items, 56,789 tokens elided …]`. A marker without `{n}` is followed
/// by both numbers in parentheses.
pub(crate) fn render_note(marker: &str, count: usize, object: bool, elided: Elided) -> String {
    let what = counted(count, object);
    if marker.contains("{n}") {
        marker.replace("{n}", &format!("{what}, {}", tokens(elided)))
    } else {
        format!("{marker} ({what}, {} tokens)", tokens(elided))
    }
}

/// The short form of a note, for when room is tight: only how many items or members went, in the marker's
/// decoration (what comes before its first `{n}`, and the run of non-alphanumeric characters that ends
/// it): `[… 1,234 items …]` under the default marker, `<<12 members>>` under `<<{n} tokens cut>>`; a
/// marker without `{n}` is followed by the count in brackets, `[cut] (2 members)`.
pub(crate) fn render_short_note(marker: &str, count: usize, object: bool) -> String {
    let what = counted(count, object);
    match marker.split_once("{n}") {
        Some((before, after)) => {
            let words = after.trim_end_matches(|c: char| !c.is_alphanumeric()).len();
            format!("{before}{what}{}", after.get(words..).unwrap_or_default())
        }
        None => format!("{marker} ({what})"),
    }
}

/// `count` items or members, with thousands separators.
fn counted(count: usize, object: bool) -> String {
    let noun = match (object, count) {
        (false, 1) => "item",
        (false, _) => "items",
        (true, 1) => "member",
        (true, _) => "members",
    };
    format!("{} {noun}", grouped(count))
}

/// `elided` with thousands separators, and `~` for an estimate.
fn tokens(elided: Elided) -> String {
    match elided {
        Elided::Exact(number) => grouped(number),
        Elided::About(number) => format!("~{}", grouped(number)),
    }
}

/// `number` with thousands separators.
fn grouped(number: usize) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// The largest char boundary at or below `at` (clamped to the text).
pub(crate) fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn three_significant_digits(number: usize) -> usize {
    let mut scale = 1;
    while number / scale >= 1000 {
        scale *= 10;
    }
    (number + scale / 2) / scale * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    #[test]
    fn markers_group_thousands_and_mark_estimates() {
        assert_eq!(render("[{n}]", Elided::Exact(12_345)), "[12,345]");
        assert_eq!(render("[{n}]", Elided::Exact(999)), "[999]");
        assert_eq!(render("[{n}] {n}", Elided::Exact(1_000_000)), "[1,000,000] 1,000,000");
        assert_eq!(render("[{n}]", Elided::About(1_230_000)), "[~1,230,000]");
        assert!(DEFAULT_MARKER.contains("{n}"));
        let note = render_note(DEFAULT_MARKER.trim(), 1234, false, Elided::About(56_700));
        assert_eq!(note, "[… 1,234 items, ~56,700 tokens elided …]");
        assert_eq!(render_note("[{n} cut]", 1, true, Elided::Exact(3)), "[1 member, 3 cut]");
        assert_eq!(render_note("[cut]", 2, true, Elided::Exact(3)), "[cut] (2 members, 3 tokens)");
        assert_eq!(render_short_note(DEFAULT_MARKER.trim(), 1234, false), "[… 1,234 items …]");
        assert_eq!(render_short_note("<<{n} tokens cut>>", 1, true), "<<1 member>>");
        assert_eq!(render_short_note("{n} tokens cut", 2, false), "2 items");
        assert_eq!(render_short_note("[cut]", 2, true), "[cut] (2 members)");
    }

    #[test]
    fn estimates_are_rounded_and_close() {
        assert_eq!(three_significant_digits(123_456), 123_000);
        assert_eq!(three_significant_digits(999), 999);
        assert_eq!(three_significant_digits(99_951), 100_000);
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let text =
            (0..40_000).map(|i| format!("line {i}: status ok, took {} ms", i % 97)).collect::<Vec<_>>().join("\n");
        let exact = tokenizer.count(&text);
        let Elided::About(estimate) = Elided::estimated(density(&tokenizer, &text), text.len()) else {
            panic!("not estimated")
        };
        assert!(estimate.abs_diff(exact) * 20 < exact, "{estimate} vs {exact}");
    }
}
