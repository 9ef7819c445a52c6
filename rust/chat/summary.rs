//! Summaries in a conversation: a run of whole evicted messages becomes one user message in its place.
//!
//! Phase 1 ([`plan_summaries`], or a session's own) packs with the summaries' room kept back and finds the
//! runs ([`message_runs`]): consecutive messages, evicted whole (a turn goes with its results, so tool pairs
//! stay valid around the summary), of the kinds that may be summarised; a summary already in the prompt
//! next to such a run joins it, so the new summary covers its sources too. The hooks run in Python; phase 2
//! ([`place_summaries`]) packs again with each run's summary message where its first message was.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{
    link, plan_linked, segments, summary_id, summary_segment, Accounting, ChatSegments, Message, Planned, Role,
    TOOL_CALL_KIND,
};
use crate::error::{Result, SchedError};
use rustc_hash::FxHashSet;

use crate::packer::{share_of, Packed, Packer, Summary, SummaryRun, MIN_SUMMARY_TOKENS};
use crate::segment::Segment;
use crate::tokenizer::Tokenizer;
use crate::truncation::Strategy;

/// What a summary message says before the hook's text, so the model does not take it for the user's words.
pub const SUMMARY_HEADER: &str = "[Summary of earlier messages, removed to fit the context window]\n";

/// How a conversation's evicted messages are summarised.
#[derive(Debug, Clone)]
pub struct SummarySettings {
    /// The kinds (of a message's own segment) that may be summarised.
    pub kinds: BTreeSet<String>,
    /// Tokens all of a pack's summary messages may take, framing included.
    pub reserve: usize,
    /// A run of evicted messages becomes one summary (else each message its own).
    pub merge: bool,
    /// The most tokens of input one hook call is given.
    pub input_tokens: usize,
    /// The hook's name, for the decisions and the lineage.
    pub hook: String,
    /// When a hook fails: a cut of the run's inputs stands in (`true`), or the run stays evicted.
    pub truncate: bool,
}

/// A run of messages to summarise, by their indices in the messages read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRun {
    pub messages: Vec<usize>,
    /// The positions of their segments.
    pub segments: Vec<usize>,
    /// Tokens the hook's text may take.
    pub max_tokens: usize,
}

/// What a run's hook gave.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// The summary's text.
    Text(Arc<str>),
    /// The hook failed (`problem`); `truncate`: a cut of the run's inputs stands in, else the run stays
    /// evicted.
    Failed { problem: String, truncate: bool },
}

/// The tokens a summary message costs besides the hook's text.
pub fn summary_framing(tokenizer: Tokenizer, accounting: Accounting) -> usize {
    // One token more: the header and the text may count one more joined than apart.
    accounting.per_message + tokenizer.count(Role::Summary.sent_name()) + tokenizer.count(SUMMARY_HEADER) + 1
}

/// The runs of messages `packed` evicted whole, from segment position `from` on (see the module docs).
pub fn message_runs(
    packer: &Packer,
    messages: &[Message],
    chat: &ChatSegments,
    phase_one: &Packed,
    settings: &SummarySettings,
    framing: usize,
    from: usize,
) -> Vec<MessageRun> {
    let joins = joining(messages, chat, phase_one, settings, from);
    let mut positions: Vec<Vec<usize>> = vec![Vec::new(); messages.len()];
    for (at, &owner) in chat.owners.iter().enumerate() {
        if let Some(list) = positions.get_mut(owner) {
            list.push(at);
        }
    }
    let mut runs: Vec<(MessageRun, usize, bool)> = Vec::new();
    let mut previous: Option<usize> = None;
    for (index, message) in messages.iter().enumerate() {
        let (Some(true), Some(positions)) = (joins.get(index).copied(), positions.get(index)) else {
            previous = None;
            continue;
        };
        let is_summary = message.role == Role::Summary;
        // An evicted segment may not have been counted whole: count it now.
        let size_of = |at: &usize| match (phase_one.decisions.get(*at), chat.segments.get(*at)) {
            (Some(decision), _) if decision.outcome.is_ok() => decision.tokens_after,
            (_, Some(segment)) => packer.size_up_to(segment, usize::MAX),
            _ => 0,
        };
        let size: usize = positions.iter().map(size_of).sum();
        let follows = previous.is_some_and(|previous| previous + 1 == index);
        match runs.last_mut() {
            Some((run, total, new)) if follows && (settings.merge || is_summary || !*new) => {
                run.messages.push(index);
                run.segments.extend(positions);
                *total += size;
                *new |= !is_summary;
            }
            _ => {
                let run = MessageRun { messages: vec![index], segments: positions.clone(), max_tokens: 0 };
                runs.push((run, size, !is_summary));
            }
        }
        previous = Some(index);
    }
    // A summary alone, with nothing new beside it, stays as it is.
    runs.retain(|(_, _, new)| *new);
    let total: usize = runs.iter().map(|(_, size, _)| size).sum();
    let share = |size: usize| share_of(settings.reserve, size, total);
    runs.into_iter()
        .map(|(run, size, _)| MessageRun { max_tokens: share(size).saturating_sub(framing).min(size), ..run })
        .filter(|run| run.max_tokens >= MIN_SUMMARY_TOKENS)
        .collect()
}

