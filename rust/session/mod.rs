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
//! - **A new epoch** starts when that would pass the high watermark, or would drop or stub a new message.
//!   The prompt is brought down to the low watermark in one step. Everything before a cut point stays as
//!   it was; from the cut point on, the packer decides again. The cut point is the latest unit boundary that
//!   leaves enough behind it to free the tokens needed and still keep a recent window whole: what goes is
//!   the history just before the recent turns, not the oldest, so the prefix the cache holds survives.
//!
//! Only the prompt's segments and the new messages are packed; what an earlier epoch evicted stays out
//! and is reported with its decision. Each step works on copies and the state is replaced at the end: a
//! failed pack leaves the session as it was.

mod choose;
mod report;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustc_hash::FxHashMap;

pub use report::CacheReport;
use report::Sent;

use crate::chat::{check_growing, Message};
use crate::chat::{is_infeasible, link, pack_segments, plan_linked, segments, Accounting, ChatSegments, Linked};
use crate::error::{Result, SchedError};
use crate::packer::{Decision, Packed, Packer};
use crate::segment::{Segment, Truncation};
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
        let valid =
            self.low > 0.0 && self.low <= self.high && self.high <= 1.0 && (0.0..=self.low).contains(&self.recent);
        if valid {
            Ok(self)
        } else {
            Err(SchedError::InvalidArgument(format!(
                "watermarks must satisfy 0 < low <= high <= 1 and 0 <= recent <= low, not high={}, low={}, recent={}",
                self.high, self.low, self.recent
            )))
        }
    }
}

/// What a segment of the current prompt became when it was decided.
#[derive(Debug, Clone)]
struct Standing {
    decision: Decision,
    /// Its text when cut or stubbed.
    text: Option<Arc<str>>,
}

/// A conversation's state between packs.
#[derive(Debug, Default, Clone)]
pub struct Session {
    messages: Vec<Message>,
    /// Messages the last pack saw.
    seen: usize,
    /// Segments in the current prompt, by id.
    standing: FxHashMap<Arc<str>, Standing>,
    /// Segments an earlier pack evicted, by id.
    gone: FxHashMap<Arc<str>, Decision>,
    epoch: u64,
    /// The last prompt, message by message.
    sent: Vec<Sent>,
    /// Leading messages of the prompt kept from before the current epoch's cut point.
    frozen_messages: usize,
    packs: u64,
}

/// What a pack decided: the conversation's segments and decisions (for every message), and the report.
#[derive(Debug)]
pub struct SessionPack {
    pub linked: Linked,
    pub chat: ChatSegments,
    pub packed: Packed,
    pub report: CacheReport,
    pub note: Option<String>,
}

/// The constants a pack needs besides the state.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    pub packer: &'a Packer,
    pub tokenizer: Tokenizer,
    pub accounting: Accounting,
    /// The budget for the messages (the caller took tool definitions out of it).
    pub budget: usize,
    pub marks: Marks,
}

/// How the new prompt was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The previous prompt plus the new messages.
    Append,
    /// A new epoch: the live segments before position `cut` were kept as they were sent.
    Epoch { cut: usize },
    /// A stateless pack of the whole conversation (the prompt's decisions could not stand).
    Fresh,
}

/// A pack of the live segments: how it was reached, which segments (indices into the chat segments)
/// and the first how many of them were fixed as they were sent.
struct LivePack {
    step: Step,
    live: Vec<usize>,
    fixed: usize,
    packed: Packed,
}

impl Session {
    /// The messages appended so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Messages appended since the last pack.
    pub fn pending(&self) -> usize {
        self.messages.len().saturating_sub(self.seen)
    }

    /// The current epoch (0 before the first one).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Append `messages`; nothing is appended when one of them makes the conversation malformed (a result
    /// that answers no call).
    pub fn extend(&mut self, messages: Vec<Message>) -> Result<()> {
        let before = self.messages.len();
        self.messages.extend(messages);
        if let Err(error) = check_growing(&self.messages) {
            self.messages.truncate(before);
            return Err(error);
        }
        Ok(())
    }

