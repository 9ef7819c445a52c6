//! Cutting one text to a token limit, by strategy: `head`, `tail`, `middle`, `lines`, `json`, `auto`.
//!
//! Every strategy is exact to the token (its result counts at most the limit, marker included) and derives
//! its result from the original: a prefix, a suffix, a prefix and a suffix around the elision marker, or a
//! JSON document of the original's values. A strategy that cannot apply falls back to one that can, and
//! says why (`Truncated::fallback`); the packer puts that in the decision log.

mod json;
mod lines;
mod marker;
mod middle;
mod sides;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

pub use marker::DEFAULT_MARKER;
pub(crate) use marker::{render, sampled_density, Elided};

use crate::error::{Result, SchedError};
use crate::tokenizer::{Keep, Tokenizer};

/// A built-in truncation strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Keep the start.
    Head,
    /// Keep the end.
    Tail,
    /// Keep the start and the end around the elision marker.
    Middle,
    /// Keep whole lines from the start and the end around the marker.
    Lines,
    /// Keep a smaller, valid JSON document made of the original's values.
    Json,
    /// `json` if the text is JSON, `lines` if it has several lines, otherwise `middle`.
    Auto,
}

impl Strategy {
    /// Every built-in strategy.
    pub const ALL: [Strategy; 6] =
        [Strategy::Head, Strategy::Tail, Strategy::Middle, Strategy::Lines, Strategy::Json, Strategy::Auto];

    /// The strategy's name as the Python API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Head => "head",
            Strategy::Tail => "tail",
            Strategy::Middle => "middle",
            Strategy::Lines => "lines",
            Strategy::Json => "json",
            Strategy::Auto => "auto",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = SchedError;

    fn from_str(name: &str) -> Result<Self> {
        Strategy::ALL.into_iter().find(|strategy| strategy.name() == name).ok_or_else(|| {
            SchedError::InvalidArgument(format!(
                "unknown truncation strategy {name:?}; the built-in ones are {}",
                Strategy::ALL.map(Strategy::name).join(", ")
            ))
        })
    }
}

/// A text cut to a limit: the text, the strategy that produced it, and why the requested one was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated<'t> {
    /// The cut text (borrowed when it is a prefix or suffix, or the whole text).
    pub text: Cow<'t, str>,
    /// The strategy that produced `text`.
    pub strategy: Strategy,
    /// Why `strategy` is not the one asked for (or, for `auto`, what it tried first), if so.
    pub fallback: Option<String>,
}

impl<'t> Truncated<'t> {
    fn by(strategy: Strategy, text: impl Into<Cow<'t, str>>) -> Self {
        Self { text: text.into(), strategy, fallback: None }
    }

    fn because(mut self, reason: String) -> Self {
        self.fallback = Some(match self.fallback.take() {
            Some(earlier) => format!("{reason}; {earlier}"),
            None => reason,
        });
        self
    }
}

impl Tokenizer {
    /// `text` in at most `max_tokens` tokens by `strategy`, with `marker` (in which `{n}` becomes the
    /// tokens elided) where text was removed. A text that fits comes back whole and borrowed.
    pub fn cut<'t>(&self, text: &'t str, max_tokens: usize, strategy: Strategy, marker: &str) -> Truncated<'t> {
        if self.fits(text, max_tokens) {
            return Truncated::by(strategy, text);
        }
        match strategy {
            Strategy::Head => Truncated::by(strategy, self.truncate(text, max_tokens, Keep::Head)),
            Strategy::Tail => Truncated::by(strategy, self.truncate(text, max_tokens, Keep::Tail)),
            Strategy::Middle => self.cut_middle(text, max_tokens, marker),
            Strategy::Lines => self.cut_lines(text, max_tokens, marker),
            Strategy::Json => match json::json(self, text, max_tokens, marker) {
                Ok(reduced) => Truncated::by(strategy, reduced),
                Err(reason) => {
                    let fallback = if is_multiline(text) { Strategy::Lines } else { Strategy::Middle };
                    self.cut(text, max_tokens, fallback, marker).because(format!("json: {reason}"))
                }
            },
            Strategy::Auto => self.cut_auto(text, max_tokens, marker),
        }
    }

    fn cut_middle<'t>(&self, text: &'t str, max_tokens: usize, marker: &str) -> Truncated<'t> {
        match middle::middle(self, text, max_tokens, marker) {
            Some(cut) => Truncated::by(Strategy::Middle, cut),
            None => Truncated::by(Strategy::Head, self.truncate(text, max_tokens, Keep::Head))
                .because(format!("middle: the marker does not fit in {max_tokens} tokens")),
        }
    }

    fn cut_lines<'t>(&self, text: &'t str, max_tokens: usize, marker: &str) -> Truncated<'t> {
        match lines::lines(self, text, max_tokens, marker) {
            Some(cut) => Truncated::by(Strategy::Lines, cut),
            None => self
                .cut_middle(text, max_tokens, marker)
                .because(format!("lines: no whole line fits in {max_tokens} tokens with the marker")),
        }
    }

    fn cut_auto<'t>(&self, text: &'t str, max_tokens: usize, marker: &str) -> Truncated<'t> {
        let mut tried = None;
        if matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'[')) {
            match json::json(self, text, max_tokens, marker) {
                Ok(reduced) => return Truncated::by(Strategy::Json, reduced),
                Err(reason) => tried = Some(format!("json: {reason}")),
            }
        }
        let cut = if is_multiline(text) {
            let by_lines = self.cut_lines(text, max_tokens, marker);
            // Whole lines can waste the room when the lines at the cut are long; then cut mid-line.
            let used = self.count(&by_lines.text);
            if by_lines.strategy == Strategy::Lines && used * 2 < max_tokens {
                self.cut_middle(text, max_tokens, marker)
                    .because(format!("lines: whole lines used only {used} of {max_tokens} tokens"))
            } else {
                by_lines
            }
        } else {
            self.cut_middle(text, max_tokens, marker)
        };
        match tried {
            Some(reason) => cut.because(reason),
            None => cut,
        }
    }
}

/// At least two non-empty lines.
fn is_multiline(text: &str) -> bool {
    text.trim().contains('\n')
}

#[cfg(test)]
mod tests;