/// Which messages may join a run: evicted whole, of a kind that may be summarised, from position `from` on;
/// or a summary. A group (a turn and its results) joins whole or not at all, so that no call comes back
/// without its results, nor a result without its call.
fn joining(
    messages: &[Message],
    chat: &ChatSegments,
    phase_one: &Packed,
    settings: &SummarySettings,
    from: usize,
) -> Vec<bool> {
    // A Responses call item is its turn's history.
    let asked =
        |kind: &str| settings.kinds.contains(kind) || kind == TOOL_CALL_KIND && settings.kinds.contains("history");
    let mut joins: Vec<bool> = messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let kind = chat.primary.get(index).copied().flatten().and_then(|at| chat.segments.get(at));
            message.role == Role::Summary || kind.is_some_and(|segment| asked(&segment.kind))
        })
        .collect();
    for (at, &owner) in chat.owners.iter().enumerate() {
        let evicted = phase_one.decisions.get(at).is_some_and(|decision| decision.outcome.is_err());
        let is_summary = messages.get(owner).is_some_and(|message| message.role == Role::Summary);
        if let Some(slot) = joins.get_mut(owner) {
            *slot &= at >= from && (evicted || is_summary);
        }
    }
    let mut broken: FxHashSet<&str> = FxHashSet::default();
    for (segment, &owner) in chat.segments.iter().zip(&chat.owners) {
        if let Some(group) = segment.group.as_deref().filter(|_| !joins.get(owner).copied().unwrap_or(false)) {
            broken.insert(group);
        }
    }
    for (segment, &owner) in chat.segments.iter().zip(&chat.owners) {
        if segment.group.as_deref().is_some_and(|group| broken.contains(group)) {
            if let Some(slot) = joins.get_mut(owner) {
                *slot = false;
            }
        }
    }
    joins
}

/// A stateless conversation's phase 1: linked, made into segments and packed with `settings.reserve` kept
/// back, and its runs. `None` when nothing is to be summarised (or the room cannot be kept back).
pub fn plan_summaries(
    packer: &Packer,
    messages: &[Message],
    repair: bool,
    tokenizer: Tokenizer,
    accounting: Accounting,
    budget: usize,
    settings: &SummarySettings,
) -> Result<Option<(Planned, Vec<MessageRun>)>> {
    let linked = link(messages, repair)?;
    let chat = segments(messages, &linked, tokenizer, accounting, true);
    let room = budget.checked_sub(packer.policy().reserve_output);
    if room.is_some_and(|room| packer.total_up_to(&chat.segments, room).is_some()) {
        // It fits whole: nothing goes, nothing to summarise.
        return Ok(None);
    }
    let Ok(planned) =
        plan_linked(packer, messages, linked, chat, tokenizer, accounting, budget.saturating_sub(settings.reserve))
    else {
        return Ok(None);
    };
    if planned.note.is_some() {
        // The room kept back would cost the latest turn its place: no summaries this time.
        return Ok(None);
    }
    let framing = summary_framing(tokenizer, accounting);
    let runs = message_runs(packer, messages, &planned.chat, &planned.packed, settings, framing, 0);
    Ok((!runs.is_empty()).then_some((planned, runs)))
}

/// A cut of a run's inputs into `max_tokens`: what stands in when the hook failed.
pub fn fallback_text(inputs: &[Segment], max_tokens: usize, tokenizer: Tokenizer, marker: &str) -> Arc<str> {
    let joined = inputs.iter().map(|segment| &*segment.text).collect::<Vec<_>>().join("\n");
    Arc::from(tokenizer.cut(&joined, max_tokens, Strategy::Middle, marker).text)
}

/// Where a summary came from, for its segment's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The ids of the segments it replaced in the pack that made it.
    pub replaces: Vec<Arc<str>>,
    /// The conversation's messages it covers (an earlier summary's included).
    pub messages: Vec<usize>,
    /// 1 when made from the originals, 2 from an earlier summary and new originals; never more.
    pub depth: u8,
    pub hook: Arc<str>,
    pub max_tokens: usize,
    /// What went wrong with the hook, when a cut of the inputs stands in.
    pub fallback: Option<String>,
    /// The tokens of the originals it covers (what a later summary of them would read).
    pub source_tokens: usize,
}

/// What phase 2 is given per run: the run, its outcome, its inputs (for a cut on failure), the messages
/// it covers (the first is the number its summary message takes) and its depth.
pub struct Placing<'a> {
    pub run: &'a MessageRun,
    pub outcome: &'a RunOutcome,
    pub inputs: &'a [Segment],
    pub sources: &'a [usize],
    pub depth: u8,
    pub source_tokens: usize,
}

