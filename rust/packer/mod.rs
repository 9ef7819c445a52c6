//! The allocator: `Packer::pack(segments, budget)` (DESIGN.md, "The scheduling model", steps 1–4, 6, 7).
//!
//! Step 5 (summarisation) will slot in between `plan` and `realise`: Rust returns the evicted units that
//! may be summarised, Python runs the hooks, Rust packs again with the summaries in their place.

mod allocate;
mod cuts;
mod decision;
mod explain;
mod fence;
mod freshness;
mod place;
mod placement;
mod restate;
mod sizes;
mod stubs;
mod summary;

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

pub(crate) use decision::moment;
pub use decision::{Admission, Cut, Decision, Eviction};
pub use placement::{Placement, Region, HIGH_PRIORITY};
pub use restate::{Restate, RESTATED_KIND, RESTATE_HEADER};
pub(crate) use summary::{share_of, MIN_SUMMARY_TOKENS, SUMMARY_PREFIX};
pub use summary::{Summarised, Summary, SummaryRun};

use crate::error::{Result, SchedError};
use crate::policy::Policy;
use crate::segment::{Segment, Truncation};
use crate::tokenizer::Tokenizer;
use crate::truncation::Strategy;
use crate::trust;
use allocate::{Allocator, Plan};
use cuts::{CutText, Cuts};
use sizes::Known;

/// The user's truncation functions, by name. The core never calls into Python: the bindings implement
/// this, and the packer checks what comes back (a failure, an empty or an over-long result means `auto`
/// is used, and the decision says why).
pub trait Truncators: Send + Sync {
    /// Whether a function of this name is registered.
    fn has(&self, name: &str) -> bool;
    /// The registered names, for error messages.
    fn names(&self) -> Vec<String>;
    /// `text` cut to `max_tokens` by the function `name`, or why it failed.
    fn truncate(&self, name: &str, text: &str, max_tokens: usize) -> std::result::Result<String, TruncatorFailure>;
}

impl<T: Truncators + ?Sized> Truncators for std::sync::Arc<T> {
    fn has(&self, name: &str) -> bool {
        (**self).has(name)
    }
    fn names(&self) -> Vec<String> {
        (**self).names()
    }
    fn truncate(&self, name: &str, text: &str, max_tokens: usize) -> std::result::Result<String, TruncatorFailure> {
        (**self).truncate(name, text, max_tokens)
    }
}

/// How a user truncator failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TruncatorFailure {
    /// It failed for this reason; the segment is cut by `auto` instead.
    Failed(String),
    /// It asked for packing to stop altogether.
    Interrupt,
}

/// Token usage of one kind against its quota.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindUsage {
    /// Tokens of the kind that were placed.
    pub tokens: usize,
    /// Segments of the kind that were placed.
    pub kept: usize,
    /// Segments of the kind that were evicted.
    pub evicted: usize,
    /// The quota minimum, resolved to tokens.
    pub min: usize,
    /// The quota maximum, resolved to tokens.
    pub max: Option<usize>,
}

/// The packed prompt and every decision behind it.
#[derive(Debug, Clone)]
pub struct Packed {
    /// Indices of the placed segments, in final order.
    pub order: Vec<usize>,
    /// The cut text of each truncated segment (by input index); `None` when kept whole or evicted.
    pub texts: Vec<Option<String>>,
    /// One decision per input segment, in input order.
    pub decisions: Vec<Decision>,
    /// Exact tokens of the rendered prompt (segments joined by the separator). With an external counter,
    /// the planned total, which the caller verifies.
    pub tokens: usize,
    /// The budget asked for.
    pub budget: usize,
    /// Budget minus the output reserve: what `tokens` never exceeds.
    pub usable: usize,
    /// Per-kind usage, for every kind present or with a quota.
    pub usage: BTreeMap<String, KindUsage>,
    /// Tokens of the separator between placed segments (0 for separate messages).
    pub separator_tokens: usize,
    /// Segments the packer added after the inputs (index `inputs + k`): the restated task, if any.
    pub appended: Vec<Appended>,
}

