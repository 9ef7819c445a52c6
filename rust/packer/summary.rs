//! Step 5, summarising, in two phases around the user's hook (which runs in Python, never in here).
//!
//! 1. [`Packer::plan_summaries`]: pack with the summary budget kept back; the evicted segments of the kinds
//!    that may be summarised form runs (a contiguous run of evicted ones, or each alone), and the budget is
//!    shared between the runs in proportion to their sizes.
//! 2. [`Packer::pack_summarised`]: pack again with each run's summary (the hook's text, or a cut of the run's
//!    own text when the hook failed) in the place of its first member, kept; the members are evicted as
//!    summarised. The summaries fit in what phase 1 kept back, so the budget holds by construction.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Decision, Eviction, Packed, Packer};
use crate::error::Result;
use crate::segment::{Segment, Truncation};
use crate::truncation::Strategy;

/// A run shorter than this many tokens of summary is not worth a summary: it stays evicted.
pub(crate) const MIN_SUMMARY_TOKENS: usize = 16;

/// A summary segment's id is this and its first member's id.
pub(crate) const SUMMARY_PREFIX: &str = "summary-";

/// A run's share of the summaries' room: `reserve * size / total`, in integers.
pub(crate) fn share_of(reserve: usize, size: usize, total: usize) -> usize {
    let share = u128::from(reserve as u64) * u128::from(size as u64) / u128::from(total.max(1) as u64);
    usize::try_from(share).unwrap_or(reserve)
}

/// A run of evicted segments to summarise together, and the tokens its summary may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRun {
    /// Indices of the run's segments, in input order.
    pub members: Vec<usize>,
    /// The summary's size at most, in tokens (its text alone).
    pub max_tokens: usize,
}

impl SummaryRun {
    /// A hash of the members' texts, in order (from their content hashes): with the hook and the size, the
    /// summary cache's key.
    pub fn fingerprint(&self, segments: &[Segment]) -> u128 {
        let hashes: Vec<u8> = self
            .members
            .iter()
            .filter_map(|&member| segments.get(member))
            .flat_map(|segment| segment.content_hash.to_le_bytes())
            .collect();
        xxhash_rust::xxh3::xxh3_128(&hashes)
    }
}

/// What phase 2 places for a run: the hook's summary, or why there is none.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run: SummaryRun,
    /// The summary segment (kind `summary`), its text the hook's; `None` when the hook failed.
    pub segment: Option<Segment>,
    /// What went wrong with the hook, and what was done instead; `None` when it worked.
    pub failure: Option<String>,
    /// On failure, cut the run's own text into its room (`true`) or leave the run evicted (`false`).
    pub truncate_on_failure: bool,
    /// The hook's name, for the decisions.
    pub hook: String,
}

