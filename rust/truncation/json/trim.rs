//! The last resort for a small document a little over the limit: everything written whole but one
//! container, which leaves out members behind its note (an object its last ones, an array its middle
//! ones), as few as make it fit.
//!
//! The budget planner shares room top-down and reserves room for notes that a nearly whole document does
//! not need, so a document a few tokens over a small limit can come out far under it (39 of 53 tokens for
//! one of 54). Leaving out the fewest members of one container is the cut that keeps the most there.

use super::render::Reducer;
use super::scan::{Member, Span};

/// Containers tried, breadth first from the root.
const MAX_CONTAINERS: usize = 64;
/// Renderings tried in all.
const MAX_RENDERS: usize = 192;

impl Reducer<'_, '_> {
    /// The fullest rendering within `max_tokens` that leaves out members of one container only, and its
    /// tokens; `None` if none fits within the renderings tried.
    pub(super) fn trimmed(&mut self, max_tokens: usize) -> Option<(String, usize)> {
        let root = self.document.root();
        let mut containers = vec![root];
        let mut next = 0;
        while let Some(&span) = containers.get(next) {
            next += 1;
            let Some(members) = self.members(span) else { continue };
            for member in members {
                if containers.len() < MAX_CONTAINERS
                    && matches!(self.document.byte(member.value.start), Some(b'[' | b'{'))
                {
                    containers.push(member.value);
                }
            }
        }
        let (mut best, mut renders): (Option<(String, usize)>, usize) = (None, 0);
        for target in containers {
            let Some(count) = self.members(target).map(|members| members.len()) else { continue };
            for keep in (0..count).rev() {
                if renders >= MAX_RENDERS {
                    return best;
                }
                renders += 1;
                let mut out = String::new();
                if self.write_trimmed(root, target, keep, &mut out).is_none() {
                    break;
                }
                if let Some(tokens) = self.tokenizer.count_up_to(&out, max_tokens) {
                    if best.as_ref().is_none_or(|(_, most)| tokens > *most) {
                        best = Some((out, tokens));
                    }
                    break;
                }
            }
        }
        best
    }

    /// Every member of the container at `span`, if all are listed.
    fn members(&mut self, span: Span) -> Option<Vec<Member>> {
        let listing = self.listing(span)?;
        (0..listing.count).map(|index| listing.get(index)).collect()
    }

    /// The value at `span` written whole, except that the container `target` keeps only `keep` members
    /// (an object its first ones, an array as many from each end) and a note for the rest.
    fn write_trimmed(&mut self, span: Span, target: Span, keep: usize, out: &mut String) -> Option<()> {
        let members = self.members(span)?;
        let object = self.document.byte(span.start)? == b'{';
        let count = members.len();
        let (front, back) = match (span == target, object) {
            (false, _) => (count, 0),
            (true, true) => (keep, 0),
            (true, false) => (keep.div_ceil(2), keep / 2),
        };
        out.push(if object { '{' } else { '[' });
        let mut first = true;
        let mut separate = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
        };
        for member in members.iter().take(front) {
            separate(out);
            if let Some(key) = member.key {
                out.push_str(self.document.get(key));
                out.push(':');
            }
            let value = member.value;
            if value.start <= target.start && target.end <= value.end {
                self.write_trimmed(value, target, keep, out)?;
            } else {
                self.document.minify_into(value, out);
            }
        }
        if front + back < count {
            let start = front
                .checked_sub(1)
                .and_then(|last| members.get(last))
                .map_or(span.start + 1, |member| member.value.end);
            let end = members.get(count - back).map_or(span.end.saturating_sub(1), |member| member.start());
            let gap = Span { start, end: end.max(start) };
            let (note, _) = self.note(span, &[gap], Some(count - front - back), object);
            separate(out);
            if object {
                out.push_str(&self.note_key(span));
                out.push(':');
            }
            out.push_str(&note);
        }
        for member in members.iter().skip(count - back) {
            separate(out);
            self.document.minify_into(member.value, out);
        }
        out.push(if object { '}' } else { ']' });
        Some(())
    }
}
