//! Where a new epoch's changes begin: the cut point.
//!
//! A change at position p costs every token after p, so the cut point is as late as it can be: the
//! latest unit boundary with enough behind it to free the tokens the low watermark asks for and still keep
//! the recent window (the newest tokens, new messages included) whole. What goes is the history just
//! before the recent window; the oldest history, the system prompt and the task stay where the cache has
//! them. The packer then decides what behind the cut point goes (stubs first, oldest first), so the freed
//! tokens come from the part of the suffix furthest from the recent turns.

use super::{Session, Settings};
use crate::chat::ChatSegments;
use crate::segment::Segment;

/// The position (in `live`) of the cut point (see the module docs); `first_new` is the position of the first new segment and
/// `low` the low watermark's budget.
pub(super) fn cut_point(
    session: &Session,
    settings: Settings<'_>,
    chat: &ChatSegments,
    live: &[usize],
    first_new: usize,
    low: usize,
) -> usize {
    let Settings { packer, budget, marks, .. } = settings;
    let reserve = packer.policy().reserve_output;
    let usable = budget.saturating_sub(reserve);
    let recent = super::fraction(marks.recent, usable);
    let sizes: Vec<usize> = live
        .iter()
        .enumerate()
        .map(|(position, &index)| {
            let Some(segment) = chat.segments.get(index) else { return 0 };
            if let Some(standing) = session.standing.get(&segment.id).filter(|_| position < first_new) {
                return standing.decision.tokens_after;
            }
            // A new segment as the packer will see it: at most its kind's cap, and if it may be dropped, at
            // most the recent window (what is larger is the packer's to keep or drop, not a reason to move
            // the cut point back).
            let cap = packer.policy().segment_caps.get(&*segment.kind).map(|cap| cap.resolve(usable));
            let mut limit = cap.map_or(usable, |cap| cap.saturating_add(segment.overhead)).min(usable);
            if !segment.is_mandatory() {
                limit = limit.min(recent.max(segment.overhead));
            }
            packer.size_up_to(segment, limit).min(limit)
        })
        .collect();
    let total: usize = sizes.iter().sum();
    let new: usize = sizes.get(first_new..).map_or(0, |new| new.iter().sum());
    // Tokens the old part behind the cut point must hold: what has to go, plus the part of the recent
    // window the new messages do not fill.
    let free = total.saturating_sub(low.saturating_sub(reserve));
    let need = free.saturating_add(recent.saturating_sub(new));
    let mut behind = 0usize;
    for position in (1..=first_new).rev() {
        if behind >= need && is_boundary(chat, live, position) {
            return position;
        }
        behind = behind.saturating_add(sizes.get(position - 1).copied().unwrap_or(0));
    }
    // Nothing late enough frees that much: keep the head (the system messages and the task, as sent) and
    // decide the rest again.
    let head = live.iter().take_while(|&&index| chat.segments.get(index).is_some_and(Segment::is_mandatory)).count();
    (1..=head.min(first_new)).rev().find(|&position| is_boundary(chat, live, position)).unwrap_or(0)
}

/// Whether the prompt may be cut before `live[position]`: it starts a message and no group spans it.
fn is_boundary(chat: &ChatSegments, live: &[usize], position: usize) -> bool {
    let (Some(&before), Some(&after)) = (live.get(position.wrapping_sub(1)), live.get(position)) else {
        return true;
    };
    let owner = |index: usize| chat.owners.get(index).copied();
    let group = |index: usize| chat.segments.get(index).and_then(|segment| segment.group.clone());
    owner(before) != owner(after) && (group(before).is_none() || group(before) != group(after))
}
