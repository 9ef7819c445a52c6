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

/// The position (in `chat.segments`) of the cut point (see the module docs); `first_new` is the position
/// of the first new segment and `low` the low watermark's budget.
pub(super) fn cut_point(
    session: &Session,
    settings: Settings<'_>,
    chat: &ChatSegments,
    first_new: usize,
    low: usize,
) -> usize {
    let Settings { packer, budget, marks, .. } = settings;
    let reserve = packer.policy().reserve_output;
    let usable = budget.saturating_sub(reserve);
    let low_usable = low.saturating_sub(reserve);
    let sizes: Vec<usize> = chat
        .segments
        .iter()
        .enumerate()
        .map(|(position, segment)| {
            if let Some(standing) = session.standing.get(&segment.id).filter(|_| position < first_new) {
                return standing.decision.tokens_after;
            }
            // A new segment as the packer will see it: at most its kind's cap.
            let cap = packer.policy().segment_caps.get(&*segment.kind).map(|cap| cap.resolve(usable));
            let limit = cap.map_or(usable, |cap| cap.saturating_add(segment.overhead)).min(usable);
            packer.size_up_to(segment, limit).min(limit)
        })
        .collect();
    let mandatory: usize = sizes_where(chat, &sizes, Segment::is_mandatory).sum();
    // A new optional segment too large to fit beside what must be kept is the packer's to drop; it is no
    // reason to move the cut point back.
    let fits = |position: usize, size: usize| {
        let optional = chat.segments.get(position).is_some_and(|segment| !segment.is_mandatory());
        if position >= first_new && optional && size.saturating_add(mandatory) > low_usable {
            0
        } else {
            size
        }
    };
    let sizes: Vec<usize> = sizes.into_iter().enumerate().map(|(position, size)| fits(position, size)).collect();
    let total: usize = sizes.iter().sum();
    let new: usize = sizes.get(first_new..).map_or(0, |new| new.iter().sum());
    let recent = super::fraction_of(marks.recent, usable);
    // Tokens the old part behind the cut point must free: what has to go, plus the part of the recent
    // window the new messages do not fill (kept whole, so not freed).
    let need = total.saturating_sub(low_usable).saturating_add(recent.saturating_sub(new));
    let mut freeable = 0usize;
    for position in (1..=first_new).rev() {
        if freeable >= need && is_boundary(chat, position) {
            return position;
        }
        let segment = chat.segments.get(position - 1);
        if segment.is_some_and(|segment| !segment.is_mandatory()) {
            freeable = freeable.saturating_add(sizes.get(position - 1).copied().unwrap_or(0));
        }
    }
    // Nothing late enough frees that much: keep the head (the system messages and the task, as sent) and
    // decide the rest again.
    let head = chat.segments.iter().take(first_new).take_while(|segment| segment.is_mandatory()).count();
    (1..=head).rev().find(|&position| is_boundary(chat, position)).unwrap_or(0)
}

fn sizes_where<'a>(
    chat: &'a ChatSegments,
    sizes: &'a [usize],
    keep: impl Fn(&Segment) -> bool + 'a,
) -> impl Iterator<Item = usize> + 'a {
    chat.segments.iter().zip(sizes).filter(move |(segment, _)| keep(segment)).map(|(_, &size)| size)
}

/// Whether the prompt may be cut before segment `position`: it starts a message and no group spans it.
fn is_boundary(chat: &ChatSegments, position: usize) -> bool {
    let (Some(before), Some(after)) = (position.checked_sub(1), Some(position)) else { return true };
    let owner = |index: usize| chat.owners.get(index).copied();
    let group = |index: usize| chat.segments.get(index).and_then(|segment| segment.group.clone());
    owner(before) != owner(after) && (group(before).is_none() || group(before) != group(after))
}
