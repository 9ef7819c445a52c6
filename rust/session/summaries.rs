//! Summaries in a session: made only at an epoch, kept as sent within it, and taken into a new one when
//! more history next to them must go.
//!
//! A summary message takes the number of the first message it covers, and is read in that message's place
//! while it stands. A new summary covers the sources of any summary in its run: made from the originals
//! when they fit the hook's input budget, else from the earlier summary (depth 1) and the new originals
//! (depth 2), else from the originals cut to fit (depth 1). No summary is ever made from a depth-2 one.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::{choose, is_infeasible, squeezes_mandatory, Earlier, Next, Reached, Step};
use super::{Session, Settings};
use crate::chat::{fit_inputs, inputs_fingerprint, link, segments_numbered, summary_framing, Lineage, Message};
use crate::chat::{message_runs, ChatSegments, MessageRun, Role, RunOutcome, SummarySettings, SUMMARY_HEADER};
use crate::chat::{place_summaries, Placing};
use crate::error::Result;
use crate::packer::{Decision, Eviction, Packed};
use crate::segment::Segment;

/// A summary that stands in the prompt.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its message, read in place of the first message it covers.
    pub message: Message,
    pub lineage: Lineage,
}

/// The summaries standing, by the number of the first message each covers.
pub type HeldSummaries = BTreeMap<usize, Held>;