/// Phase 2: pack `packing` (`chat`'s segments, as the caller would pack them) with each run's summary message
/// in place of its first message. The summary messages are appended to `messages` and their segments to
/// `chat` (in the order placed), so the result reads like any conversation's pack; each placed summary's
/// position and lineage are returned with the pack.
#[allow(clippy::too_many_arguments)]
pub fn place_summaries(
    packer: &Packer,
    packing: &[Segment],
    messages: &mut Vec<Message>,
    chat: &mut ChatSegments,
    budget: usize,
    placing: &[Placing<'_>],
    accounting: Accounting,
    hook: &str,
) -> Result<(Packed, Vec<(usize, Lineage)>)> {
    let Some(tokenizer) = packer.tokenizer() else { return Ok((packer.pack(packing, budget, None)?, Vec::new())) };
    let mut summaries = Vec::with_capacity(placing.len());
    let mut made: Vec<(Message, Lineage)> = Vec::new();
    for place in placing {
        let (text, fallback) = match place.outcome {
            RunOutcome::Text(text) => (Some(Arc::clone(text)), None),
            RunOutcome::Failed { problem, truncate: true } => {
                let marker = &packer.policy().elision_marker;
                (Some(fallback_text(place.inputs, place.run.max_tokens, tokenizer, marker)), Some(problem.clone()))
            }
            RunOutcome::Failed { problem, truncate: false } => (None, Some(problem.clone())),
        };
        let number = place.sources.first().copied().unwrap_or_default();
        let segment = text.map(|text| {
            let mut message = Message::new(Role::Summary, format!("{SUMMARY_HEADER}{text}"));
            message.cuttable = false;
            message.number = number;
            let segment = summary_segment(&message, number, tokenizer, accounting);
            let replaces =
                place.run.segments.iter().filter_map(|&at| chat.segments.get(at)).map(|s| Arc::clone(&s.id)).collect();
            let lineage = Lineage {
                replaces,
                messages: place.sources.to_vec(),
                depth: place.depth,
                hook: Arc::from(hook),
                max_tokens: place.run.max_tokens,
                fallback: fallback.clone(),
                source_tokens: place.source_tokens,
            };
            made.push((message, lineage));
            segment
        });
        let run = SummaryRun { members: place.run.segments.clone(), max_tokens: place.run.max_tokens };
        summaries.push(Summary { run, segment, failure: fallback, truncate_on_failure: false, hook: hook.to_owned() });
    }
    let summarised = packer.pack_summarised(packing, budget, &summaries, None)?;
    let mut placed = Vec::new();
    for extra in summarised.extras {
        let Some(found) = made.iter().position(|(message, _)| *extra.id == *summary_id(message.number)) else {
            return Err(SchedError::InvalidArgument(format!("summary {} was placed without its message", extra.id)));
        };
        let (message, lineage) = made.swap_remove(found);
        placed.push((chat.segments.len(), lineage));
        chat.primary.push(Some(chat.segments.len()));
        chat.owners.push(messages.len());
        chat.segments.push(extra);
        messages.push(message);
    }
    Ok((summarised.packed, placed))
}

/// `inputs` cut (each in the middle, in proportion to its size) so that together they take at most
/// `limit` tokens of text.
pub fn fit_inputs(mut inputs: Vec<Segment>, limit: usize, tokenizer: Tokenizer, marker: &str) -> Vec<Segment> {
    let sizes: Vec<usize> = inputs.iter().map(|segment| tokenizer.count(&segment.text)).collect();
    let total: usize = sizes.iter().sum();
    if total <= limit {
        return inputs;
    }
    for (segment, size) in inputs.iter_mut().zip(sizes) {
        let share = u128::from(limit as u64) * u128::from(size as u64) / u128::from(total.max(1) as u64);
        let share = usize::try_from(share).unwrap_or(limit);
        let cut = tokenizer.cut(&segment.text, share, Strategy::Middle, marker);
        if cut.text.len() != segment.text.len() {
            segment.text = Arc::from(cut.text);
            segment.content_hash = crate::segment::content_hash(&segment.text);
        }
    }
    inputs
}

/// The key of a hook's inputs: their texts and roles in order, the summary's depth and its target size.
pub fn inputs_fingerprint(inputs: &[(Segment, &str)], depth: u8, max_tokens: usize) -> u128 {
    let mut bytes: Vec<u8> = vec![depth];
    bytes.extend((max_tokens as u64).to_le_bytes());
    for (segment, role) in inputs {
        bytes.extend(segment.content_hash.to_le_bytes());
        bytes.extend(role.as_bytes());
        bytes.push(0);
    }
    xxhash_rust::xxh3::xxh3_128(&bytes)
}
