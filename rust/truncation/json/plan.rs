//! Sharing a container's budget among its members.
//!
//! Members are taken in the order they are shown: an array's alternately from the front and the back, an
//! object's in order (one that does not fit is skipped, up to a few: an object's members can go anywhere).
//! Each is written whole if it fits, or reduced to a share (a string cut in the middle, a container
//! planned again with the share as its budget). The shares are a water level: every reduced member gets
//! the same share of what the whole ones leave, and a member is whole only if it is no bigger than that
//! share, so a big member never crowds out the small fields after it and a small one is never cut. Taking
//! a member must keep the share at or above a floor (a quarter of the room) and at or above what each
//! reduced member needs to show anything (`need`: its brackets, its note and its smallest member).
//!
//! The end of the room is where granularity bites, so three things keep it from going unused: a last
//! member may take what is left below the floor; when everything so far is whole and the next member does
//! not fit, the last whole one is demoted to share with it; and failing both, the members from there on
//! are shown as stubs (only their notes) while they fit. Conversely a note is not written for a few members that take no
//! more room than it would.
//!
//! Sizes are exact token counts of each member written compactly, counted only up to the room (a huge
//! member costs the room, not its length); the small errors of adding them up (tokens merge across
//! separators) are the root search's to absorb.

use std::borrow::Cow;

use rustc_hash::FxHashSet;

use super::render::Reducer;
use super::scan::{Member, Span};
use super::BRACKETS;
use crate::truncation::marker::{render_note, render_short_note, Elided};

/// Tokens of the `,` before a member.
const SEPARATOR: usize = 1;
/// The share of a reduced member is at least the room divided by this.
const MAX_REDUCED: usize = 4;
/// A member longer than this many bytes per token of the room is taken to be over it, uncounted (even
/// pretty-printed JSON takes far fewer bytes per token, whitespace runs included).
const MAX_BYTES_PER_TOKEN: usize = 32;
/// How deep `need` looks for the least a container can be shown in.
const NEED_LEVELS: usize = 3;
/// Members of an object that do not fit are skipped, up to this many; then the object is done.
const MAX_SKIPPED: usize = 16;
/// Up to this many members left out are shown instead of the note when they take no more room.
const INSTEAD_OF_NOTE: usize = 4;

/// How a member is shown.
#[derive(Debug, Clone, Copy)]
pub(super) enum Show {
    /// Written compactly, in this many tokens (its key included).
    Whole(usize),
    /// Reduced to the plan's share, after its key of `key_tokens` tokens.
    Reduced { key_tokens: usize },
}

/// A member that is shown.
pub(super) struct Shown {
    pub(super) index: usize,
    pub(super) member: Member,
    pub(super) show: Show,
}

/// Which members of a container are shown, and how.
pub(super) struct Plan {
    pub(super) object: bool,
    pub(super) count: usize,
    /// In document order.
    pub(super) shown: Vec<Shown>,
    /// How many of `shown` come from the front (the note, if any, goes after them).
    pub(super) front: usize,
    /// The share of each reduced member.
    pub(super) share: usize,
}

/// The water level while members are taken: tokens of the whole members and of every member's
/// separator and key, how many are reduced, and the largest whole one.
#[derive(Default, Clone)]
struct Level {
    fixed: usize,
    reduced: usize,
    largest_whole: usize,
    /// The largest share one of the reduced members needs.
    largest_need: usize,
}

impl Level {
    /// The share each reduced member would get with `fixed` tokens fixed and `reduced` members reduced.
    fn share(room: usize, fixed: usize, reduced: usize) -> Option<usize> {
        room.checked_sub(fixed)?.checked_div(reduced)
    }
}

/// What taking one more member would do.
enum Take {
    Whole(usize),
    Reduced {
        key_tokens: usize,
        need: usize,
    },
    /// Reduced to the room left, which is under the floor: the last member taken.
    Last {
        key_tokens: usize,
        need: usize,
    },
    No,
}