impl Packer {
    /// Phase 1: the runs to summarise. Segments of `kinds`, and those marked in `allowed`, may be summarised; `reserve`
    /// tokens are kept back for the summaries; `merge` makes a contiguous run of evicted segments one summary
    /// (else one each). No runs when nothing of those kinds is evicted, or the mandatory set needs the
    /// reserve.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_summaries(
        &self,
        segments: &[Segment],
        budget: usize,
        kinds: &BTreeSet<String>,
        allowed: &[bool],
        reserve: usize,
        merge: bool,
        now: Option<f64>,
    ) -> Result<Vec<SummaryRun>> {
        let Ok(packed) = self.pack_at(segments, budget.saturating_sub(reserve), None, now) else {
            return Ok(Vec::new());
        };
        let summarisable = |index: usize| {
            let evicted = packed.decisions.get(index).is_some_and(|decision| decision.outcome.is_err());
            let asked = allowed.get(index).copied().unwrap_or(false);
            evicted && (asked || segments.get(index).is_some_and(|segment| kinds.contains(&*segment.kind)))
        };
        let mut runs: Vec<(Vec<usize>, usize)> = Vec::new();
        let mut previous: Option<usize> = None;
        for index in (0..segments.len()).filter(|&index| summarisable(index)) {
            let size = packed.decisions.get(index).map_or(0, |decision| decision.tokens_before);
            match runs.last_mut() {
                Some((members, total)) if merge && previous == Some(index - 1) => {
                    members.push(index);
                    *total += size;
                }
                _ => runs.push((vec![index], size)),
            }
            previous = Some(index);
        }
        let separator = self.separator_tokens;
        let total: usize = runs.iter().map(|(_, size)| size).sum();
        let share = |size: usize| share_of(reserve, size, total);
        Ok(runs
            .into_iter()
            .map(|(members, size)| SummaryRun { members, max_tokens: share(size).saturating_sub(separator).min(size) })
            .filter(|run| run.max_tokens >= MIN_SUMMARY_TOKENS)
            .collect())
    }

    /// Phase 2: pack with the summaries in place. The result covers `segments` and then, in order, each
    /// placed summary (index `segments.len() + k`); a run's members are evicted as summarised.
    pub fn pack_summarised(
        &self,
        segments: &[Segment],
        budget: usize,
        summaries: &[Summary],
        now: Option<f64>,
    ) -> Result<Summarised> {
        let mut placed: Vec<Segment> = Vec::new();
        let mut extras: Vec<Segment> = Vec::new();
        // For each segment packed: its index in `segments`, or `segments.len() + k` for summary k.
        let mut origin: Vec<usize> = Vec::new();
        let mut summary_of = vec![None; segments.len()];
        for (number, summary) in summaries.iter().enumerate() {
            for &member in &summary.run.members {
                if let Some(slot) = summary_of.get_mut(member) {
                    *slot = Some(number);
                }
            }
        }
        let mut kept_summaries = vec![None; summaries.len()];
        for (index, segment) in segments.iter().enumerate() {
            let Some(number) = summary_of.get(index).copied().flatten() else {
                placed.push(segment.clone());
                origin.push(index);
                continue;
            };
            let Some(summary) = summaries.get(number) else { continue };
            if summary.run.members.first() != Some(&index) {
                continue;
            }
            let Some(stand_in) = self.stand_in(segments, summary) else {
                // The hook failed and the run stays evicted: its members are packed as they were (the rest
                // as they come).
                for &member in &summary.run.members {
                    if let Some(slot) = summary_of.get_mut(member) {
                        *slot = None;
                    }
                }
                placed.push(segment.clone());
                origin.push(index);
                continue;
            };
            if let Some(slot) = kept_summaries.get_mut(number) {
                *slot = Some(extras.len());
            }
            origin.push(segments.len() + extras.len());
            placed.push(stand_in.clone());
            extras.push(stand_in);
        }
        let packed = self.pack_at(&placed, budget, None, now)?;
        let sizes: Vec<usize> = segments
            .iter()
            .zip(&summary_of)
            .map(|(segment, number)| number.map_or(0, |_| self.size_up_to(segment, usize::MAX)))
            .collect();
        let runs = Runs { summary_of: &summary_of, kept: &kept_summaries, summaries, sizes: &sizes };
        // A restated copy the inner pack appended comes after the summaries.
        origin.extend((0..packed.appended.len()).map(|k| segments.len() + extras.len() + k));
        let mut packed = remap(segments.len(), &extras, &origin, &runs, packed);
        // A run whose hook failed and that stays evicted: its members' decisions say why.
        for (summary, _) in summaries.iter().zip(&kept_summaries).filter(|(_, kept)| kept.is_none()) {
            for &member in &summary.run.members {
                if let Some(decision) = packed.decisions.get_mut(member) {
                    decision.fallback = decision.fallback.take().or_else(|| summary.failure.clone());
                }
            }
        }
        Ok(Summarised { packed, extras })
    }

    /// The segment that stands in for a run: the hook's summary, or on failure a cut of the run's text.
    fn stand_in(&self, segments: &[Segment], summary: &Summary) -> Option<Segment> {
        if let Some(segment) = &summary.segment {
            let mut segment = segment.clone();
            segment.required = true;
            segment.truncation = Some(Truncation::None);
            return Some(segment);
        }
        if !summary.truncate_on_failure {
            return None;
        }
        let tokenizer = self.tokenizer?;
        let texts: Vec<&str> =
            summary.run.members.iter().filter_map(|&member| segments.get(member)).map(|s| &*s.text).collect();
        let joined = texts.join("\n");
        let cut = tokenizer.cut(&joined, summary.run.max_tokens, Strategy::Middle, &self.policy.elision_marker);
        let first = summary.run.members.first().and_then(|&member| segments.get(member))?;
        let mut segment = Segment::new(
            format!("{SUMMARY_PREFIX}{}", first.id),
            crate::chat::SUMMARY_KIND,
            Arc::<str>::from(&*cut.text),
        );
        segment.required = true;
        segment.truncation = Some(Truncation::None);
        Some(segment)
    }
}

/// A phase-2 pack: decisions for the inputs and then the summaries placed (`extras`, in order).
#[derive(Debug)]
pub struct Summarised {
    pub packed: Packed,
    pub extras: Vec<Segment>,
}

/// Which summary each input went into, and the inputs' sizes.
struct Runs<'a> {
    summary_of: &'a [Option<usize>],
    /// For each summary, its index among the extras, if it was placed.
    kept: &'a [Option<usize>],
    summaries: &'a [Summary],
    sizes: &'a [usize],
}

