//! Sessions: one conversation packed turn after turn, its prompt's prefix kept stable for the provider's
//! prompt cache.
//!
//! Providers cache the longest prefix a prompt shares with an earlier one, and bill it at about a tenth.
//! A change at position p costs every token after p, so a session changes the prompt rarely and late:
//!
//! - **Within an epoch** every earlier decision stands (a kept message stays as it was sent, a stubbed or
//!   cut one keeps its text, an evicted one stays out) and the new messages are appended, so the prompt is
//!   the previous prompt plus the new messages, byte for byte. New messages get the chat policy as usual
//!   (the latest turn is required, an oversized result is cut at its cap).
//! - **A new epoch** starts when that would pass the high watermark, or would drop, stub or squeeze a new
//!   message, or would place one before older ones (a new system message is pinned to the head). The
//!   prompt is brought down to the low watermark in one step: everything before a cut point stays as it
//!   was, and from the cut point on the packer decides again (`choose.rs`).
//!
//! Each pack reads only the prompt's messages and the new ones (linking, segments, packing): what an
//! earlier pack evicted stays out, and its decision is kept per message for [`Session::earlier`]. Work per
//! pack is proportional to the prompt and what changed, not to the conversation. A pack is planned
//! without changing the session ([`Session::plan`]) and applied once the caller has its result
//! ([`Session::apply`]), so a failure anywhere leaves the session as it was.

mod choose;
mod report;
mod summaries;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustc_hash::FxHashMap;

pub use report::CacheReport;
use report::Sent;
use summaries::{is_summary, lineage_of, place};
pub use summaries::{Held, HeldSummaries, Outcomes, SessionRun};

use crate::chat::SummarySettings;
use crate::chat::{check_growing, is_infeasible, link, pack_segments, plan_linked, segments_numbered, Message};
use crate::chat::{Accounting, ChatSegments, Lineage, Linked, MessageRun};
use crate::error::{Result, SchedError};
use crate::packer::{Cut, Decision, Packed, Packer};
use crate::segment::{Segment, Truncation, KEPT_KIND};
use crate::tokenizer::Tokenizer;

/// The reason given for the first pack's prompt (nothing was cached before it).
pub const FIRST_PACK: &str = "the first pack";

/// The watermarks and the recent window, as fractions of the usable budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marks {
    /// Passing this starts a new epoch.
    pub high: f64,
    /// A new epoch packs down to this.
    pub low: f64,
    /// At a new epoch, at least this much of the newest history is kept whole behind the cut point.
    pub recent: f64,
}

impl Marks {
    /// Check that `0 < low <= high <= 1` and `0 <= recent <= low`.
    pub fn check(self) -> Result<Self> {
        let ordered = self.low > 0.0 && self.low <= self.high && self.high <= 1.0;
        if ordered && (0.0..=self.low).contains(&self.recent) {
            return Ok(self);
        }
        Err(SchedError::InvalidArgument(format!(
            "watermarks must satisfy 0 < low <= high <= 1 and 0 <= recent <= low, not high={}, low={}, recent={}",
            self.high, self.low, self.recent
        )))
    }
}

/// What a segment of the current prompt became when it was decided.
#[derive(Debug, Clone)]
struct Standing {
    decision: Decision,
    /// Its text when cut or stubbed, and that text's hash.
    text: Option<(Arc<str>, u128)>,
}

/// A message an earlier pack evicted: its decision, and the id and kind of the segment it was about.
#[derive(Debug, Clone)]
pub struct Earlier {
    pub id: Arc<str>,
    pub kind: Arc<str>,
    pub decision: Decision,
    /// The epoch of the pack that evicted it.
    pub epoch: u64,
}

/// A conversation's state between packs.
#[derive(Debug, Default)]
pub struct Session {
    messages: Vec<Message>,
    /// Whether results must follow their calls (`OpenAI` chat), checked as messages are appended.
    results_next: bool,
    /// Messages the last pack saw.
    seen: usize,
    /// The messages in the current prompt, in order.
    live: Vec<usize>,
    /// The current prompt's segments, by id.
    standing: FxHashMap<Arc<str>, Standing>,
    /// For each message, its decision if an earlier pack evicted it.
    earlier: Vec<Option<Earlier>>,
    epoch: u64,
    /// The last prompt, message by message.
    sent: Vec<Sent>,
    /// Leading messages of the prompt kept from before the current epoch's cut point.
    frozen_messages: usize,
    packs: u64,
    /// The summaries standing in the prompt.
    summaries: HeldSummaries,
}