    /// Pack the conversation; see the module docs. On error the session is as it was.
    pub fn pack(&mut self, settings: Settings<'_>) -> Result<SessionPack> {
        let Settings { packer, tokenizer, accounting, budget, .. } = settings;
        let linked = link(&self.messages, false)?;
        let chat = segments(&self.messages, &linked, tokenizer, accounting, true);
        let mut next = self.clone();
        match self.pack_live(settings, &chat) {
            Ok(live) => {
                let packed = self.whole(&chat, &live);
                let report = next.commit(&chat, &packed, &live);
                *self = next;
                Ok(SessionPack { linked, chat, packed, report, note: None })
            }
            Err(error) if is_infeasible(&error) => {
                let planned = plan_linked(packer, &self.messages, linked, chat, tokenizer, accounting, budget)?;
                let live = LivePack {
                    step: Step::Fresh,
                    live: (0..planned.chat.segments.len()).collect(),
                    fixed: 0,
                    packed: planned.packed,
                };
                let report = next.commit(&planned.chat, &live.packed, &live);
                *self = next;
                let (linked, chat, note) = (planned.linked, planned.chat, planned.note);
                Ok(SessionPack { linked, chat, packed: live.packed, report, note })
            }
            Err(error) => Err(error),
        }
    }

    /// Pack the prompt's segments and the new ones: appended if they fit under the high mark, else a new
    /// epoch.
    fn pack_live(&self, settings: Settings<'_>, chat: &ChatSegments) -> Result<LivePack> {
        let Settings { packer, budget, marks, .. } = settings;
        let live: Vec<usize> = (0..chat.segments.len()).filter(|&index| self.is_live(chat, index)).collect();
        let reserve = packer.policy().reserve_output;
        let usable = budget.saturating_sub(reserve);
        let high = reserve + fraction(marks.high, usable);
        let low = reserve + fraction(marks.low, usable);
        let first_new = live.iter().position(|&index| self.is_new(chat, index)).unwrap_or(live.len());
        if self.packs > 0 {
            let fixed = self.frozen(chat, &live, first_new);
            if let Ok(packed) = pack_segments(packer, &fixed, high) {
                if self.appended_whole(chat, &live, &packed) {
                    return Ok(LivePack { step: Step::Append, live, fixed: first_new, packed });
                }
            }
        }
        let cut = choose::cut_point(self, settings, chat, &live, first_new, low);
        // Then less freed, then everything decided again, then that with the whole budget.
        let mut attempts = vec![(cut, low), (cut, budget), (0, low), (0, budget)];
        attempts.dedup();
        let mut failure = None;
        for (cut, target) in attempts {
            match packer.pack(&self.frozen(chat, &live, cut), target, None) {
                Ok(packed) => return Ok(LivePack { step: Step::Epoch { cut }, live, fixed: cut, packed }),
                Err(error) if is_infeasible(&error) => failure = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(failure.unwrap_or_else(|| SchedError::InvalidArgument("no pack was tried".to_owned())))
    }

    /// Whether segment `index` may be in the prompt: it is in it now, or new.
    fn is_live(&self, chat: &ChatSegments, index: usize) -> bool {
        chat.segments.get(index).is_some_and(|segment| !self.gone.contains_key(&segment.id))
    }

    /// Whether segment `index` belongs to a message appended since the last pack.
    fn is_new(&self, chat: &ChatSegments, index: usize) -> bool {
        chat.owners.get(index).is_some_and(|&owner| owner >= self.seen)
    }

    /// The live segments, those before position `cut` fixed as they were sent: their text as placed, kept
    /// (required), never cut again. From `cut` on, the chat policy's segments.
    fn frozen(&self, chat: &ChatSegments, live: &[usize], cut: usize) -> Vec<Segment> {
        live.iter()
            .enumerate()
            .filter_map(|(position, &index)| {
                let segment = chat.segments.get(index)?;
                let standing = self.standing.get(&segment.id).filter(|_| position < cut);
                Some(standing.map_or_else(|| segment.clone(), |standing| fix(segment, standing)))
            })
            .collect()
    }

    /// Whether a pack of the frozen prompt and the new segments kept every new segment (whole or cut at
    /// its cap, not stubbed) and the old ones as they were.
    fn appended_whole(&self, chat: &ChatSegments, live: &[usize], packed: &Packed) -> bool {
        live.iter().zip(&packed.decisions).all(|(&index, decision)| {
            decision.outcome.is_ok() && (!self.is_new(chat, index) || decision.action() != "stubbed")
        })
    }

    /// A pack of the live segments as a pack of every segment of the conversation: the earlier epochs'
    /// evictions are in it with their decisions, and fixed segments with the decision that shaped them.
    fn whole(&self, chat: &ChatSegments, live: &LivePack) -> Packed {
        let LivePack { live: positions, fixed, packed, .. } = live;
        let mut at = 0;
        let mut decisions = Vec::with_capacity(chat.segments.len());
        let mut texts = Vec::with_capacity(chat.segments.len());
        for (index, segment) in chat.segments.iter().enumerate() {
            let position = (positions.get(at) == Some(&index)).then_some(at);
            at += usize::from(position.is_some());
            let standing = self.standing.get(&segment.id).filter(|_| position.is_some_and(|at| at < *fixed));
            let (decision, text) = match (position, standing) {
                (Some(_), Some(standing)) => (standing.decision.clone(), standing.text.as_deref().map(str::to_owned)),
                (Some(at), None) => (
                    packed.decisions.get(at).cloned().unwrap_or_else(|| unseen(index)),
                    packed.texts.get(at).cloned().flatten(),
                ),
                (None, _) => (self.gone.get(&segment.id).cloned().unwrap_or_else(|| unseen(index)), None),
            };
            decisions.push(Decision { index, ..decision });
            texts.push(text);
        }
        let order = packed.order.iter().filter_map(|&position| positions.get(position).copied()).collect();
        Packed { order, texts, decisions, ..packed.clone() }
    }

    /// Record what this pack decided, and report on the prompt's prefix.
    fn commit(&mut self, chat: &ChatSegments, packed: &Packed, live: &LivePack) -> CacheReport {
        let reason = match live.step {
            _ if self.packs == 0 => FIRST_PACK,
            Step::Append => "a new pin",
            Step::Epoch { .. } => "a new epoch",
            Step::Fresh => "a fresh pack of the whole conversation (the earlier decisions could not fit)",
        };
        if live.step != Step::Append {
            self.epoch += 1;
        }
        if live.step == Step::Fresh {
            self.gone.clear();
        }
        self.standing.clear();
        for (segment, decision) in chat.segments.iter().zip(&packed.decisions) {
            if self.gone.contains_key(&segment.id) {
                continue;
            }
            if decision.outcome.is_ok() {
                let text = packed.texts.get(decision.index).cloned().flatten().map(Arc::from);
                self.standing.insert(Arc::clone(&segment.id), Standing { decision: decision.clone(), text });
            } else {
                self.gone.insert(Arc::clone(&segment.id), decision.clone());
            }
        }
        let sent = report::sent(chat, packed);
        if let Step::Epoch { cut } = live.step {
            let cut_message = live.live.get(cut).and_then(|&index| chat.owners.get(index).copied());
            self.frozen_messages =
                sent.iter().take_while(|message| cut_message.is_none_or(|cut| message.message < cut)).count();
        } else if live.step == Step::Fresh {
            self.frozen_messages = 0;
        }
        let report = report::compare(&self.sent, &sent, reason, self.epoch, self.frozen_messages);
        self.sent = sent;
        self.seen = self.messages.len();
        self.packs += 1;
        report
    }
}

/// `segment` fixed as it was placed: its placed text, required, never cut, no stub.
fn fix(segment: &Segment, standing: &Standing) -> Segment {
    let mut fixed = match &standing.text {
        Some(text) => Segment::new(Arc::clone(&segment.id), Arc::clone(&segment.kind), Arc::clone(text)),
        None => Segment::new(Arc::clone(&segment.id), Arc::clone(&segment.kind), Arc::clone(&segment.text)),
    };
    fixed.pin = segment.pin;
    fixed.group.clone_from(&segment.group);
    fixed.overhead = segment.overhead;
    fixed.priority = segment.priority;
    fixed.required = true;
    fixed.truncation = Some(Truncation::None);
    fixed
}

/// `fraction` of `usable`, rounded down.
fn fraction(fraction: f64, usable: usize) -> usize {
    crate::policy::Amount::Fraction(fraction).resolve(usable)
}

/// The decision of a segment that is neither live nor gone. Every segment is one or the other (live is
/// "not gone"), so this is never reached; if it were, the conservation property would catch the reason.
fn unseen(index: usize) -> Decision {
    Decision {
        index,
        tokens_before: 0,
        counted: false,
        tokens_after: 0,
        outcome: Err(crate::packer::Eviction::CutToNothing { tokens: 0 }),
        cut: None,
        strategy: None,
        fallback: Some("no pack of this session decided it".to_owned()),
    }
}