/// A segment the packer added: a copy of input `source`.
#[derive(Debug, Clone)]
pub struct Appended {
    pub segment: Segment,
    pub source: usize,
}

impl Packed {
    /// The rendered prompt: placed segments (cut ones cut) joined by `separator`.
    pub fn render(&self, segments: &[Segment], separator: &str) -> String {
        let parts = self.order.iter().filter_map(|&index| self.text_of(segments, index));
        parts.collect::<Vec<&str>>().join(separator)
    }

    /// Whether segment `index` is sent with a text other than its own (cut, stubbed or fenced).
    pub fn rewritten(&self, index: usize) -> bool {
        self.texts.get(index).is_some_and(Option::is_some)
    }

    /// The placed text of segment `index`.
    pub fn text_of<'a>(&'a self, segments: &'a [Segment], index: usize) -> Option<&'a str> {
        match self.texts.get(index) {
            Some(Some(cut)) => Some(cut.as_str()),
            _ => segments.get(index).map(|segment| &*segment.text),
        }
    }
}

/// A tokenizer (or external counts), a policy and a memo of token counts by content hash.
pub struct Packer {
    tokenizer: Option<Tokenizer>,
    policy: Policy,
    separator_tokens: usize,
    memo: Mutex<FxHashMap<u128, Known>>,
    /// Cuts made by built-in strategies, by (content hash, room, strategy), across packs: an agent loop
    /// cuts the same oversized tool result to the same size on every turn.
    cut_memo: Mutex<FxHashMap<(u128, usize, Strategy), CutText>>,
    /// Sampled tokens per byte of long texts, by content hash: the number a stub states for a text too
    /// long to count is estimated once, not on every pack of an agent loop.
    densities: Mutex<FxHashMap<u128, f64>>,
    /// Untrusted texts screened (neutralised, scanned), by content hash.
    screened: trust::ScreenMemo,
    truncators: Option<Box<dyn Truncators>>,
}

/// External token counts above this are refused (no sum of them can overflow then).
const MAX_COUNT: usize = 1 << 40;

fn mandatory_members(plan: &Plan) -> Vec<usize> {
    plan.units.iter().filter(|unit| unit.mandatory).flat_map(|unit| unit.members.iter().copied()).collect()
}

/// A kept cut segment up to this many bytes is counted in full for the log ("cut 34999 -> 1500"); a longer
/// one shows the lower bound its cut needed ("cut ≥1501 -> 1500").
const LOG_COUNT_LIMIT: usize = 1 << 20;

/// The memo is cleared when it grows past this many texts (an agent's whole history is far smaller).
const MEMO_LIMIT: usize = 1 << 20;
/// The cut memo is cleared when it grows past this many cuts.
const CUT_MEMO_LIMIT: usize = 1 << 12;

impl Packer {
    /// A packer counting with `tokenizer`, or with counts given to each `pack` call when `None`.
    pub fn new(tokenizer: Option<Tokenizer>, policy: Policy) -> Self {
        let separator_tokens = tokenizer.map_or(0, |tokenizer| tokenizer.count(&policy.separator));
        Self {
            tokenizer,
            policy,
            separator_tokens,
            memo: Mutex::new(FxHashMap::default()),
            cut_memo: Mutex::new(FxHashMap::default()),
            densities: Mutex::new(FxHashMap::default()),
            screened: Mutex::new(FxHashMap::default()),
            truncators: None,
        }
    }

    /// The packer with the user's truncation functions.
    #[must_use]
    pub fn with_truncators(mut self, truncators: Box<dyn Truncators>) -> Self {
        self.truncators = Some(truncators);
        self
    }

