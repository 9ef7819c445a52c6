//! Token sizes, counted lazily and only as far as a decision needs.
//!
//! Packing a long history into a small budget decides most segments by "does not fit in the room that is
//! left", and the room is small. Counting every segment in full first would make packing cost as much as
//! tokenising the whole history; instead a segment is counted up to the limit a decision asks about
//! (`Tokenizer::count_up_to` stops there), and in full only when it is kept, cut or mandatory. A segment
//! that was never counted in full reports a lower bound (`counted == false`). Known counts come from the
//! packer's memo, and every count made here goes back into it. Sizes include each segment's fixed
//! `overhead`; the memo holds counts of texts alone.

use super::allocate::Allocator;
use crate::segment::Segment;
use crate::tokenizer::Tokenizer;

/// A fit check counts texts in parallel batches of about a quarter of what the room left could hold (at
/// about four bytes per token), so that it reads little past the point where the total no longer fits.
const BYTES_PER_TOKEN: usize = 4;
const BATCHES_PER_ROOM: usize = 4;
const MIN_BATCH_BYTES: usize = 16 * 1024;

/// The bytes of text to count ahead at once when `room` tokens are left.
pub(super) fn batch_bytes(room: usize) -> usize {
    (room.saturating_mul(BYTES_PER_TOKEN) / BATCHES_PER_ROOM).max(MIN_BATCH_BYTES)
}

/// A text's count from the memo or an external counter: exact, or a lower bound (it was read only until it
/// could not fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    pub(super) tokens: usize,
    pub(super) exact: bool,
}

/// Per segment: its size as given (exact, or a lower bound), whether that is exact, and its planned size.
pub(super) struct Sizes {
    before: Vec<usize>,
    counted: Vec<bool>,
    planned: Vec<usize>,
}

impl Sizes {
    /// Sizes from what is known (the memo or an external counter); the rest is counted later.
    pub(super) fn new(known: &[Option<Known>], segments: &[Segment]) -> Self {
        let overhead = |index: usize| segments.get(index).map_or(0, |segment| segment.overhead);
        let before: Vec<usize> = known
            .iter()
            .enumerate()
            .map(|(index, count)| count.map_or(0, |count| count.tokens).saturating_add(overhead(index)))
            .collect();
        let counted = known.iter().map(|count| count.is_some_and(|count| count.exact)).collect();
        Self { planned: before.clone(), counted, before }
    }

    /// The segment's tokens as given: exact when `counted`, else a lower bound.
    pub(super) fn before(&self, index: usize) -> usize {
        self.before.get(index).copied().unwrap_or(0)
    }

    /// Whether `before` is exact.
    pub(super) fn counted(&self, index: usize) -> bool {
        self.counted.get(index).copied().unwrap_or(false)
    }

    /// The size the allocator plans for it (cut sizes are below `before`).
    pub(super) fn planned(&self, index: usize) -> usize {
        self.planned.get(index).copied().unwrap_or(0)
    }

    pub(super) fn set_planned(&mut self, index: usize, size: usize) {
        if let Some(slot) = self.planned.get_mut(index) {
            *slot = size;
        }
    }

    /// Whether the planned size is a cut (below the size as given).
    pub(super) fn is_cut(&self, index: usize) -> bool {
        self.planned(index) < self.before(index)
    }

    /// A new count (exact, or a larger lower bound); a cut keeps its planned size.
    fn record(&mut self, index: usize, count: usize, exact: bool) {
        if let (Some(before), Some(counted), Some(planned)) =
            (self.before.get_mut(index), self.counted.get_mut(index), self.planned.get_mut(index))
        {
            *planned = if *planned < *before { (*planned).min(count) } else { count };
            *before = count;
            *counted = exact;
        }
    }

    /// What was learnt about texts while packing (exact counts, or larger lower bounds), for the memo.
    pub(super) fn counted_now<'k>(
        &'k self,
        known: &'k [Option<Known>],
        segments: &'k [Segment],
    ) -> impl Iterator<Item = (usize, Known)> + 'k {
        known.iter().enumerate().filter_map(|(index, before)| {
            let overhead = segments.get(index).map_or(0, |segment| segment.overhead);
            let now = Known { tokens: self.before(index).saturating_sub(overhead), exact: self.counted(index) };
            let learnt = match before {
                None => now.tokens > 0 || now.exact,
                Some(before) => !before.exact && (now.exact || now.tokens > before.tokens),
            };
            learnt.then_some((index, now))
        })
    }
}

impl Allocator<'_> {
    /// The exact size of segment `index`, counting it in full if it was not yet.
    pub(super) fn exact(&self, sizes: &mut Sizes, index: usize) -> usize {
        if !sizes.counted(index) {
            if let (Some(tokenizer), Some(segment)) = (self.tokenizer, self.segments.get(index)) {
                sizes.record(index, tokenizer.count(&segment.text).saturating_add(segment.overhead), true);
            }
        }
        sizes.planned(index)
    }

    /// The planned size of segment `index` if it is at most `limit`, counting no further than that;
    /// `None` if it is larger.
    pub(super) fn within(&self, sizes: &mut Sizes, index: usize, limit: usize) -> Option<usize> {
        if sizes.counted(index) || sizes.before(index) > limit || sizes.is_cut(index) {
            let size = sizes.planned(index);
            return (size <= limit).then_some(size);
        }
        let (Some(tokenizer), Some(segment)) = (self.tokenizer, self.segments.get(index)) else {
            return Some(sizes.planned(index));
        };
        let Some(room) = limit.checked_sub(segment.overhead) else {
            sizes.record(index, limit.saturating_add(1).max(segment.overhead), false);
            return None;
        };
        let count = read(tokenizer, &segment.text, room, sizes.before(index).saturating_sub(segment.overhead));
        let size = count.tokens.saturating_add(segment.overhead);
        sizes.record(index, size, count.exact);
        (count.exact && size <= limit).then_some(size)
    }
}

/// A text is read in full when it is at most this many bytes per token of the limit asked about: that costs
/// about as much as reading it up to the limit, and it is never read again.
const FULL_READ_BYTES_PER_TOKEN: usize = 4;

/// The count of `text` as far as a decision about `limit` tokens needs it: exact, or a lower bound above
/// `limit`. A text already read up to `read_before` tokens is read at least twice as far this time, so that
/// asking again with growing limits (stubbing tries several plans) costs at most twice the last read.
pub(super) fn read(tokenizer: Tokenizer, text: &str, limit: usize, read_before: usize) -> Known {
    let reach = limit.max(read_before.saturating_mul(2));
    if text.len() <= reach.saturating_mul(FULL_READ_BYTES_PER_TOKEN) {
        return Known { tokens: tokenizer.count(text), exact: true };
    }
    match tokenizer.count_up_to(text, reach) {
        Some(tokens) => Known { tokens, exact: true },
        None => Known { tokens: reach.saturating_add(1), exact: false },
    }
}