/// A hook's input: a segment, its role, and the conversation's message it is of.
type Input = (Segment, &'static str, usize);

/// The hooks' results, by the fingerprint of their inputs.
pub type Outcomes = FxHashMap<u128, RunOutcome>;

/// A run to summarise at this epoch, with what its hook is given.
#[derive(Debug, Clone)]
pub struct SessionRun {
    pub run: MessageRun,
    /// The conversation's messages it covers, in order (an earlier summary's sources included).
    pub sources: Vec<usize>,
    /// The hook's inputs, each with its role.
    pub inputs: Vec<(Segment, &'static str)>,
    pub depth: u8,
    /// The inputs' key (their texts, roles, the depth and the target size).
    pub fingerprint: u128,
    /// The tokens of the originals it covers.
    pub source_tokens: usize,
}

impl Session {
    /// The summary standing for message `number`, if one does.
    pub fn held(&self, number: usize) -> Option<&Held> {
        self.summaries.get(&number)
    }

    /// The runs of a phase-1 pack, from segment position `from` on.
    pub(super) fn runs_of(
        settings: Settings<'_>,
        read: (&[Message], &[usize], &ChatSegments),
        packed: &Packed,
        from: usize,
    ) -> Vec<MessageRun> {
        let Some(summaries) = settings.summaries else { return Vec::new() };
        let framing = summary_framing(settings.tokenizer, settings.accounting);
        let (messages, _, chat) = read;
        message_runs(settings.packer, messages, chat, packed, summaries, framing, from)
    }

    /// What each run's hook is given (see the module docs).
    pub(super) fn session_runs(
        &self,
        settings: Settings<'_>,
        summaries: &SummarySettings,
        read: (&[Message], &[usize]),
        runs: Vec<MessageRun>,
    ) -> Vec<SessionRun> {
        let (messages, numbers) = read;
        let marker = &settings.packer.policy().elision_marker;
        let tokenizer = settings.tokenizer;
        runs.into_iter()
            .map(|run| {
                let (mut sources, mut fresh, mut earlier) = (Vec::new(), Vec::new(), Vec::new());
                for &index in &run.messages {
                    let Some(&number) = numbers.get(index) else { continue };
                    let held = messages.get(index).filter(|m| m.role == Role::Summary).and(self.summaries.get(&number));
                    if let Some(held) = held {
                        sources.extend(held.lineage.messages.iter().copied());
                        earlier.push(held);
                    } else {
                        sources.push(number);
                        fresh.push(number);
                    }
                }
                sources.sort_unstable();
                sources.dedup();
                let count = |inputs: &[Input]| -> usize {
                    inputs.iter().map(|(segment, _, _)| tokenizer.count(&segment.text)).sum()
                };
                let new_originals = self.originals(settings, &fresh);
                let earlier_tokens: usize = earlier.iter().map(|held| held.lineage.source_tokens).sum();
                let source_tokens = earlier_tokens + count(&new_originals);
                let deepest = earlier.iter().map(|held| held.lineage.depth).max().unwrap_or(0);
                let (inputs, depth): (Vec<Input>, u8) =
                    if source_tokens <= summaries.input_tokens || earlier.is_empty() || deepest >= 2 {
                        (if earlier.is_empty() { new_originals } else { self.originals(settings, &sources) }, 1)
                    } else {
                        // The earlier summaries and the new originals, in the conversation's order.
                        let mut inputs = Vec::new();
                        for &index in &run.messages {
                            let Some(&number) = numbers.get(index) else { continue };
                            match earlier.iter().find(|held| held.message.number == number) {
                                Some(held) if messages.get(index).is_some_and(|m| m.role == Role::Summary) => {
                                    inputs.push(as_input(held));
                                }
                                _ => inputs.extend(new_originals.iter().filter(|input| input.2 == number).cloned()),
                            }
                        }
                        (inputs, deepest + 1)
                    };
                let inputs: Vec<(Segment, &'static str)> = inputs.into_iter().map(|(s, role, _)| (s, role)).collect();
                let (segments, roles): (Vec<Segment>, Vec<&'static str>) = inputs.into_iter().unzip();
                let inputs: Vec<(Segment, &'static str)> =
                    fit_inputs(segments, summaries.input_tokens, tokenizer, marker).into_iter().zip(roles).collect();
                let fingerprint = inputs_fingerprint(&inputs, depth, run.max_tokens);
                SessionRun { run, sources, inputs, depth, fingerprint, source_tokens }
            })
            .collect()
    }

    /// The segments of the conversation's messages `numbers` (whole, as the chat policy makes them), each
    /// with its role and message.
    fn originals(&self, settings: Settings<'_>, numbers: &[usize]) -> Vec<Input> {
        let messages: Vec<Message> = numbers.iter().filter_map(|&number| self.messages.get(number).cloned()).collect();
        // They were evicted whole, a turn with its results; a repair only guards against the unexpected.
        let Ok(linked) = link(&messages, true) else { return Vec::new() };
        let chat = segments_numbered(&messages, &linked, settings.tokenizer, settings.accounting, false, numbers);
        let role = |owner: usize| messages.get(owner).map_or("user", |message| message.role.name());
        let number = |owner: usize| numbers.get(owner).copied().unwrap_or(usize::MAX);
        chat.segments
            .into_iter()
            .zip(chat.owners)
            .map(|(segment, owner)| (segment, role(owner), number(owner)))
            .collect()
    }

    /// The summaries standing after a pack: those it read and kept, and those it placed.
    pub(super) fn held_after(
        &self,
        read: (&[Message], &[usize], &ChatSegments),
        packed: &Packed,
        placed: &[(usize, Lineage)],
        fresh: bool,
    ) -> HeldSummaries {
        let (messages, numbers, chat) = read;
        let kept = |position: usize| packed.decisions.get(position).is_some_and(|decision| decision.outcome.is_ok());
        let mut held = HeldSummaries::new();
        if fresh {
            return held;
        }
        for (index, message) in messages.iter().enumerate().filter(|(_, message)| message.role == Role::Summary) {
            let (Some(&number), Some(position)) = (numbers.get(index), chat.primary.get(index).copied().flatten())
            else {
                continue;
            };
            let lineage = placed.iter().find(|(at, _)| *at == position).map(|(_, lineage)| lineage.clone());
            let Some(lineage) = lineage.or_else(|| self.summaries.get(&number).map(|held| held.lineage.clone())) else {
                continue;
            };
            if kept(position) {
                held.insert(number, Held { message: message.clone(), lineage });
            }
        }
        held
    }
}

/// Phase 2 at an epoch: the runs' summaries (by their inputs' key in `outcomes`; a run without one falls back)
/// packed in their places into `target`. The summary messages are appended to the messages read.
pub(super) fn place(
    settings: Settings<'_>,
    summaries: &SummarySettings,
    read: (&mut Vec<Message>, &mut Vec<usize>, &mut ChatSegments),
    packing: &[Segment],
    (runs, outcomes): (&[SessionRun], &Outcomes),
    target: usize,
) -> Result<(Packed, Vec<(usize, Lineage)>)> {
    let (messages, numbers, chat) = read;
    let changed = RunOutcome::Failed {
        problem: "had no result for this run (the conversation changed while it ran)".to_owned(),
        truncate: summaries.truncate,
    };
    let inputs: Vec<Vec<Segment>> =
        runs.iter().map(|run| run.inputs.iter().map(|(segment, _)| segment.clone()).collect()).collect();
    let placing: Vec<Placing<'_>> = runs
        .iter()
        .zip(&inputs)
        .map(|(run, inputs)| Placing {
            run: &run.run,
            outcome: outcomes.get(&run.fingerprint).unwrap_or(&changed),
            inputs,
            sources: &run.sources,
            depth: run.depth,
            source_tokens: run.source_tokens,
        })
        .collect();
    let first_summary = messages.len();
    let (packer, accounting, hook) = (settings.packer, settings.accounting, &summaries.hook);
    let placed = place_summaries(packer, packing, messages, chat, target, &placing, accounting, hook)?;
    numbers.extend(messages.iter().skip(first_summary).map(|message| message.number));
    Ok(placed)
}

impl Session {
    /// A new epoch with the summaries' room kept back below the low mark (a cut point that frees it too),
    /// if that leaves history to summarise.
    pub(super) fn reach_summarising(
        &self,
        settings: Settings<'_>,
        read: (&[Message], &[usize], &ChatSegments),
        first_new: usize,
        low: usize,
    ) -> Result<Option<Reached>> {
        let Some(summaries) = settings.summaries else { return Ok(None) };
        let (messages, _, chat) = read;
        // What the epoch would evict without summaries: if no history goes whole (stubs and cuts are
        // enough), there is nothing to summarise.
        let plain_cut = choose::cut_point(self, settings, chat, first_new, low);
        match settings.packer.pack(&self.fixed(chat, plain_cut), low, None) {
            Ok(plain) if !squeezes_mandatory(&plain) && Self::runs_of(settings, read, &plain, plain_cut).is_empty() => {
                return Ok(None);
            }
            Err(error) if !is_infeasible(&error) => return Err(error),
            _ => {}
        }
        // From the latest summary on, so that what goes now joins it: one summary that grows, not many.
        let latest = (0..first_new).rev().find(|&position| is_summary(messages, chat, position));
        // Less room kept back if all of it would turn whole turns into stubs instead.
        for reserve in [summaries.reserve, summaries.reserve / 2, summaries.reserve / 4] {
            let target = low.saturating_sub(reserve);
            let late = choose::cut_point(self, settings, chat, first_new, target);
            let late = latest.map_or(late, |latest| late.min(latest));
            for cut in if late == 0 { vec![0] } else { vec![late, 0] } {
                match settings.packer.pack(&self.fixed(chat, cut), target, None) {
                    Ok(packed) if !squeezes_mandatory(&packed) => {
                        let runs = Self::runs_of(settings, read, &packed, cut);
                        if !runs.is_empty() {
                            let summarise = Some((runs, low));
                            return Ok(Some(Reached { step: Step::Epoch { cut }, fixed: cut, packed, summarise }));
                        }
                    }
                    Err(error) if !is_infeasible(&error) => return Err(error),
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// The messages a summary placed now covers that this pack did not read (an earlier summary's
    /// sources): their decisions now name the new summary.
    pub(super) fn summarised_earlier(
        &self,
        next: &mut Next,
        read: (&[Message], &[usize], &ChatSegments),
        packed: &Packed,
        placed: &[(usize, Lineage)],
    ) {
        let (messages, numbers, chat) = read;
        let summaries_read: Vec<usize> = numbers
            .iter()
            .zip(messages)
            .filter(|(_, message)| message.role == Role::Summary)
            .map(|(&number, _)| number)
            .collect();
        for (position, lineage) in placed {
            let (Some(summary), Some(decision)) = (chat.segments.get(*position), packed.decisions.get(*position))
            else {
                continue;
            };
            // Those read as originals have their decisions from this pack (a summary read has its number).
            let read_whole = |source: &usize| numbers.contains(source) && !summaries_read.contains(source);
            for &source in lineage.messages.iter().filter(|source| !read_whole(source)) {
                let Some(old) = self.earlier(source) else { continue };
                let outcome = Err(Eviction::Summarised {
                    into: summary.id.to_string(),
                    tokens: decision.tokens_after,
                    by: lineage.hook.to_string(),
                });
                let decision = Decision { outcome, ..old.decision.clone() };
                next.earlier.push((source, Some(Earlier { decision, epoch: next.epoch, ..old.clone() })));
            }
        }
    }
}

/// Whether segment `position` is a summary's.
pub(super) fn is_summary(messages: &[Message], chat: &ChatSegments, position: usize) -> bool {
    let owner = chat.owners.get(position).and_then(|&owner| messages.get(owner));
    owner.is_some_and(|message| message.role == Role::Summary)
}

/// The lineage of each summary segment read or placed, by position.
pub(super) fn lineage_of(
    (messages, numbers, chat): (&[Message], &[usize], &ChatSegments),
    packed: &Packed,
    held: &HeldSummaries,
) -> Vec<(usize, Lineage)> {
    let kept = |position: &usize| packed.decisions.get(*position).is_some_and(|decision| decision.outcome.is_ok());
    (0..chat.segments.len())
        .filter(|&position| is_summary(messages, chat, position))
        .filter(kept)
        .filter_map(|position| {
            let number = chat.owners.get(position).and_then(|&owner| numbers.get(owner))?;
            held.get(number).map(|held| (position, held.lineage.clone()))
        })
        .collect()
}

/// A standing summary as a hook's input: its text without the header, as a user message.
fn as_input(held: &Held) -> Input {
    let text = held.message.text.strip_prefix(SUMMARY_HEADER).unwrap_or(&held.message.text);
    let id = crate::chat::summary_id(held.message.number);
    (Segment::new(id, crate::chat::SUMMARY_KIND, text), Role::Summary.sent_name(), held.message.number)
}