    /// The built-in tokenizer, if the packer counts with one.
    pub fn tokenizer(&self) -> Option<Tokenizer> {
        self.tokenizer
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Texts whose counts are memoised.
    pub fn memo_len(&self) -> usize {
        self.memo.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Pack `segments` into `budget` tokens. `counts` (one per segment) and `separator_tokens` are
    /// required when the packer has no tokenizer and ignored otherwise.
    pub fn pack(&self, segments: &[Segment], budget: usize, external: Option<(&[usize], usize)>) -> Result<Packed> {
        self.pack_with(&self.policy, segments, budget, external, None)
    }

    /// [`Packer::pack`] at a time (seconds since the epoch): expired segments are evicted, and ones older
    /// than the policy's `max_age` lose priority (see `freshness`).
    pub fn pack_at(
        &self,
        segments: &[Segment],
        budget: usize,
        external: Option<(&[usize], usize)>,
        now: Option<f64>,
    ) -> Result<Packed> {
        self.pack_with(&self.policy, segments, budget, external, now)
    }

    /// [`Packer::pack`] with no per-kind caps: what a chat front-end does when the whole conversation fits
    /// (a fit check with [`Packer::total_up_to`] first), sharing this packer's memo.
    pub fn pack_without_caps(
        &self,
        segments: &[Segment],
        budget: usize,
        external: Option<(&[usize], usize)>,
    ) -> Result<Packed> {
        let uncapped = Policy { segment_caps: BTreeMap::new(), ..self.policy.clone() };
        self.pack_with(&uncapped, segments, budget, external, None)
    }

    fn pack_with(
        &self,
        policy: &Policy,
        segments: &[Segment],
        budget: usize,
        external: Option<(&[usize], usize)>,
        now: Option<f64>,
    ) -> Result<Packed> {
        check_ids(segments)?;
        let Some(restated) = self.restated(segments, policy.restate.as_ref()) else {
            return self.pack_given(policy, segments, budget, external, now);
        };
        let after = policy.restate.as_ref().map_or(0, |restate| restate.after_tokens);
        let source_id = segments.get(restated.source).map(|segment| segment.id.to_string()).unwrap_or_default();
        match self.pack_given(policy, &restated.segments, budget, external, now) {
            Ok(mut packed) => {
                let copies = restated.segments.get(segments.len()..).unwrap_or_default();
                let source = restated.source;
                packed.appended = copies.iter().map(|copy| Appended { segment: copy.clone(), source }).collect();
                if let Some(copy) = packed.decisions.get_mut(segments.len()) {
                    copy.flags.push(format!("restates {source_id} at the tail: over {after} tokens came after it"));
                }
                Ok(packed)
            }
            Err(error) if crate::chat::is_infeasible(&error) => {
                let mut packed = self.pack_given(policy, segments, budget, external, now)?;
                if let Some(source) = packed.decisions.get_mut(restated.source) {
                    source.flags.push("not restated at the tail: the budget cannot hold the copy".to_owned());
                }
                Ok(packed)
            }
            Err(error) => Err(error),
        }
    }

    /// [`Packer::pack_with`] of exactly these segments.
    fn pack_given(
        &self,
        policy: &Policy,
        segments: &[Segment],
        budget: usize,
        external: Option<(&[usize], usize)>,
        now: Option<f64>,
    ) -> Result<Packed> {
        check_ids(segments)?;
        self.check_hooks(segments)?;
        let standing = freshness::standings(segments, now, policy.max_age);
        // Stale segments sent with their date, when the policy says: counted (and fenced) as sent.
        let dated = if policy.as_of { freshness::dated(segments, &standing) } else { None };
        let segments = dated.as_deref().unwrap_or(segments);
        let prepared = trust::prepare(segments, &policy.trust, self.tokenizer, &self.screened)?;
        let given = segments;
        let segments = prepared.as_ref().map_or(segments, |prepared| &prepared.segments);
        let usable = budget.checked_sub(self.policy.reserve_output).ok_or_else(|| SchedError::Budget {
            needed: self.policy.reserve_output,
            usable: 0,
            budget,
            reserve: self.policy.reserve_output,
            members: Vec::new(),
        })?;
        let (known, separator) = self.known_counts(segments, external)?;
        let allocator = Allocator {
            segments,
            known: &known,
            tokenizer: self.tokenizer,
            policy,
            usable,
            separator,
            can_truncate: self.tokenizer.is_some(),
            standing: &standing,
            enough_evictions: None,
        };
        // Cuts by (segment, size), so that planning again (stubs), re-realising after a repair and cutting the
        // mandatory set before the fill do not cut (or call a hook) again.
        let mut cuts = Cuts::default();
        let stubbed = match self.tokenizer {
            Some(tokenizer) => self.choose_stubs(tokenizer, &allocator, &mut cuts)?,
            None => None,
        };
        // What the stub search learnt is in the memo now.
        let fresh = match (&stubbed, self.tokenizer) {
            (_, None) => known.clone(),
            (stubbed, Some(_)) => self.remembered(stubbed.as_ref().map_or(segments, |stubbed| &stubbed.segments)),
        };
        let allocator = Allocator {
            segments: stubbed.as_ref().map_or(segments, |stubbed| &stubbed.segments),
            known: &fresh,
            ..allocator
        };
        let mut plan = self.plan(&allocator, &mut cuts)?;
        self.remember(allocator.segments, plan.sizes.counted_now(allocator.known, allocator.segments));
        let realise = |plan: &Plan, cuts: &mut Cuts| {
            let mut packed = self.realise(&allocator, plan, budget, cuts)?;
            if let Some(stubbed) = &stubbed {
                stubbed.mark(&mut packed);
            }
            if let Some(prepared) = &prepared {
                self.fence(&mut packed, prepared, given, &policy.trust);
            }
            if let Some(dated) = &dated {
                freshness::mark_dated(&mut packed, dated, &standing);
            }
            Ok::<Packed, SchedError>(packed)
        };
        let mut packed = realise(&plan, &mut cuts)?;
        while drop_empty_cuts(&allocator, &mut plan, &packed)? {
            packed = realise(&plan, &mut cuts)?;
        }
        self.verify(&allocator, segments, &mut plan, &mut packed, &mut cuts, realise)?;
        Ok(packed)
    }

    /// Step 7: count the render as it will be sent; repair it if tokens merged across a separator (separate
    /// messages cannot merge: their exact counts add up) by evicting the last admitted units.
    fn verify(
        &self,
        allocator: &Allocator<'_>,
        segments: &[Segment],
        plan: &mut Plan,
        packed: &mut Packed,
        cuts: &mut Cuts,
        realise: impl Fn(&Plan, &mut Cuts) -> Result<Packed>,
    ) -> Result<()> {
        let (Some(tokenizer), true) = (self.tokenizer, self.policy.joined) else { return Ok(()) };
        let usable = allocator.usable;
        loop {
            packed.tokens = tokenizer.count(&packed.render(segments, &self.policy.separator));
            if packed.tokens <= usable {
                return Ok(());
            }
            let Some(unit) = plan.admitted.pop() else {
                return Err(SchedError::Budget {
                    needed: packed.tokens,
                    usable,
                    budget: packed.budget,
                    reserve: self.policy.reserve_output,
                    members: allocator.describe(plan, &mandatory_members(plan)),
                });
            };
            let members = plan.units.get(unit).map(|unit| unit.members.clone()).unwrap_or_default();
            for index in members {
                if let Some(slot) = plan.outcome.get_mut(index) {
                    *slot = Err(Eviction::BoundaryRepair);
                }
            }
            *packed = realise(plan, cuts)?;
        }
    }

    /// The counts known before packing (the memo's, or the external counter's) and the separator's tokens.
    fn known_counts(
        &self,
        segments: &[Segment],
        external: Option<(&[usize], usize)>,
    ) -> Result<(Vec<Option<Known>>, usize)> {
        Ok(match (self.tokenizer, external) {
            (Some(_), _) => (self.remembered(segments), self.separator_tokens),
            (None, Some((counts, separator))) if counts.len() == segments.len() => {
                // Bounded so that no sum of counts can overflow (2^40 tokens is far beyond any model).
                if let Some(&count) = counts.iter().chain([&separator]).find(|&&count| count > MAX_COUNT) {
                    return Err(SchedError::InvalidArgument(format!(
                        "a token count of {count} is implausibly large (the limit is {MAX_COUNT})"
                    )));
                }
                (counts.iter().map(|&tokens| Some(Known { tokens, exact: true })).collect(), separator)
            }
            (None, Some((counts, _))) => {
                return Err(SchedError::InvalidArgument(format!(
                    "{} counts given for {} segments",
                    counts.len(),
                    segments.len()
                )))
            }
            (None, None) => {
                return Err(SchedError::InvalidArgument("a packer without a tokenizer needs counts".to_owned()))
            }
        })
    }

    /// The total size of `segments` (texts and overheads) if it is at most `limit`, else `None`; reads no
    /// text much further than that and keeps what it learns in the memo (a fit check before packing).
    ///
    /// Mandatory segments are read first, then the rest newest first: when the total does not fit, what was
    /// read is what a pack keeps, so the counts are not wasted. Texts are counted in parallel batches of
    /// about as many bytes as the room left could hold.
    pub fn total_up_to(&self, segments: &[Segment], limit: usize) -> Option<usize> {
        let tokenizer = self.tokenizer?;
        let known = self.remembered(segments);
        let mut total = segments.iter().map(|segment| segment.overhead).fold(0usize, usize::saturating_add);
        let mandatory = segments.iter().enumerate().filter(|(_, segment)| segment.is_mandatory());
        let rest = segments.iter().enumerate().rev().filter(|(_, segment)| !segment.is_mandatory());
        let mut order = mandatory.chain(rest).map(|(index, _)| index).peekable();
        let mut learnt = Vec::new();
        let mut fits = total <= limit;
        while fits && order.peek().is_some() {
            let room = limit - total;
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            // What the batch is known to hold already: once that is over the room the answer is no, and
            // counting the segments behind it would only be work thrown away (a warm memo would otherwise
            // let each fit check read a little further back than the last).
            let mut known_tokens = 0usize;
            let batch_bytes = sizes::batch_bytes(room);
            while let Some(index) =
                order.next_if(|_| batch.is_empty() || (bytes <= batch_bytes && known_tokens <= room))
            {
                let (Some(segment), known) = (segments.get(index), known.get(index).copied().flatten()) else {
                    continue;
                };
                match known {
                    Some(count) if count.exact || count.tokens > room => {
                        known_tokens = known_tokens.saturating_add(count.tokens);
                    }
                    _ => bytes = bytes.saturating_add(segment.text.len()),
                }
                batch.push((index, segment, known));
            }
            let counts: Vec<Option<Known>> = batch
                .par_iter()
                .map(|&(_, segment, known)| match known {
                    Some(count) if count.exact || count.tokens > room => None,
                    known => Some(sizes::read(tokenizer, &segment.text, room, known.map_or(0, |known| known.tokens))),
                })
                .collect();
            for (&(index, _, known), counted) in batch.iter().zip(counts) {
                let count = counted.or(known).unwrap_or(Known { tokens: 0, exact: true });
                if let Some(counted) = counted {
                    learnt.push((index, counted));
                }
                match total.checked_add(count.tokens) {
                    Some(sum) if count.exact && sum <= limit => total = sum,
                    _ => fits = false,
                }
            }
        }
        self.remember(segments, learnt.into_iter());
        fits.then_some(total)
    }

    /// The size of `segment` (text and overhead) if it is at most `limit`, else more than `limit`: counted
    /// no further than a decision about `limit` needs, with the memo.
    pub fn size_up_to(&self, segment: &Segment, limit: usize) -> usize {
        let Some(tokenizer) = self.tokenizer else { return segment.overhead };
        let known = self.remembered(std::slice::from_ref(segment)).pop().flatten();
        let count = match known {
            Some(count) if count.exact || count.tokens.saturating_add(segment.overhead) > limit => count,
            known => {
                let room = limit.saturating_sub(segment.overhead);
                let count = sizes::read(tokenizer, &segment.text, room, known.map_or(0, |known| known.tokens));
                self.remember(std::slice::from_ref(segment), std::iter::once((0, count)));
                count
            }
        };
        count.tokens.saturating_add(segment.overhead)
    }

    /// Counts (or lower bounds) the memo already knows, by content hash.
    fn remembered(&self, segments: &[Segment]) -> Vec<Option<Known>> {
        let memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        segments.iter().map(|segment| memo.get(&segment.content_hash).copied()).collect()
    }

    fn remember(&self, segments: &[Segment], counted: impl Iterator<Item = (usize, Known)>) {
        let fresh: Vec<(u128, Known)> =
            counted.filter_map(|(index, count)| Some((segments.get(index)?.content_hash, count))).collect();
        if fresh.is_empty() {
            return;
        }
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        if memo.len() + fresh.len() > MEMO_LIMIT {
            memo.clear();
        }
        for (hash, count) in fresh {
            let entry = memo.entry(hash).or_insert(count);
            if !entry.exact && (count.exact || count.tokens > entry.tokens) {
                *entry = count;
            }
        }
    }

    /// Cut the texts to their planned sizes, place them, and write the decisions and usage.
    fn realise(&self, allocator: &Allocator<'_>, plan: &Plan, budget: usize, cuts: &mut Cuts) -> Result<Packed> {
        let segments = allocator.segments;
        let mut texts = vec![None; segments.len()];
        let mut decisions = Vec::with_capacity(segments.len());
        let mut kept = Vec::new();
        let mut usage: BTreeMap<String, KindUsage> = BTreeMap::new();
        for (kind, quota) in &self.policy.quotas {
            let entry = usage.entry(kind.clone()).or_default();
            entry.min = quota.min.resolve(allocator.usable);
            entry.max = quota.max.map(|max| max.resolve(allocator.usable));
        }
        let mut planned_total = 0;
        for (index, segment) in segments.iter().enumerate() {
            let (mut before, mut counted) = (plan.sizes.before(index), plan.sizes.counted(index));
            let outcome = plan.outcome.get(index).cloned().unwrap_or(Err(Eviction::BoundaryRepair));
            if let (Some(tokenizer), true, false, true) =
                (self.tokenizer, outcome.is_ok(), counted, segment.text.len() <= LOG_COUNT_LIMIT)
            {
                // A kept cut segment read only up to its cap: counted in full for the log, unless huge.
                let tokens = tokenizer.count(&segment.text);
                self.remember(segments, std::iter::once((index, Known { tokens, exact: true })));
                (before, counted) = (tokens.saturating_add(segment.overhead), true);
            }
            let mut after = 0;
            let mut strategy = None;
            if outcome.is_ok() {
                after = plan.sizes.planned(index);
                if after < before {
                    if let (Some(tokenizer), Some(how)) = (self.tokenizer, allocator.cut_of(index)) {
                        // Cut for the size asked for: a mandatory cut is planned at the smaller size it came out at.
                        let room = plan.cut_size(index).saturating_sub(segment.overhead);
                        let (cut, used, fallback) =
                            self.cut_cached(tokenizer, cuts, (index, room), &segment.text, &how)?.clone();
                        // Through the memo: planning a mandatory cut has counted it, and so has an earlier pack.
                        after = self.count_memoised(tokenizer, &cut) + segment.overhead;
                        strategy = Some((used, fallback));
                        if let Some(slot) = texts.get_mut(index) {
                            *slot = Some(cut);
                        }
                    }
                }
                kept.push(index);
                planned_total += after + allocator.separator;
            }
            if !usage.contains_key(&*segment.kind) {
                usage.insert(segment.kind.to_string(), KindUsage::default());
            }
            let Some(entry) = usage.get_mut(&*segment.kind) else { continue };
            if outcome.is_ok() {
                entry.tokens += after;
                entry.kept += 1;
            } else {
                entry.evicted += 1;
            }
            let cut = plan.cut.get(index).cloned().flatten();
            let (strategy, fallback) = strategy.map_or((None, None), |(used, fallback)| (Some(used), fallback));
            decisions.push(Decision {
                index,
                tokens_before: before,
                counted,
                tokens_after: after,
                outcome,
                cut,
                strategy,
                fallback,
                flags: Vec::new(),
                untrusted: false,
            });
        }
        Ok(Packed {
            order: place::place(segments, &kept, &self.policy),
            texts,
            decisions,
            tokens: planned_total.saturating_sub(allocator.separator),
            budget,
            usable: allocator.usable,
            usage,
            separator_tokens: allocator.separator,
            appended: Vec::new(),
        })
    }
}

impl Packer {
    /// Every hook a segment or the policy names must be registered.
    fn check_hooks(&self, segments: &[Segment]) -> Result<()> {
        if self.tokenizer.is_none() {
            return Ok(()); // nothing is cut with an external counter, so no truncator is ever called
        }
        let named = segments.iter().filter_map(|segment| segment.truncation.as_ref().map(|how| (Some(segment), how)));
        let by_kind = self.policy.truncation.values().map(|how| (None, how));
        for (segment, how) in named.chain(by_kind) {
            let Truncation::Hook(name) = how else { continue };
            if self.truncators.as_ref().is_some_and(|truncators| truncators.has(name)) {
                continue;
            }
            let registered = self.truncators.as_ref().map(|truncators| truncators.names()).unwrap_or_default();
            let whose = segment.map_or_else(|| "the policy".to_owned(), |segment| format!("segment {:?}", segment.id));
            return Err(SchedError::InvalidPolicy(format!(
                "{whose} asks for truncation {name:?}, which is neither built in ({}) nor a registered \
                 truncator ({})",
                Strategy::ALL.map(Strategy::name).join(", "),
                if registered.is_empty() { "none registered".to_owned() } else { registered.join(", ") }
            )));
        }
        Ok(())
    }
}

/// A cut that kept nothing (a character that needs more tokens than the room, say) is no admission:
/// evict its unit, or fail with a typed error if the unit is mandatory. `Ok(true)` if anything changed.
fn drop_empty_cuts(allocator: &Allocator<'_>, plan: &mut Plan, packed: &Packed) -> Result<bool> {
    let emptied = |index: usize| {
        matches!(packed.texts.get(index), Some(Some(cut)) if cut.is_empty())
            && allocator.segments.get(index).is_some_and(|segment| !segment.text.is_empty())
    };
    let Some(decision) = packed.decisions.iter().find(|decision| decision.outcome.is_ok() && emptied(decision.index))
    else {
        return Ok(false);
    };
    let index = decision.index;
    let Some(unit) = plan.units.iter().position(|unit| unit.members.contains(&index)) else { return Ok(false) };
    let (members, mandatory) =
        plan.units.get(unit).map(|unit| (unit.members.clone(), unit.mandatory)).unwrap_or_default();
    if mandatory {
        let segment = allocator.segments.get(index);
        return Err(SchedError::Uncuttable {
            id: segment.map(|segment| segment.id.to_string()).unwrap_or_default(),
            tokens: plan.sizes.planned(index),
        });
    }
    for member in members {
        if let Some(slot) = plan.outcome.get_mut(member) {
            *slot = Err(Eviction::CutToNothing { tokens: plan.sizes.planned(index) });
        }
    }
    plan.admitted.retain(|&admitted| admitted != unit);
    Ok(true)
}

fn check_ids(segments: &[Segment]) -> Result<()> {
    let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
    for (index, segment) in segments.iter().enumerate() {
        if let Some(&first) = seen.get(&*segment.id) {
            return Err(SchedError::DuplicateId { id: segment.id.to_string(), first, second: index });
        }
        seen.insert(&segment.id, index);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