impl Level {
    fn take(&mut self, take: &Take) {
        match *take {
            Take::Whole(size) => {
                (self.fixed, self.largest_whole) = (self.fixed + SEPARATOR + size, self.largest_whole.max(size));
            }
            Take::Reduced { key_tokens, need } | Take::Last { key_tokens, need } => {
                (self.fixed, self.reduced) = (self.fixed + SEPARATOR + key_tokens, self.reduced + 1);
                self.largest_need = self.largest_need.max(need);
            }
            Take::No => {}
        }
    }
}

/// The index of the `taken`-th member shown: an object's in order, an array's from both ends in turn.
fn candidate(object: bool, count: usize, taken: usize) -> usize {
    match taken % 2 {
        _ if object => taken,
        0 => taken / 2,
        _ => count - 1 - taken / 2,
    }
}

impl Reducer<'_, '_> {
    /// The plan for the container at `span` in `budget` tokens; `None` when it cannot be listed.
    pub(super) fn plan(&mut self, span: Span, budget: usize) -> Option<Plan> {
        let listing = self.listing(span)?;
        let (object, count) = (listing.object, listing.count);
        let all = budget.saturating_sub(BRACKETS);
        let note = self.note_estimate(span, count, object);
        let with_note = all.saturating_sub(note);
        let (mut level, mut shown, mut skipped) = (Level::default(), Vec::new(), 0);
        let (mut rejected, mut demoted, mut taken) = (None, None, 0);
        while taken < count {
            let index = candidate(object, count, taken);
            let Some(member) = self.listing(span).and_then(|listing| listing.get(index)) else { break };
            let room = if taken + 1 == count && skipped == 0 { all } else { with_note };
            let take = self.take(&level, member, room, demoted.is_some());
            level.take(&take);
            match take {
                Take::Whole(size) => shown.push(Shown { index, member, show: Show::Whole(size) }),
                Take::Reduced { key_tokens, .. } => {
                    shown.push(Shown { index, member, show: Show::Reduced { key_tokens } });
                }
                Take::Last { key_tokens, .. } => {
                    shown.push(Shown { index, member, show: Show::Reduced { key_tokens } });
                    break;
                }
                // Every member so far whole, and no room for this one: the last one reduced instead, and
                // this one tried again.
                Take::No if level.reduced == 0 && demoted.is_none() => {
                    let undo = (level.clone(), shown.len(), shown.last().map(|last| last.show));
                    demoted = Some(self.demote(&mut level, &mut shown, room).then_some(undo));
                    continue;
                }
                Take::No => {
                    // Still no room beside the member demoted: undone (the stub below may use the room).
                    if let Some(Some((before, shown_then, Some(show)))) = demoted.replace(None) {
                        let length = shown.len();
                        if let Some(last) = shown.last_mut().filter(|_| shown_then == length) {
                            (last.show, level) = (show, before);
                        }
                    }
                    rejected = rejected.or(Some(taken));
                    // An object's members can be left out anywhere; skip a few that do not fit.
                    if !object || skipped >= MAX_SKIPPED {
                        break;
                    }
                    skipped += 1;
                }
            }
            taken += 1;
        }
        if let Some(first) = rejected.filter(|_| level.reduced == 0) {
            self.stubs(span, &mut level, &mut shown, first, with_note);
        }
        let room = if shown.len() == count { all } else { with_note };
        let share = Level::share(room, level.fixed, level.reduced).unwrap_or(0);
        shown.sort_by_key(|shown| shown.index);
        if shown.len() < count {
            self.instead_of_note(span, count, note, &mut shown);
        }
        let front = if object || shown.len() == count { shown.len() } else { shown.len().div_ceil(2) };
        Some(Plan { object, count, shown, front, share })
    }

    /// How `member` would be taken, given the members taken so far.
    fn take(&mut self, level: &Level, member: Member, room: usize, demoted: bool) -> Take {
        let floor = self.min_share.max(room / MAX_REDUCED);
        if let Some(size) = self.size(member.value, member.key, room) {
            let fixed = level.fixed + SEPARATOR + size;
            let fits = match Level::share(room, fixed, level.reduced) {
                _ if level.reduced == 0 => fixed <= room,
                Some(share) => share >= floor.max(level.largest_whole).max(size),
                None => false,
            };
            if fits {
                return Take::Whole(size);
            }
        }
        let Some(need) = self.need(member.value, NEED_LEVELS) else { return Take::No };
        let key_tokens = member.key.map_or(0, |key| self.tokenizer.count(self.document.get(key)) + 1);
        let Some(share) = Level::share(room, level.fixed + SEPARATOR + key_tokens, level.reduced + 1) else {
            return Take::No;
        };
        if share >= floor.max(level.largest_whole).max(level.largest_need).max(need) {
            return Take::Reduced { key_tokens, need };
        }
        // Below the floor: only as the one reduced member, in the room the whole ones left (or beside the
        // member demoted to make room), if that is as much as each needs.
        let alone = level.reduced == 0 || (demoted && level.reduced == 1);
        if alone && share >= need.max(level.largest_need) {
            Take::Last { key_tokens, need }
        } else {
            Take::No
        }
    }