/// The phase-2 pack in the inputs' numbering, summaries after them; members evicted as summarised.
fn remap(inputs: usize, extras: &[Segment], origin: &[usize], runs: &Runs<'_>, packed: Packed) -> Packed {
    let count = inputs + extras.len() + packed.appended.len();
    let mut decisions: Vec<Option<Decision>> = vec![None; count];
    let mut texts: Vec<Option<String>> = vec![None; count];
    for ((decision, text), &at) in packed.decisions.into_iter().zip(packed.texts).zip(origin) {
        if let (Some(slot), Some(text_slot)) = (decisions.get_mut(at), texts.get_mut(at)) {
            *slot = Some(Decision { index: at, ..decision });
            *text_slot = text;
        }
    }
    let summary_tokens: Vec<usize> = (0..extras.len())
        .map(|extra| decisions.get(inputs + extra).and_then(Option::as_ref).map_or(0, |decision| decision.tokens_after))
        .collect();
    for (index, number) in runs.summary_of.iter().enumerate() {
        let Some(number) = *number else { continue };
        let (Some(summary), Some(slot)) = (runs.summaries.get(number), decisions.get_mut(index)) else { continue };
        let Some(extra) = runs.kept.get(number).copied().flatten() else { continue };
        let Some(into) = extras.get(extra) else { continue };
        let by =
            if summary.failure.is_some() { "a cut of the run's own text".to_owned() } else { summary.hook.clone() };
        let tokens = summary_tokens.get(extra).copied().unwrap_or(0);
        *slot = Some(Decision {
            index,
            tokens_before: runs.sizes.get(index).copied().unwrap_or(0),
            counted: true,
            tokens_after: 0,
            outcome: Err(Eviction::Summarised { into: into.id.to_string(), tokens, by }),
            cut: None,
            strategy: None,
            fallback: summary.failure.clone(),
            flags: Vec::new(),
            untrusted: false,
        });
    }
    let order = packed.order.iter().filter_map(|&position| origin.get(position).copied()).collect();
    // Every input is packed or a member of a placed summary, and every summary placed is packed.
    let decisions =
        decisions.into_iter().enumerate().map(|(index, decision)| decision.unwrap_or_else(|| undecided(index)));
    Packed { order, texts, decisions: decisions.collect(), ..packed }
}

/// The decision of a segment no phase decided: unreachable (see `remap`), and if it were reached the
/// conservation property would show it.
fn undecided(index: usize) -> Decision {
    Decision {
        index,
        tokens_before: 0,
        counted: false,
        tokens_after: 0,
        outcome: Err(Eviction::CutToNothing { tokens: 0 }),
        cut: None,
        strategy: None,
        fallback: Some("no phase of the summary step decided it".to_owned()),
        flags: Vec::new(),
        untrusted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::segment::Pin;
    use crate::tokenizer::{Encoding, Tokenizer};

    fn packer() -> Packer {
        Packer::new(Some(Tokenizer::new(Encoding::O200kBase)), Policy::default())
    }

    fn segments(turns: usize) -> Vec<Segment> {
        let mut system = Segment::new("system", "system", "Be careful.");
        system.pin = Pin::Head;
        let mut all = vec![system];
        all.extend((0..turns).map(|turn| Segment::new(format!("h{turn}"), "history", "word ".repeat(200))));
        all
    }

    fn kinds() -> BTreeSet<String> {
        ["history".to_owned()].into_iter().collect()
    }

    #[test]
    fn runs_are_the_evicted_history_sharing_the_reserve() {
        let all = segments(10);
        let Ok(runs) = packer().plan_summaries(&all, 1000, &kinds(), &[], 200, true, None) else { panic!("plans") };
        assert_eq!(runs.len(), 1, "one contiguous run: {runs:?}");
        let run = runs.first().cloned().unwrap_or(SummaryRun { members: Vec::new(), max_tokens: 0 });
        assert_eq!(run.members.first(), Some(&1), "the oldest history went");
        assert!(run.max_tokens <= 200);
        let Ok(each) = packer().plan_summaries(&all, 1000, &kinds(), &[], 200, false, None) else { panic!("plans") };
        assert_eq!(each.iter().map(|run| run.members.len()).max(), Some(1));
        assert!(each.iter().map(|run| run.max_tokens).sum::<usize>() <= 200);
    }

    #[test]
    fn summaries_take_their_runs_place_within_the_budget_and_failures_fall_back() {
        let packer = packer();
        let all = segments(10);
        let Ok(runs) = packer.plan_summaries(&all, 1000, &kinds(), &[], 200, true, None) else { panic!("plans") };
        let Some(run) = runs.first().cloned() else { panic!("a run") };
        let summary = Segment::new("summary-h0", "summary", "They read the logs.");
        let made = |segment: Option<Segment>, failure: Option<String>, truncate_on_failure: bool| Summary {
            run: run.clone(),
            segment,
            failure,
            truncate_on_failure,
            hook: "test".to_owned(),
        };
        for (case, expect_summary) in [
            (made(Some(summary.clone()), None, true), true),
            (made(None, Some("raised".to_owned()), true), true),
            (made(None, Some("raised".to_owned()), false), false),
        ] {
            let Ok(result) = packer.pack_summarised(&all, 1000, &[case], None) else { panic!("packs") };
            assert!(result.packed.tokens <= 1000);
            assert_eq!(result.extras.len(), usize::from(expect_summary));
            assert_eq!(result.packed.decisions.len(), all.len() + result.extras.len());
            let summarised = result
                .packed
                .decisions
                .iter()
                .filter(|decision| matches!(decision.outcome, Err(Eviction::Summarised { .. })))
                .count();
            assert_eq!(summarised, if expect_summary { run.members.len() } else { 0 });
            if expect_summary {
                // Right after the head pin: where the run's first member was.
                assert_eq!(result.packed.order.get(1), Some(&all.len()));
            }
        }
    }
}
