//! `lines`: whole lines from the start and the end of a text around the elision marker, for logs and
//! command output, where half a line is noise.

use memchr::{memchr, memrchr};

use super::sides::{Frame, Steps};
use crate::tokenizer::Tokenizer;

/// `Some(text)` as whole first and last lines around the marker, or `None` when not one line fits.
pub(super) fn lines(tokenizer: &Tokenizer, text: &str, max_tokens: usize, marker: &str) -> Option<String> {
    let frame = Frame::new(tokenizer, text, max_tokens, marker);
    let content = max_tokens.checked_sub(frame.widest_marker())?;
    let steps = LineSteps { bytes: text.as_bytes() };
    // First guess: lines counted one by one, half the room to the head, the rest to the tail, then any
    // room the tail left back to the head.
    let mut used = 0;
    let mut head = steps.take(0, text.len(), content.div_ceil(2), &mut used, |head| steps.longer_head(head), tokenizer);
    let mut tail = text.len();
    let mut tail_used = 0;
    tail = steps.take(tail, head, content - used, &mut tail_used, |tail| steps.longer_tail(head, tail), tokenizer);
    used += tail_used;
    head = steps.take(head, tail, content - used, &mut used, |head| steps.longer_head(head), tokenizer);
    let (cut, head, tail) = frame.settle(&steps, head, tail)?;
    (head > 0 || tail < text.len()).then_some(cut)
}

/// Sides that move one line (up to and including its `\n`) at a time.
struct LineSteps<'a> {
    bytes: &'a [u8],
}

impl LineSteps<'_> {
    /// Move a side from `from` one line at a time (with `next`) while the lines fit in `room` tokens and
    /// stay short of `limit`; adds the tokens taken to `used`.
    fn take(
        &self,
        from: usize,
        limit: usize,
        room: usize,
        used: &mut usize,
        next: impl Fn(usize) -> Option<usize>,
        tokenizer: &Tokenizer,
    ) -> usize {
        let (mut at, mut taken) = (from, 0);
        while let Some(step) = next(at) {
            let line = if step > at { self.bytes.get(at..step) } else { self.bytes.get(step..at) };
            let crosses = if step > at { step >= limit } else { step <= limit };
            let text = line.and_then(|line| std::str::from_utf8(line).ok()).unwrap_or_default();
            match tokenizer.count_up_to(text, room - taken) {
                Some(tokens) if !crosses => {
                    taken += tokens;
                    at = step;
                }
                _ => break,
            }
        }
        *used += taken;
        at
    }
}

impl Steps for LineSteps<'_> {
    fn longer_head(&self, head: usize) -> Option<usize> {
        memchr(b'\n', self.bytes.get(head..)?).map(|newline| head + newline + 1)
    }

    fn shorter_head(&self, head: usize) -> Option<usize> {
        let before = self.bytes.get(..head.checked_sub(1)?)?;
        Some(memrchr(b'\n', before).map_or(0, |newline| newline + 1))
    }

    fn longer_tail(&self, _head: usize, tail: usize) -> Option<usize> {
        let before = self.bytes.get(..tail.checked_sub(1)?)?;
        Some(memrchr(b'\n', before).map_or(0, |newline| newline + 1))
    }

    fn shorter_tail(&self, _head: usize, tail: usize) -> Option<usize> {
        if tail >= self.bytes.len() {
            return None;
        }
        let after = self.bytes.get(tail..)?;
        Some(memchr(b'\n', after).map_or(self.bytes.len(), |newline| tail + newline + 1))
    }
}
