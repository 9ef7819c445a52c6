//! `middle`: the longest start and end of a text, on its token boundaries, around the elision marker.

use super::sides::{Frame, Steps};
use crate::tokenizer::{Keep, Tokenizer};

/// How far past a side's current size to look for a longer candidate: a character can span four tokens.
const LOOKAHEAD: usize = 4;

/// `Some(text)` cut in the middle, or `None` when the marker alone does not fit in `max_tokens`.
pub(super) fn middle(tokenizer: &Tokenizer, text: &str, max_tokens: usize, marker: &str) -> Option<String> {
    let frame = Frame::new(tokenizer, text, max_tokens, marker);
    let content = max_tokens.checked_sub(frame.widest_marker())?;
    // Half the room to each side to start with; the tail takes what the head could not use.
    let head = tokenizer.truncate(text, content.div_ceil(2), Keep::Head);
    let rest = text.get(head.len()..).unwrap_or_default();
    let tail = tokenizer.truncate(rest, content - tokenizer.count(head), Keep::Tail);
    let steps = TokenSteps { tokenizer, text, frame: &frame };
    frame.settle(&steps, head.len(), text.len() - tail.len()).map(|(cut, _, _)| cut)
}

/// Sides that move one token at a time. The tail's candidates are those of the text after the head.
struct TokenSteps<'a> {
    tokenizer: &'a Tokenizer,
    text: &'a str,
    frame: &'a Frame<'a>,
}

impl TokenSteps<'_> {
    fn rest(&self, head: usize) -> &str {
        self.text.get(head..).unwrap_or_default()
    }

    /// The start of the longest end of the text after `head` with at most `tokens` tokens (read from the
    /// index's latest restart point too long for them when there is an index).
    fn tail_start(&self, head: usize, tokens: usize) -> usize {
        match &self.frame.index {
            Some(index) => index.tail_start(self.tokenizer, self.text, head, tokens),
            None => self.text.len() - self.tokenizer.truncate(self.rest(head), tokens, Keep::Tail).len(),
        }
    }

    /// The end of the longest start of the text with at most `tokens` tokens (read from the index's last
    /// restart point within them when there is an index, not from the start).
    fn head_end(&self, tokens: usize) -> usize {
        match &self.frame.index {
            Some(index) => index.head_end(self.tokenizer, self.text, tokens),
            None => self.tokenizer.truncate(self.text, tokens, Keep::Head).len(),
        }
    }
}

impl Steps for TokenSteps<'_> {
    fn longer_head(&self, head: usize, by: usize) -> Option<usize> {
        let tokens = self.frame.count_range(0, self.text.get(..head)?.len());
        (by..by + LOOKAHEAD).map(|extra| self.head_end(tokens + extra)).find(|&longer| longer > head)
    }

    fn shorter_head(&self, head: usize) -> Option<usize> {
        let tokens = self.frame.count_range(0, self.text.get(..head)?.len()).checked_sub(1)?;
        Some(self.head_end(tokens))
    }

    fn longer_tail(&self, head: usize, tail: usize, by: usize) -> Option<usize> {
        let tokens = self.frame.count_range(self.text.len() - self.text.get(tail..)?.len(), self.text.len());
        (by..by + LOOKAHEAD).map(|extra| self.tail_start(head, tokens + extra)).find(|&longer| longer < tail)
    }

    fn shorter_tail(&self, head: usize, tail: usize) -> Option<usize> {
        let tokens =
            self.frame.count_range(self.text.len() - self.text.get(tail..)?.len(), self.text.len()).checked_sub(1)?;
        Some(self.tail_start(head, tokens))
    }
}