/// The constants a pack needs besides the state.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    /// The packer: its policy (with the output reserve) and its count memo.
    pub packer: &'a Packer,
    pub tokenizer: Tokenizer,
    pub accounting: Accounting,
    /// The budget for the messages (the caller took tool definitions out of it).
    pub budget: usize,
    pub marks: Marks,
    /// How evicted history is summarised at an epoch, if it is.
    pub summaries: Option<&'a SummarySettings>,
}

/// What planning a pack gives: the pack, or first the runs its hooks must summarise.
#[derive(Debug)]
pub enum Plan {
    Ready(Box<SessionPack>),
    /// Plan again with the hooks' outcomes for these runs.
    Summarise(Vec<SessionRun>),
}

/// A planned pack: the messages it read and what it decided about them, the report, and what the session
/// becomes once it is applied.
#[derive(Debug)]
pub struct SessionPack {
    /// The messages this pack read (the prompt's and the new ones), in order.
    pub messages: Vec<Message>,
    /// For each of them, its index in the conversation.
    pub numbers: Vec<usize>,
    pub linked: Linked,
    pub chat: ChatSegments,
    /// The pack of `chat.segments`: a decision for each.
    pub packed: Packed,
    pub report: CacheReport,
    /// A fallback that was taken, said plainly.
    pub note: Option<String>,
    /// The lineage of each summary segment in `chat.segments`, by position.
    pub lineage: Vec<(usize, Lineage)>,
    next: Next,
}

/// What [`Session::apply`] needs of a planned pack.
#[derive(Debug)]
pub struct Applied(Next);

impl SessionPack {
    /// The pack's parts, and what to apply to the session once the caller has its result.
    pub fn into_parts(self) -> (Vec<Message>, Vec<usize>, crate::chat::Planned, CacheReport, Applied) {
        let planned =
            crate::chat::Planned { linked: self.linked, chat: self.chat, packed: self.packed, note: self.note };
        (self.messages, self.numbers, planned, self.report, Applied(self.next))
    }
}

/// The state a planned pack leaves.
#[derive(Debug)]
struct Next {
    live: Vec<usize>,
    standing: FxHashMap<Arc<str>, Standing>,
    /// (message, decision) of each message this pack evicted, or (for a fresh pack) brought back.
    earlier: Vec<(usize, Option<Earlier>)>,
    epoch: u64,
    sent: Vec<Sent>,
    frozen_messages: usize,
    summaries: HeldSummaries,
}

/// How the new prompt was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The previous prompt plus the new messages.
    Append,
    /// A new epoch: the segments before position `cut` were kept as they were sent.
    Epoch { cut: usize },
    /// A stateless pack of the whole conversation (the prompt's decisions could not stand).
    Fresh,
}

/// A pack of the segments read: how it was reached and how many leading segments were kept as sent.
struct Reached {
    step: Step,
    fixed: usize,
    packed: Packed,
    /// At an epoch with history to summarise: the runs of the phase-1 pack, and the target to pack into.
    summarise: Option<(Vec<MessageRun>, usize)>,
}

impl Session {
    /// A session for `OpenAI` chat messages (`results_next`: results follow their calls) or Responses items.
    pub fn new(results_next: bool) -> Self {
        Self { results_next, ..Self::default() }
    }

    /// The messages appended so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Messages appended since the last pack.
    pub fn pending(&self) -> usize {
        self.messages.len().saturating_sub(self.seen)
    }

    /// The current epoch (0 before the first pack).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// About how many bytes a pack reads: the prompt's messages and the new ones.
    pub fn work_bytes(&self) -> usize {
        let live = self.live.iter().filter_map(|&index| self.messages.get(index));
        live.chain(self.messages.iter().skip(self.seen)).map(|message| message.text.len() + 64).sum()
    }

    /// The decision about message `index` if an earlier pack evicted it.
    pub fn earlier(&self, index: usize) -> Option<&Earlier> {
        self.earlier.get(index).and_then(Option::as_ref)
    }

    /// Append `messages`; nothing is appended when one of them makes the conversation malformed (a result
    /// that answers no call, or for chat a message between calls and their results).
    pub fn extend(&mut self, messages: Vec<Message>) -> Result<()> {
        // Only the prompt's messages and those not packed yet can be answered or waited for.
        let mut check: Vec<Message> = self.live.iter().filter_map(|number| self.read(*number)).cloned().collect();
        check.extend(self.messages.iter().skip(self.seen).cloned());
        check.extend(messages.iter().cloned());
        check_growing(&check, self.results_next)?;
        self.earlier.extend(messages.iter().map(|_| None));
        self.messages.extend(messages);
        Ok(())
    }

