//! The last step for untrusted segments: their texts as sent (fenced), their decisions' flags, and their
//! exact counts (the fence was planned with a margin for merges at its edges).

use std::sync::PoisonError;

use super::decision::Cut;
use super::sizes::Known;
use super::{Packed, Packer, MEMO_LIMIT};
use crate::segment::{content_hash, Segment};
use crate::tokenizer::Tokenizer;
use crate::trust;

impl Packer {
    /// Untrusted segments as sent (fenced, and in the text they were packed with: neutralised, datamarked or
    /// quarantined), what trust did to each in its decision, and the fenced ones counted exactly.
    pub(super) fn fence(
        &self,
        packed: &mut Packed,
        prepared: &trust::Prepared,
        given: &[Segment],
        policy: &trust::TrustPolicy,
    ) {
        if let Some(index) = prepared.notice_at {
            noticed(packed, prepared, index);
        }
        let untrusted = prepared.segments.iter().enumerate().filter(|(_, segment)| segment.untrusted == Some(true));
        for (index, segment) in untrusted {
            // A stub is ctxsched's own words: sent as it is.
            let stubbed = packed.decisions.get(index).is_some_and(|decision| decision.cut == Some(Cut::Stubbed));
            let fence = if stubbed { trust::Fence::None } else { policy.fence };
            let kept = packed.decisions.get(index).is_some_and(|decision| decision.outcome.is_ok());
            let text = packed.text_of(&prepared.segments, index).filter(|_| kept);
            let flag = text.filter(|_| !stubbed).and_then(|text| trust::flagged(text, policy, &self.screened));
            let sent = text.map(|text| trust::fenced(text, fence));
            let Some(decision) = packed.decisions.get_mut(index) else { continue };
            decision.flags = prepared.flags.get(index).cloned().unwrap_or_default();
            decision.flags.extend(flag);
            decision.untrusted = true;
            let Some(sent) = sent else { continue };
            if let (Some(tokenizer), true) = (self.tokenizer, prepared.fence_overhead > 0 && !segment.text.is_empty()) {
                let base = segment.overhead.saturating_sub(prepared.fence_overhead);
                let exact = self.count_memoised(tokenizer, &sent).saturating_add(base);
                packed.tokens = packed.tokens.saturating_sub(decision.tokens_after).saturating_add(exact);
                if let Some(usage) = packed.usage.get_mut(&*segment.kind) {
                    usage.tokens = usage.tokens.saturating_sub(decision.tokens_after).saturating_add(exact);
                }
                decision.tokens_before =
                    decision.tokens_before.saturating_sub(decision.tokens_after).saturating_add(exact).max(exact);
                decision.tokens_after = exact;
            }
            // Sent as given (nothing to neutralise, no fence): the caller's own text, not a copy.
            let unchanged = given.get(index).is_some_and(|given| *given.text == *sent);
            if let (Some(slot), false) = (packed.texts.get_mut(index), unchanged) {
                *slot = Some(sent);
            }
        }
    }

    /// The exact count of `text`, through the count memo.
    pub(super) fn count_memoised(&self, tokenizer: Tokenizer, text: &str) -> usize {
        let hash = content_hash(text);
        let known = self.memo.lock().unwrap_or_else(PoisonError::into_inner).get(&hash).copied();
        match known {
            Some(known) if known.exact => known.tokens,
            _ => {
                let tokens = tokenizer.count(text);
                let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
                if memo.len() >= MEMO_LIMIT {
                    memo.clear();
                }
                memo.insert(hash, Known { tokens, exact: true });
                tokens
            }
        }
    }
}

/// The system prompt with the fence's notice: sent with it, and its decision says so.
fn noticed(packed: &mut Packed, prepared: &trust::Prepared, index: usize) {
    let sent = packed.text_of(&prepared.segments, index).map(str::to_owned);
    let Some(decision) = packed.decisions.get_mut(index) else { return };
    decision.flags = prepared.flags.get(index).cloned().unwrap_or_default();
    if let (Some(slot), Some(sent), true) = (packed.texts.get_mut(index), sent, decision.outcome.is_ok()) {
        *slot = Some(sent);
    }
}