    /// The last member taken, whole, made the one reduced member (when it can be): the members after it
    /// then share the room with it instead of finding none. If none fits after all, its share is the
    /// room it had, in which it is written whole anyway.
    fn demote(&mut self, level: &mut Level, shown: &mut [Shown], room: usize) -> bool {
        let Some(last) = shown.last() else { return false };
        let (Show::Whole(size), member) = (last.show, last.member) else { return false };
        let Some(need) = self.need(member.value, NEED_LEVELS) else { return false };
        let key_tokens = member.key.map_or(0, |key| self.tokenizer.count(self.document.get(key)) + 1);
        let fixed = level.fixed.saturating_sub(size) + key_tokens;
        if Level::share(room, fixed, 1).is_none_or(|share| share < need) {
            return false;
        }
        let others = shown.iter().rev().skip(1).filter_map(|shown| match shown.show {
            Show::Whole(size) => Some(size),
            Show::Reduced { .. } => None,
        });
        *level = Level { fixed, reduced: 1, largest_whole: others.max().unwrap_or(0), largest_need: need };
        if let Some(last) = shown.last_mut() {
            last.show = Show::Reduced { key_tokens };
        }
        true
    }

    /// When nothing is reduced, the members from the `first` taken that did not fit on, reduced to their
    /// stubs (a container with only its note, a string with only a little around the marker) while the room
    /// left holds them: the room says what is there rather than go unused (an array's first and last
    /// items, an object's next few keys).
    fn stubs(&mut self, span: Span, level: &mut Level, shown: &mut Vec<Shown>, first: usize, room: usize) {
        let Some((object, count)) = self.listing(span).map(|listing| (listing.object, listing.count)) else { return };
        let already: FxHashSet<usize> = shown.iter().map(|shown| shown.index).collect();
        let mut passed = 0;
        for taken in first..count {
            let index = candidate(object, count, taken);
            if already.contains(&index) {
                continue;
            }
            let Some(member) = self.listing(span).and_then(|listing| listing.get(index)) else { return };
            // An array shows a run from each end, so its stubs stop at the first that cannot be one; an
            // object's members can go anywhere (a few scalars are passed over, as the plan skips a few).
            let Some(stub) = self.stub(member) else {
                passed += 1;
                if object && passed <= MAX_SKIPPED {
                    continue;
                }
                return;
            };
            let key_tokens = member.key.map_or(0, |key| self.tokenizer.count(self.document.get(key)) + 1);
            let fixed = level.fixed + SEPARATOR + key_tokens;
            if Level::share(room, fixed, level.reduced + 1).is_none_or(|share| share < stub.max(level.largest_need)) {
                return;
            }
            level.take(&Take::Last { key_tokens, need: stub });
            shown.push(Shown { index, member, show: Show::Reduced { key_tokens } });
        }
    }

    /// The tokens of `member`'s stub; `None` for a scalar, which has none.
    fn stub(&mut self, member: Member) -> Option<usize> {
        match self.document.byte(member.value.start)? {
            b'[' | b'{' => {
                let (count, object) = self.listing(member.value).map(|listing| (listing.count, listing.object))?;
                Some(BRACKETS + self.note_estimate(member.value, count, object))
            }
            b'"' if self.decode(member.value) => Some(self.min_share),
            _ => None,
        }
    }

