//! `lines`: whole lines from the start and the end of a text around the elision marker, for logs and
//! command output, where half a line is noise.

use memchr::{memchr, memrchr};

use super::sides::{Frame, Steps};
use crate::tokenizer::{Keep, Tokenizer};

/// `Some(text)` as whole first and last lines around the marker, or `None` when not one line fits.
pub(super) fn lines(tokenizer: &Tokenizer, text: &str, max_tokens: usize, marker: &str) -> Option<String> {
    let frame = Frame::new(tokenizer, text, max_tokens, marker);
    let content = max_tokens.checked_sub(frame.widest_marker())?;
    let steps = LineSteps { bytes: text.as_bytes() };
    // First guess, from token cuts rounded to whole lines: half the room to the head, the rest to the
    // tail, then what the tail left back to the head.
    let head = steps.line_end_within(tokenizer.truncate(text, content.div_ceil(2), Keep::Head).len());
    let rest = text.get(head..).unwrap_or_default();
    let tail_room = content.saturating_sub(tokenizer.count(text.get(..head).unwrap_or_default()));
    let tail = steps.line_start_within(text.len() - tokenizer.truncate(rest, tail_room, Keep::Tail).len());
    let before_tail = text.get(..tail).unwrap_or_default();
    let head_room = content.saturating_sub(tokenizer.count(text.get(tail..).unwrap_or_default()));
    let mut head = steps.line_end_within(tokenizer.truncate(before_tail, head_room, Keep::Head).len());
    if head >= tail {
        head = steps.shorter_head(tail).unwrap_or(0);
    }
    let (cut, head, tail) = frame.settle(&steps, head, tail)?;
    (head > 0 || tail < text.len()).then_some(cut)
}

/// Sides that move one line (up to and including its `\n`) at a time.
struct LineSteps<'a> {
    bytes: &'a [u8],
}

impl LineSteps<'_> {
    /// The end of the last whole line in `..end` (0 if there is none).
    fn line_end_within(&self, end: usize) -> usize {
        self.bytes.get(..end).and_then(|before| memrchr(b'\n', before)).map_or(0, |newline| newline + 1)
    }

    /// The start of the first whole line in `start..` (the end of the text if there is none).
    fn line_start_within(&self, start: usize) -> usize {
        if start == 0 || self.bytes.get(start - 1) == Some(&b'\n') {
            return start;
        }
        self.bytes
            .get(start..)
            .and_then(|after| memchr(b'\n', after))
            .map_or(self.bytes.len(), |newline| start + newline + 1)
    }
}

impl Steps for LineSteps<'_> {
    fn longer_head(&self, head: usize, by: usize) -> Option<usize> {
        let mut end = head;
        for _ in 0..by {
            match memchr(b'\n', self.bytes.get(end..)?) {
                Some(newline) => end += newline + 1,
                None => break,
            }
        }
        (end > head).then_some(end)
    }

    fn shorter_head(&self, head: usize) -> Option<usize> {
        let before = self.bytes.get(..head.checked_sub(1)?)?;
        Some(memrchr(b'\n', before).map_or(0, |newline| newline + 1))
    }

    fn longer_tail(&self, head: usize, tail: usize, by: usize) -> Option<usize> {
        let mut start = tail;
        for _ in 0..by {
            let Some(before) = start.checked_sub(1).and_then(|end| self.bytes.get(head..end)) else { break };
            start = memrchr(b'\n', before).map_or(head, |newline| head + newline + 1);
        }
        (start < tail).then_some(start)
    }

    fn shorter_tail(&self, _head: usize, tail: usize) -> Option<usize> {
        if tail >= self.bytes.len() {
            return None;
        }
        let after = self.bytes.get(tail..)?;
        Some(memchr(b'\n', after).map_or(self.bytes.len(), |newline| tail + newline + 1))
    }
}
