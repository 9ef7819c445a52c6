//! Cutting texts to their planned sizes, and the mandatory cuts made before the fill.
//!
//! A cut can come out smaller than the size it was made for: `lines` keeps whole lines, `json` whole
//! values, a hook what it likes. The mandatory set, when it must be cut, is planned to fill the room
//! exactly, so the tokens its cuts leave over would be wasted (and the log would say "0 left") if the fill
//! were planned with the sizes asked for. So mandatory cuts are made as soon as they are planned, before
//! the fill, which then sees their real sizes; the texts are cut again, for the same sizes, when the plan
//! is realised (from the per-pack cache, so no hook is called twice).

use std::collections::hash_map::Entry;
use std::sync::PoisonError;

use rustc_hash::FxHashMap;

use super::allocate::{Allocator, Plan};
use super::{mandatory_members, Packer, TruncatorFailure, CUT_MEMO_LIMIT};
use crate::error::{Result, SchedError};
use crate::segment::{content_hash, Truncation};
use crate::tokenizer::Tokenizer;
use crate::truncation::Strategy;

/// A cut text: the text, the strategy (or hook) that made it, and why the requested one was not used.
pub(super) type CutText = (String, String, Option<String>);

/// Cuts made in one pack, by (segment, tokens of text asked for): planning the mandatory set (once per
/// stub plan), realising and repairing all ask for the same cuts. The tokens of the mandatory ones are
/// kept too, so that each stub plan does not count them again.
#[derive(Default)]
pub(super) struct Cuts {
    texts: FxHashMap<(usize, usize), CutText>,
    tokens: FxHashMap<(usize, usize), usize>,
}

impl Packer {
    /// Steps 2–4, with the mandatory cuts made (and their real sizes planned) before the fill.
    pub(super) fn plan(&self, allocator: &Allocator<'_>, cuts: &mut Cuts) -> Result<Plan> {
        allocator.plan(|plan| self.settle_mandatory(allocator, plan, cuts))
    }

    /// Cut each mandatory segment that the plan cuts, and plan it at its real size when that is smaller,
    /// keeping the size it was cut for (`Plan::cut_size`). A cut that keeps nothing is a typed error: a
    /// mandatory segment is never dropped.
    fn settle_mandatory(&self, allocator: &Allocator<'_>, plan: &mut Plan, cuts: &mut Cuts) -> Result<()> {
        let Some(tokenizer) = self.tokenizer else {
            return Ok(()); // an external counter: nothing is cut
        };
        for index in mandatory_members(plan) {
            let planned = plan.sizes.planned(index);
            let (Some(segment), Some(how)) = (allocator.segments.get(index), allocator.cut_of(index)) else {
                continue;
            };
            if planned >= plan.sizes.before(index) {
                continue;
            }
            let room = planned.saturating_sub(segment.overhead);
            let key = (index, room);
            let real = if let Some(&tokens) = cuts.tokens.get(&key) {
                tokens
            } else {
                let (cut, _, _) = self.cut_cached(tokenizer, cuts, key, &segment.text, &how)?;
                if cut.is_empty() && !segment.text.is_empty() {
                    return Err(SchedError::Uncuttable { id: segment.id.to_string(), tokens: planned });
                }
                let tokens = self.count_memoised(tokenizer, cut).saturating_add(segment.overhead);
                cuts.tokens.insert(key, tokens);
                tokens
            };
            if real < planned {
                plan.sizes.set_planned(index, real);
                plan.cut_for.insert(index, planned);
            }
        }
        Ok(())
    }

    /// `text` (segment `key.0`) cut to `key.1` tokens as `how` says, once per pack.
    pub(super) fn cut_cached<'c>(
        &self,
        tokenizer: Tokenizer,
        cuts: &'c mut Cuts,
        key: (usize, usize),
        text: &str,
        how: &Truncation,
    ) -> Result<&'c CutText> {
        Ok(match cuts.texts.entry(key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(self.cut_text(tokenizer, text, how, key.1)?),
        })
    }

    /// A segment's text cut to `max_tokens` as `how` says; a failing truncator falls back to `auto`.
    fn cut_text(&self, tokenizer: Tokenizer, text: &str, how: &Truncation, max_tokens: usize) -> Result<CutText> {
        let marker = &self.policy.elision_marker;
        let by = |strategy: Strategy, reason: Option<String>| {
            let cut = tokenizer.cut(text, max_tokens, strategy, marker);
            let fallback = match (reason, cut.fallback) {
                (Some(reason), Some(also)) => Some(format!("{reason}; {also}")),
                (reason, also) => reason.or(also),
            };
            (cut.text.into_owned(), cut.strategy.name().to_owned(), fallback)
        };
        let Truncation::Hook(name) = how else {
            let strategy = if let Truncation::Cut(strategy) = how { *strategy } else { Strategy::Auto };
            let key = (content_hash(text), max_tokens, strategy);
            if let Some(known) = self.cut_memo.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
                return Ok(known.clone());
            }
            let cut = by(strategy, None);
            let mut memo = self.cut_memo.lock().unwrap_or_else(PoisonError::into_inner);
            if memo.len() >= CUT_MEMO_LIMIT {
                memo.clear();
            }
            memo.insert(key, cut.clone());
            return Ok(cut);
        };
        let Some(truncators) = &self.truncators else {
            return Ok(by(Strategy::Auto, Some(format!("truncator {name:?} is not registered; auto used"))));
        };
        let failed = |reason: String| by(Strategy::Auto, Some(format!("truncator {name:?} {reason}; auto used")));
        Ok(match truncators.truncate(name, text, max_tokens) {
            Ok(cut) if cut.is_empty() && max_tokens > 0 && !text.is_empty() => failed("returned nothing".to_owned()),
            Ok(cut) if tokenizer.fits(&cut, max_tokens) => (cut, name.to_string(), None),
            Ok(cut) => failed(format!("returned {} tokens for a limit of {max_tokens}", tokenizer.count(&cut))),
            Err(TruncatorFailure::Failed(reason)) => failed(reason),
            Err(TruncatorFailure::Interrupt) => return Err(SchedError::Interrupted { name: name.to_string() }),
        })
    }
}