    /// Message `number` as the prompt has it: a summary standing is read in the place of the first message
    /// it covers.
    fn read(&self, number: usize) -> Option<&Message> {
        self.summaries.get(&number).map(|held| &held.message).or(self.messages.get(number))
    }

    /// Plan the next pack without changing the session; see the module docs. At an epoch with history to
    /// summarise, and no `outcomes` yet, the runs come back first (`Plan::Summarise`); planned again with
    /// their outcomes, each run's summary stands in its place (a run without one falls back).
    pub fn plan(&self, settings: Settings<'_>, outcomes: Option<&Outcomes>) -> Result<Plan> {
        let Settings { packer, tokenizer, accounting, budget, .. } = settings;
        let mut numbers = self.live.clone();
        numbers.extend(self.seen..self.messages.len());
        let mut messages: Vec<Message> = numbers.iter().filter_map(|number| self.read(*number)).cloned().collect();
        let linked = link(&messages, false)?;
        let mut chat = segments_numbered(&messages, &linked, tokenizer, accounting, true, &numbers);
        let mut reached = match self.reach(settings, (&messages, &numbers, &chat)) {
            Ok(reached) => reached,
            Err(error) if is_infeasible(&error) => {
                return self.plan_fresh(settings).map(|pack| Plan::Ready(pack.into()))
            }
            Err(error) => return Err(error),
        };
        let mut placed = Vec::new();
        if let (Some((runs, target)), Some(summaries)) = (reached.summarise.take(), settings.summaries) {
            let runs = self.session_runs(settings, summaries, (&messages, &numbers), runs);
            let Some(outcomes) = outcomes else { return Ok(Plan::Summarise(runs)) };
            let packing = self.fixed(&chat, reached.fixed);
            let read = (&mut messages, &mut numbers, &mut chat);
            (reached.packed, placed) = place(settings, summaries, read, &packing, (&runs, outcomes), target)?;
        }
        let packed = self.whole(&chat, &reached, budget, packer.policy().reserve_output);
        let mut next = self.next(&messages, &chat, &numbers, &packed, reached.step, reached.fixed);
        next.summaries = self.held_after((&messages, &numbers, &chat), &packed, &placed, false);
        self.summarised_earlier(&mut next, (&messages, &numbers, &chat), &packed, &placed);
        if self.packs > 0 && report::extends(&self.sent, &next.sent) {
            // Decided again, but the prompt only grew: no new epoch as the cache sees it.
            next.epoch = self.epoch;
        }
        let reason = self.reason(&reached, &next);
        let report = report::compare(&self.sent, &next.sent, reason, next.epoch, next.frozen_messages);
        let lineage = lineage_of((&messages, &numbers, &chat), &packed, &next.summaries);
        Ok(Plan::Ready(Box::new(SessionPack {
            messages,
            numbers,
            linked,
            chat,
            packed,
            report,
            note: None,
            lineage,
            next,
        })))
    }

    /// A stateless pack of the whole conversation, when the prompt's decisions cannot stand beside the new
    /// messages (rare: the mandatory set outgrew them). Reads every message.
    fn plan_fresh(&self, settings: Settings<'_>) -> Result<SessionPack> {
        let Settings { packer, tokenizer, accounting, budget, .. } = settings;
        let messages = self.messages.clone();
        let numbers: Vec<usize> = (0..messages.len()).collect();
        let linked = link(&messages, false)?;
        let chat = segments_numbered(&messages, &linked, tokenizer, accounting, true, &numbers);
        let planned = plan_linked(packer, &messages, linked, chat, tokenizer, accounting, budget)?;
        let mut next = self.next(&messages, &planned.chat, &numbers, &planned.packed, Step::Fresh, 0);
        // What an earlier pack evicted and this one placed is back.
        let placed: Vec<usize> = next.live.clone();
        next.earlier
            .extend(placed.into_iter().filter(|&index| self.earlier(index).is_some()).map(|index| (index, None)));
        let reason = "a fresh pack of the whole conversation (the earlier decisions could not fit)";
        let report = report::compare(&self.sent, &next.sent, reason, next.epoch, next.frozen_messages);
        let (linked, chat, packed, note) = (planned.linked, planned.chat, planned.packed, planned.note);
        Ok(SessionPack { messages, numbers, linked, chat, packed, report, note, lineage: Vec::new(), next })
    }

    /// Apply a planned pack: the session is then as the pack left it.
    pub fn apply(&mut self, applied: Applied) {
        let Next { live, standing, earlier, epoch, sent, frozen_messages, summaries } = applied.0;
        self.summaries = summaries;
        for (index, decision) in earlier {
            if let Some(slot) = self.earlier.get_mut(index) {
                *slot = decision;
            }
        }
        (self.live, self.standing, self.epoch, self.sent, self.frozen_messages) =
            (live, standing, epoch, sent, frozen_messages);
        self.seen = self.messages.len();
        self.packs += 1;
    }

