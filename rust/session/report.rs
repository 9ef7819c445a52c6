//! What a pack kept of the previous prompt: the report behind `PackedMessages.cache`.

use crate::chat::{Answer, ChatSegments, Message};
use crate::packer::Packed;
use crate::segment::content_hash;

/// One message of a sent prompt: which message of the conversation, a hash of its form as sent (role,
/// name, call ids and names, what it answers, texts as placed), and its tokens. Two messages sent the same
/// way are the same to the provider's cache, whichever messages of the conversation they are.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub(super) message: usize,
    pub(super) form: u128,
    pub(super) tokens: usize,
}

/// How much of the previous prompt a pack kept, as the provider's prefix cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheReport {
    /// Tokens of the leading messages identical to the previous prompt's.
    pub prefix_tokens: usize,
    /// The position (in the packed messages) of the first message that differs from the previous prompt;
    /// `None` when the previous prompt is a prefix of this one.
    pub first_change: Option<usize>,
    /// Why it differs.
    pub reason: Option<String>,
    /// The epoch this prompt belongs to.
    pub epoch: u64,
    /// Leading packed messages that the current epoch kept from the one before (before its cut point):
    /// the part expected to stay cached across the next epoch too.
    pub frozen_messages: usize,
    /// Tokens of each packed message, in order.
    pub message_tokens: Vec<usize>,
    /// The conversation index of each packed message, in order.
    pub messages: Vec<usize>,
    /// Leading packed messages identical to the previous prompt's.
    pub common: usize,
}

impl Sent {
    /// Whether the provider sees the two as the same bytes.
    pub(super) fn same(&self, other: &Sent) -> bool {
        self.form == other.form && self.tokens == other.tokens
    }
}

const MIX: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835;

/// A hash of what a message is sent with besides its texts.
fn frame(message: &Message) -> u128 {
    let mut key = format!("{}\u{0}{}\u{0}", message.role.name(), message.name.as_deref().unwrap_or(""));
    if let Some(answer) = &message.answers {
        key.push_str(match answer {
            Answer::Call(id) => id,
            Answer::Legacy => "\u{1}",
        });
    }
    for call in &message.calls {
        key.push('\u{0}');
        key.push_str(call.id.as_deref().unwrap_or(""));
        key.push('\u{0}');
        key.push_str(&call.name);
    }
    content_hash(&key)
}

/// The messages of a packed conversation, in order; `messages` are the messages read and `numbers` their
/// indices in the conversation.
pub(super) fn sent(chat: &ChatSegments, messages: &[Message], numbers: &[usize], packed: &Packed) -> Vec<Sent> {
    let mut sent: Vec<Sent> = Vec::new();
    for &index in &packed.order {
        let local = chat.owners.get(index).copied();
        let owner = local.and_then(|owner| numbers.get(owner)).copied();
        let (Some(owner), Some(segment)) = (owner, chat.segments.get(index)) else { continue };
        // A cut text is short (it fits the prompt); a whole one's hash is already known.
        let hash = match packed.texts.get(index) {
            Some(Some(text)) => content_hash(text),
            _ => segment.content_hash,
        };
        let tokens = packed.decisions.get(index).map_or(0, |decision| decision.tokens_after);
        match sent.last_mut() {
            Some(last) if last.message == owner => {
                last.form = (last.form ^ hash).wrapping_mul(MIX);
                last.tokens += tokens;
            }
            _ => {
                let frame = local.and_then(|local| messages.get(local)).map_or(0, frame);
                sent.push(Sent { message: owner, form: (frame ^ hash).wrapping_mul(MIX), tokens });
            }
        }
    }
    sent
}

/// Whether the prompt `sent` starts with the whole of `previous`.
pub(super) fn extends(previous: &[Sent], sent: &[Sent]) -> bool {
    previous.len() <= sent.len() && previous.iter().zip(sent).all(|(before, now)| before.same(now))
}

/// Compare a prompt with the previous one; `reason` says why it differs if it does.
pub(super) fn compare(
    previous: &[Sent],
    sent: &[Sent],
    reason: &str,
    epoch: u64,
    frozen_messages: usize,
) -> CacheReport {
    let common = previous.iter().zip(sent).take_while(|(before, now)| before.same(now)).count();
    let prefix_tokens = sent.iter().take(common).map(|message| message.tokens).sum();
    let unchanged = !previous.is_empty() && common == previous.len();
    CacheReport {
        prefix_tokens,
        first_change: (!unchanged).then_some(common),
        reason: (!unchanged).then(|| reason.to_owned()),
        epoch,
        frozen_messages,
        message_tokens: sent.iter().map(|message| message.tokens).collect(),
        messages: sent.iter().map(|message| message.message).collect(),
        common,
    }
}