    /// The few members `shown` (in order) leaves out added whole when, together, they take no more
    /// tokens than the note that would say they went.
    fn instead_of_note(&mut self, span: Span, count: usize, note: usize, shown: &mut Vec<Shown>) {
        if count - shown.len() > INSTEAD_OF_NOTE {
            return;
        }
        let mut next = 0;
        let mut missing = Vec::new();
        for index in shown.iter().map(|shown| shown.index).chain([count]) {
            missing.extend(next..index);
            next = index + 1;
        }
        let mut added = Vec::new();
        let mut tokens = 0;
        for index in missing {
            let Some(member) = self.listing(span).and_then(|listing| listing.get(index)) else { return };
            let Some(size) = self.size(member.value, member.key, note) else { return };
            tokens += SEPARATOR + size;
            added.push(Shown { index, member, show: Show::Whole(size) });
        }
        if tokens <= note {
            shown.extend(added);
            shown.sort_by_key(|shown| shown.index);
        }
    }

    /// Tokens of the note for a container of `count` members spanning `span`, at its widest.
    fn note_estimate(&self, span: Span, count: usize, object: bool) -> usize {
        // About three bytes a token: the number is about as long as it will be.
        let note = if self.short_note(span) {
            render_short_note(self.note_marker, count, object)
        } else {
            render_note(self.note_marker, count, object, Elided::Exact(span.len() / 3))
        };
        let note = serde_json::to_string(&note).unwrap_or_default();
        let key = if object { self.tokenizer.count("\"…\":") } else { 0 };
        self.tokenizer.count(&note) + SEPARATOR + key
    }

    /// The least share worth giving the value at `value` reduced (`None`: it cannot be reduced): for a
    /// string, a marker and a few tokens; for a container, its brackets, its note and the least its first
    /// member can be shown in (looked into `levels` levels deep; below that, as little as a string).
    fn need(&mut self, value: Span, levels: usize) -> Option<usize> {
        match self.document.byte(value.start)? {
            b'[' | b'{' => {}
            b'"' => return self.decode(value).then_some(self.min_share),
            _ => return None,
        }
        let Some(listing) = self.listing(value) else { return Some(self.min_share) };
        let (object, count) = (listing.object, listing.count);
        // An object's plan skips members that do not fit: any of its first few can be the one shown.
        let looked = if object { count.min(MAX_SKIPPED + 1) } else { count.min(1) };
        let members: Vec<Member> = (0..looked).filter_map(|index| listing.get(index)).collect();
        let Some(&first) = members.first() else { return Some(BRACKETS) };
        let note = if count > 1 { self.note_estimate(value, count, object) } else { 0 };
        let cap = self.min_share.saturating_mul(2);
        let mut least = members.into_iter().filter_map(|member| self.size(member.value, member.key, cap)).min();
        if least.is_none() {
            let key = first.key.map_or(0, |key| self.tokenizer.count(self.document.get(key)) + 1);
            least = match levels.checked_sub(1) {
                Some(levels) => self.need(first.value, levels).map(|need| key + need),
                None => Some(key + self.min_share),
            };
        }
        // Nothing in it can be shown in little room: it is shown as its note alone.
        Some(BRACKETS + note + least.map_or(0, |least| SEPARATOR + least))
    }

    /// Tokens of `key:value` written compactly, if at most `cap`.
    pub(super) fn size(&mut self, value: Span, key: Option<Span>, cap: usize) -> Option<usize> {
        let start = key.map_or(value.start, |key| key.start);
        match self.sizes.get(&start) {
            Some(&Ok(size)) => return (size <= cap).then_some(size),
            Some(&Err(over)) if over >= cap => return None,
            _ => {}
        }
        let bytes = value.len() + key.map_or(0, |key| key.len() + 1);
        let size = if bytes > cap.saturating_mul(MAX_BYTES_PER_TOKEN) {
            Err(cap)
        } else {
            let text = if key.is_none() && self.document.is_compact(value) {
                Cow::Borrowed(self.document.get(value))
            } else {
                let mut text = String::with_capacity(bytes);
                if let Some(key) = key {
                    text.push_str(self.document.get(key));
                    text.push(':');
                }
                self.document.minify_into(value, &mut text);
                Cow::Owned(text)
            };
            self.tokenizer.count_up_to(&text, cap).ok_or(cap)
        };
        self.sizes.insert(start, size);
        size.ok()
    }
}