    /// Pack the segments read: appended if they fit under the high mark, else a new epoch.
    fn reach(&self, settings: Settings<'_>, read: (&[Message], &[usize], &ChatSegments)) -> Result<Reached> {
        let Settings { packer, budget, marks, .. } = settings;
        let (_, numbers, chat) = read;
        let reserve = packer.policy().reserve_output;
        let usable = budget.saturating_sub(reserve);
        let high = reserve + fraction_of(marks.high, usable);
        let low = reserve + fraction_of(marks.low, usable);
        let is_new = |index: usize| self.is_new(chat, numbers, index);
        let count = chat.segments.len();
        let first_new = (0..count).find(|&index| is_new(index)).unwrap_or(count);
        match pack_segments(packer, &self.fixed(chat, first_new), high) {
            Ok(packed) if Self::appended(&packed, first_new, &is_new) => {
                return Ok(Reached { step: Step::Append, fixed: first_new, packed, summarise: None });
            }
            Err(error) if !is_infeasible(&error) => return Err(error),
            _ => {}
        }
        if let Some(reached) = self.reach_summarising(settings, read, first_new, low)? {
            return Ok(reached);
        }
        let cut = choose::cut_point(self, settings, chat, first_new, low);
        // Less and less kept as it was: at the low mark without squeezing what must be kept, then at the
        // whole budget (where the mandatory set may be cut).
        let mut tried = Vec::new();
        let mut failure = None;
        for (cut, target) in [(cut, low), (0, low), (cut, budget), (0, budget)] {
            if tried.contains(&(cut, target)) {
                continue;
            }
            tried.push((cut, target));
            let squeezed = |packed: &Packed| target < budget && squeezes_mandatory(packed);
            let fixed = self.fixed(chat, cut);
            match packer.pack(&fixed, target, None) {
                Ok(packed) if !squeezed(&packed) => {
                    return Ok(Reached { step: Step::Epoch { cut }, fixed: cut, packed, summarise: None });
                }
                Ok(_) => {}
                Err(error) if is_infeasible(&error) => failure = Some(error),
                Err(error) => return Err(error),
            }
        }
        // The whole budget was tried last, and a pack there is never refused: it failed.
        Err(failure.unwrap_or_else(|| SchedError::InvalidArgument("no pack of the session was tried".to_owned())))
    }

    /// Whether segment `index` belongs to a message appended since the last pack.
    fn is_new(&self, chat: &ChatSegments, numbers: &[usize], index: usize) -> bool {
        let owner = chat.owners.get(index).and_then(|&owner| numbers.get(owner));
        owner.is_some_and(|&owner| owner >= self.seen)
    }

    /// The segments read, those before position `cut` kept as they were sent: their text as placed, kept
    /// (required), never cut again, under a kind of their own. From `cut` on, the chat policy's segments.
    fn fixed(&self, chat: &ChatSegments, cut: usize) -> Vec<Segment> {
        let standing = |(position, segment): (usize, &Segment)| {
            self.standing.get(&segment.id).filter(|_| position < cut).map(|standing| fix(segment, standing))
        };
        chat.segments.iter().enumerate().map(|pair| standing(pair).unwrap_or_else(|| pair.1.clone())).collect()
    }

    /// Whether a pack kept the old segments in their order, and every new one after them, whole or cut at
    /// its kind's cap only.
    fn appended(packed: &Packed, first_new: usize, is_new: &dyn Fn(usize) -> bool) -> bool {
        let in_order =
            packed.order.iter().enumerate().all(|(position, &index)| (position < first_new) == (index < first_new));
        let new_whole = packed.decisions.iter().all(|decision| {
            !is_new(decision.index)
                || decision.outcome.is_ok() && matches!(decision.cut, None | Some(Cut::AboveCap { .. }))
        });
        in_order && new_whole
    }

    /// The pack with the decisions that shaped the segments kept as sent, and the session's budget.
    fn whole(&self, chat: &ChatSegments, reached: &Reached, budget: usize, reserve: usize) -> Packed {
        let mut packed = reached.packed.clone();
        for (position, segment) in chat.segments.iter().enumerate().take(reached.fixed) {
            let (Some(standing), Some(decision), Some(text)) =
                (self.standing.get(&segment.id), packed.decisions.get_mut(position), packed.texts.get_mut(position))
            else {
                continue;
            };
            if decision.outcome.is_err() {
                // Taken into a new summary at this epoch.
                continue;
            }
            *decision = Decision { index: position, ..standing.decision.clone() };
            *text = standing.text.as_ref().map(|(text, _)| text.to_string());
        }
        (packed.budget, packed.usable) = (budget, budget.saturating_sub(reserve));
        packed
    }

