//! A stateless pack of a conversation: link, make segments, pack, with the latest turn's fallback.

use super::{link, segments, Accounting, ChatSegments, Linked, Message};
use crate::error::{Result, SchedError};
use crate::packer::{Packed, Packer};
use crate::segment::Segment;
use crate::tokenizer::Tokenizer;

/// What the core decided for a conversation.
#[derive(Debug)]
pub struct Planned {
    pub linked: Linked,
    pub chat: ChatSegments,
    pub packed: Packed,
    /// A fallback that was taken, said plainly.
    pub note: Option<String>,
}

/// Link, make segments, pack; if the latest turn cannot fit beside the mandatory set even cut, pack
/// again with it optional, and say so.
pub fn plan(
    packer: &Packer,
    messages: &[Message],
    repair: bool,
    tokenizer: Tokenizer,
    accounting: Accounting,
    budget: usize,
) -> Result<Planned> {
    let linked = link(messages, repair)?;
    let chat = segments(messages, &linked, tokenizer, accounting, true);
    plan_linked(packer, messages, linked, chat, tokenizer, accounting, budget)
}

/// [`plan`] for a conversation already linked and made into segments.
pub(crate) fn plan_linked(
    packer: &Packer,
    messages: &[Message],
    linked: Linked,
    chat: ChatSegments,
    tokenizer: Tokenizer,
    accounting: Accounting,
    budget: usize,
) -> Result<Planned> {
    match pack_segments(packer, &chat.segments, budget) {
        Err(error) if is_infeasible(&error) && chat.latest_turn.is_some() => {
            let turn = chat.latest_turn.unwrap_or_default();
            let chat = segments(messages, &linked, tokenizer, accounting, false);
            let relaxed = pack_segments(packer, &chat.segments, budget)?;
            let note = format!(
                "the latest turn (from message {turn}) could not fit beside the system messages and the user's \
                 messages even cut, so it was packed like any other turn"
            );
            Ok(Planned { linked, chat, packed: relaxed, note: Some(note) })
        }
        outcome => Ok(Planned { packed: outcome?, linked, chat, note: None }),
    }
}

/// Whether a pack failed because what must be kept cannot fit.
pub(crate) fn is_infeasible(error: &SchedError) -> bool {
    matches!(error, SchedError::Budget { .. } | SchedError::QuotaInfeasible { .. } | SchedError::Uncuttable { .. })
}

/// A conversation that fits whole comes back whole: caps only apply when something has to give.
pub(crate) fn pack_segments(packer: &Packer, segments: &[Segment], budget: usize) -> Result<Packed> {
    let room = budget.checked_sub(packer.policy().reserve_output);
    if room.is_some_and(|room| packer.total_up_to(segments, room).is_some()) {
        packer.pack_without_caps(segments, budget, None)
    } else {
        packer.pack(segments, budget, None)
    }
}