    /// The state this pack leaves.
    #[allow(clippy::too_many_arguments)]
    fn next(
        &self,
        messages: &[Message],
        chat: &ChatSegments,
        numbers: &[usize],
        packed: &Packed,
        step: Step,
        fixed: usize,
    ) -> Next {
        let mut standing = FxHashMap::default();
        let mut earlier = Vec::new();
        let mut live = Vec::new();
        let epoch = if step == Step::Append && self.packs > 0 { self.epoch } else { self.epoch + 1 };
        for (position, (segment, decision)) in chat.segments.iter().zip(&packed.decisions).enumerate() {
            let Some(&message) = chat.owners.get(decision.index).and_then(|&owner| numbers.get(owner)) else {
                continue;
            };
            if decision.outcome.is_ok() {
                // Kept as sent: as it stood. Decided now: with its text's hash, computed once.
                let kept = self.standing.get(&segment.id).filter(|_| position < fixed).cloned();
                let decided = || {
                    let text = packed.texts.get(decision.index).cloned().flatten().map(Arc::<str>::from);
                    let text =
                        text.map(|text| (crate::segment::content_hash(&text), text)).map(|(hash, text)| (text, hash));
                    Standing { decision: decision.clone(), text }
                };
                standing.insert(Arc::clone(&segment.id), kept.unwrap_or_else(decided));
                if live.last() != Some(&message) {
                    live.push(message);
                }
            } else if is_summary(messages, chat, decision.index) {
                // A summary taken into a new one: its sources' decisions say so.
            } else if earlier.last().is_none_or(|(last, _)| *last != message) {
                let (id, kind) = (Arc::clone(&segment.id), Arc::clone(&segment.kind));
                earlier.push((message, Some(Earlier { id, kind, decision: decision.clone(), epoch })));
            }
        }
        // A summary placed now was appended last; the prompt reads in the conversation's order.
        live.sort_unstable();
        live.dedup();
        let sent = report::sent(chat, messages, numbers, packed);
        let frozen_messages = match step {
            Step::Append => self.frozen_messages,
            Step::Fresh => 0,
            Step::Epoch { .. } => fixed_messages(chat, numbers, &sent, fixed),
        };
        Next { live, standing, earlier, epoch, sent, frozen_messages, summaries: HeldSummaries::new() }
    }

    /// Why the prompt changed, if it did.
    fn reason(&self, reached: &Reached, next: &Next) -> &'static str {
        // A new message placed before an older one: a new system message, pinned to the head.
        let first_new = next.sent.iter().position(|message| message.message >= self.seen);
        let pinned = first_new.is_some_and(|at| next.sent.iter().skip(at).any(|message| message.message < self.seen));
        match reached.step {
            _ if self.packs == 0 => FIRST_PACK,
            _ if pinned => "a new pin (a new system message goes to the head)",
            Step::Append | Step::Epoch { .. } => "a new epoch",
            Step::Fresh => "a fresh pack",
        }
    }
}

/// Whether a pack had to cut what must be kept (it was packed into less than the whole budget).
fn squeezes_mandatory(packed: &Packed) -> bool {
    packed
        .decisions
        .iter()
        .any(|decision| matches!(decision.cut, Some(Cut::MandatoryOverBudget | Cut::MandatoryOverQuota(_))))
}

/// Leading messages of `sent` whose segments are all before position `fixed`.
fn fixed_messages(chat: &ChatSegments, numbers: &[usize], sent: &[Sent], fixed: usize) -> usize {
    let first_free = chat.owners.get(fixed).and_then(|&owner| numbers.get(owner)).copied();
    sent.iter().take_while(|message| first_free.is_none_or(|free| message.message < free)).count()
}

/// `segment` kept as it was placed: its placed text, required, never cut, no stub.
fn fix(segment: &Segment, standing: &Standing) -> Segment {
    let mut fixed = segment.clone();
    if let Some((text, hash)) = &standing.text {
        fixed.text = Arc::clone(text);
        fixed.content_hash = *hash;
    }
    fixed.kind = KEPT_KIND.into();
    fixed.required = true;
    fixed.truncation = Some(Truncation::None);
    fixed.stub = None;
    fixed
}

/// `fraction` of `usable`, rounded down.
fn fraction_of(fraction: f64, usable: usize) -> usize {
    crate::policy::Amount::Fraction(fraction).resolve(usable)
}
