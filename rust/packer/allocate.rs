//! Steps 2–4 of the scheduling model: preempt, admit the mandatory set, reserve quota minimums, fill by
//! priority. Works on token counts only; the texts are cut afterwards to the sizes planned here.
//!
//! Accounting: every kept segment costs its tokens plus one separator, and the capacity is the usable
//! budget plus one separator (k segments have k - 1 separators between them). The rendered text is
//! counted exactly afterwards (`verify`), since tokens can merge across a separator.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::decision::{Admission, Cut, Eviction};
use super::freshness::Standing;
use super::sizes::Known;
use super::sizes::Sizes;
use crate::error::{Result, SchedError};
use crate::policy::Policy;
use crate::segment::{Pin, Segment, Truncation};
use crate::tokenizer::Tokenizer;

/// Segments that are kept or evicted together: a group, or one segment on its own.
pub(super) struct Unit {
    pub(super) members: Vec<usize>,
    pub(super) priority: i64,
    /// The position of its newest member: ties in priority go to the newest unit.
    pub(super) newest: usize,
    pub(super) mandatory: bool,
}

/// What the allocator decided, before any text is cut.
pub(super) struct Plan {
    /// Counted and planned tokens for each segment.
    pub(super) sizes: Sizes,
    pub(super) outcome: Vec<std::result::Result<Admission, Eviction>>,
    pub(super) cut: Vec<Option<Cut>>,
    pub(super) units: Vec<Unit>,
    /// Optional units in the order they were admitted: the first to go if the render must be repaired.
    pub(super) admitted: Vec<usize>,
    /// The size a segment was cut for, where its real cut came out smaller (whole lines, say) and it is
    /// planned at that real size: a mandatory cut, made before the fill so that the fill gets the room.
    pub(super) cut_for: FxHashMap<usize, usize>,
}

impl Plan {
    /// The size segment `index` is cut for (its planned size, unless its cut came out smaller).
    pub(super) fn cut_size(&self, index: usize) -> usize {
        self.cut_for.get(&index).copied().unwrap_or_else(|| self.sizes.planned(index))
    }
}

pub(super) struct Allocator<'a> {
    pub(super) segments: &'a [Segment],
    /// Counts known before packing (memo or external counter); the rest are counted as needed.
    pub(super) known: &'a [Option<Known>],
    /// Counts what `known` lacks; `None` with an external counter (everything is known then).
    pub(super) tokenizer: Option<Tokenizer>,
    pub(super) policy: &'a Policy,
    pub(super) usable: usize,
    pub(super) separator: usize,
    /// Whether texts can be cut (a built-in tokenizer); with an external counter they cannot.
    pub(super) can_truncate: bool,
    /// Each segment's standing at the pack's time (empty: all current).
    pub(super) standing: &'a [Standing],
    /// A plan that only has to show that it evicts more than this many segments (the stub search's
    /// comparison) stops filling once it has: the units after that are not read.
    pub(super) enough_evictions: Option<usize>,
}

impl Allocator<'_> {
    /// How segment `index` may be cut, or `None` if it may not (or cannot: an external counter).
    pub(super) fn cut_of(&self, index: usize) -> Option<Truncation> {
        let segment = self.segments.get(index)?;
        match segment.truncation.clone().unwrap_or_else(|| self.policy.truncation_of(&segment.kind)) {
            Truncation::None => None,
            _ if !self.can_truncate => None,
            cut => Some(cut),
        }
    }

    fn priority_of(&self, index: usize, segment: &Segment) -> i64 {
        let priority = segment.priority.unwrap_or_else(|| self.policy.priority_of(&segment.kind));
        let priority = self.policy.trust.aged(segment, priority);
        match self.standing.get(index) {
            Some(Standing::Stale) => priority.saturating_sub(self.policy.stale_penalty),
            _ => priority,
        }
    }

    fn retired(&self, index: usize) -> Option<&Eviction> {
        match self.standing.get(index) {
            Some(Standing::Retired(eviction)) => Some(eviction),
            _ => None,
        }
    }

    fn min_tokens(&self, index: usize) -> usize {
        self.segments.get(index).map_or(1, |segment| segment.min_tokens.max(1).saturating_add(segment.overhead))
    }

    /// Steps 2–4. `settle` runs once the mandatory set is admitted and before the fill: it may plan cut
    /// mandatory segments at their real (smaller) cut sizes, so that the fill has the room they leave.
    pub(super) fn plan(&self, settle: impl FnOnce(&mut Plan) -> Result<()>) -> Result<Plan> {
        let count = self.segments.len();
        let mut plan = Plan {
            sizes: Sizes::new(self.known, self.segments),
            outcome: vec![Err(Eviction::BoundaryRepair); count],
            cut: vec![None; count],
            units: self.units(),
            admitted: Vec::new(),
            cut_for: FxHashMap::default(),
        };
        let mut decided = vec![false; plan.units.len()];
        self.retire(&mut plan, &mut decided);
        self.preempt(&mut plan, &mut decided);
        self.admit_mandatory(&mut plan, &mut decided)?;
        settle(&mut plan)?;
        self.fill(&mut plan, &mut decided)?;
        Ok(plan)
    }

    fn units(&self) -> Vec<Unit> {
        let mut units: Vec<Unit> = Vec::new();
        let mut by_group: FxHashMap<&str, usize> = FxHashMap::default();
        for (index, segment) in self.segments.iter().enumerate() {
            let existing = segment.group.as_deref().and_then(|group| by_group.get(group).copied());
            let unit_index = existing.unwrap_or_else(|| {
                units.push(Unit { members: Vec::new(), priority: i64::MIN, newest: index, mandatory: false });
                if let Some(group) = segment.group.as_deref() {
                    by_group.insert(group, units.len() - 1);
                }
                units.len() - 1
            });
            if let Some(unit) = units.get_mut(unit_index) {
                unit.members.push(index);
                unit.priority = unit.priority.max(self.priority_of(index, segment));
                unit.newest = index;
                unit.mandatory |= segment.is_mandatory() && self.retired(index).is_none();
            }
        }
        units
    }

    /// The cap of a segment that is cut to it when above it (a truncatable kind with a cap).
    pub(super) fn cut_cap(&self, index: usize) -> Option<usize> {
        let segment = self.segments.get(index)?;
        let cap = self.policy.segment_caps.get(&*segment.kind)?.resolve(self.usable);
        (self.cut_of(index).is_some() && cap >= self.min_tokens(index)).then_some(cap)
    }

    /// Cut segment `index` to `cap` (preemption).
    fn cut_to_cap(&self, plan: &mut Plan, index: usize, cap: usize) {
        plan.sizes.set_planned(index, cap);
        if let (Some(slot), Some(segment)) = (plan.cut.get_mut(index), self.segments.get(index)) {
            *slot = Some(Cut::AboveCap { kind: segment.kind.to_string(), cap });
        }
    }

    /// The planned size of segment `index` if at most `limit` (see `within`). A truncatable segment of an
    /// optional unit is preempted here, when its unit is first considered: most of a long history is
    /// considered only with too little room left for its size to matter, and is then read no further.
    fn size_within(&self, plan: &mut Plan, index: usize, limit: usize) -> Option<usize> {
        if let Some(cap) = self.cut_cap(index).filter(|&cap| cap <= limit && !plan.sizes.is_cut(index)) {
            if self.within(&mut plan.sizes, index, cap).is_none() {
                self.cut_to_cap(plan, index, cap);
            }
        }
        self.within(&mut plan.sizes, index, limit)
    }

    /// Step 0: expired and superseded segments are evicted, each with its group (see `freshness`).
    fn retire(&self, plan: &mut Plan, decided: &mut [bool]) {
        if self.standing.is_empty() {
            return;
        }
        for unit_index in 0..plan.units.len() {
            let members = plan.units.get(unit_index).map(|unit| unit.members.clone()).unwrap_or_default();
            let retired: Vec<usize> = members.into_iter().filter(|&index| self.retired(index).is_some()).collect();
            if let Some(&cause) = retired.first() {
                self.evict_group(plan, unit_index, cause);
                // Each retired member says why itself; the others went with the first of them.
                for index in retired {
                    if let (Some(eviction), Some(slot)) = (self.retired(index), plan.outcome.get_mut(index)) {
                        *slot = Err(eviction.clone());
                    }
                }
                if let Some(flag) = decided.get_mut(unit_index) {
                    *flag = true;
                }
                if let Some(unit) = plan.units.get_mut(unit_index) {
                    unit.mandatory = false;
                }
            }
        }
    }

    /// Step 2: a segment above its kind's cap is evicted (with its group) if it may not be cut; one that may
    /// be cut is cut to the cap, here if it is mandatory, else when its unit is considered (`size_within`);
    /// a mandatory one that may not be cut stays whole.
    fn preempt(&self, plan: &mut Plan, decided: &mut [bool]) {
        for unit_index in 0..plan.units.len() {
            let Some(unit) = plan.units.get(unit_index) else {
                continue;
            };
            let (members, mandatory) = (unit.members.clone(), unit.mandatory);
            let mut evicted_by: Option<usize> = None;
            for index in members {
                let Some(segment) = self.segments.get(index) else {
                    continue;
                };
                let Some(cap) = self.policy.segment_caps.get(&*segment.kind) else {
                    continue;
                };
                let cap = cap.resolve(self.usable);
                let cuttable = self.cut_cap(index).is_some();
                if (cuttable && !mandatory) || self.within(&mut plan.sizes, index, cap).is_some() {
                    continue;
                }
                if cuttable {
                    // Not counted in full: `realise` counts the kept ones for the log, when cheap.
                    self.cut_to_cap(plan, index, cap);
                } else if !mandatory {
                    if let Some(slot) = plan.outcome.get_mut(index) {
                        *slot = Err(Eviction::AboveCap { kind: segment.kind.to_string(), cap });
                    }
                    evicted_by.get_or_insert(index);
                }
            }
            if let Some(cause) = evicted_by {
                self.evict_group(plan, unit_index, cause);
                if let Some(flag) = decided.get_mut(unit_index) {
                    *flag = true;
                }
            }
        }
    }

    fn evict_group(&self, plan: &mut Plan, unit_index: usize, cause: usize) {
        let Some(unit) = plan.units.get(unit_index) else { return };
        let because = self.segments.get(cause).map(|segment| segment.id.to_string()).unwrap_or_default();
        for &member in &unit.members {
            if member == cause {
                continue;
            }
            let group =
                self.segments.get(member).and_then(|segment| segment.group.as_deref()).unwrap_or_default().to_owned();
            if let Some(slot) = plan.outcome.get_mut(member) {
                *slot = Err(Eviction::GroupMember { group, because: because.clone() });
            }
        }
    }

    /// Step 3: pinned and required segments and their groups, cut (largest first) if they must be.
    fn admit_mandatory(&self, plan: &mut Plan, decided: &mut [bool]) -> Result<()> {
        let mut members = Vec::new();
        for (unit, flag) in plan.units.iter().zip(decided.iter_mut()) {
            if unit.mandatory {
                *flag = true;
                members.extend_from_slice(&unit.members);
            }
        }
        for &index in &members {
            self.exact(&mut plan.sizes, index);
        }
        for (kind, quota) in &self.policy.quotas {
            let Some(max) = quota.max.map(|max| max.resolve(self.usable)) else {
                continue;
            };
            let of_kind: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&index| self.segments.get(index).is_some_and(|segment| *segment.kind == **kind))
                .collect();
            self.fit_down(plan, &of_kind, max, 0, &Cut::MandatoryOverQuota(kind.clone())).map_err(|needed| {
                SchedError::QuotaInfeasible { kind: kind.clone(), needed, max, members: self.describe(plan, &of_kind) }
            })?;
        }
        let capacity = self.usable.saturating_add(self.separator);
        self.fit_down(plan, &members, capacity, self.separator, &Cut::MandatoryOverBudget).map_err(|needed| {
            SchedError::Budget {
                needed: needed.saturating_sub(self.separator),
                usable: self.usable,
                budget: self.usable.saturating_add(self.policy.reserve_output),
                reserve: self.policy.reserve_output,
                members: self.describe(plan, &members),
            }
        })?;
        for &index in &members {
            let Some(segment) = self.segments.get(index) else {
                continue;
            };
            let admission = match (segment.pin, segment.required) {
                (Pin::Head, _) => Admission::PinnedHead,
                (Pin::Tail, _) => Admission::PinnedTail,
                (Pin::None, true) => Admission::Required,
                (Pin::None, false) => {
                    Admission::MandatoryGroup(segment.group.as_deref().unwrap_or_default().to_owned())
                }
            };
            if let Some(slot) = plan.outcome.get_mut(index) {
                *slot = Ok(admission);
            }
        }
        Ok(())
    }

    pub(super) fn describe(&self, plan: &Plan, members: &[usize]) -> Vec<(String, String, usize)> {
        members
            .iter()
            .filter_map(|&index| {
                let segment = self.segments.get(index)?;
                let floor = if self.cut_of(index).is_some() {
                    self.min_tokens(index).min(plan.sizes.planned(index))
                } else {
                    plan.sizes.planned(index)
                };
                Some((segment.id.to_string(), segment.kind.to_string(), floor))
            })
            .collect()
    }

    /// Cut `members` so that their sizes (each plus `separator`) total at most `limit`, lowering the
    /// largest truncatable ones to a common level (water-filling). `Err(smallest possible total)` if
    /// even cutting everything to its minimum is not enough.
    fn fit_down(
        &self,
        plan: &mut Plan,
        members: &[usize],
        limit: usize,
        separator: usize,
        cut: &Cut,
    ) -> std::result::Result<(), usize> {
        let size_at = |level: usize, index: usize| -> usize {
            let size = plan.sizes.planned(index);
            if self.cut_of(index).is_some() {
                size.min(level.max(self.min_tokens(index).min(size)))
            } else {
                size
            }
        };
        let total_at = |level: usize| {
            members
                .iter()
                .fold(0usize, |total, &index| total.saturating_add(size_at(level, index)).saturating_add(separator))
        };
        let largest = members.iter().map(|&index| plan.sizes.planned(index)).max().unwrap_or(0);
        if total_at(largest) <= limit {
            return Ok(());
        }
        if total_at(0) > limit {
            return Err(total_at(0));
        }
        // The largest level at which everything fits: total_at is monotone in the level.
        let (mut low, mut high) = (0, largest);
        while low < high {
            let middle = low + (high - low).div_ceil(2);
            if total_at(middle) <= limit {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        let sizes: Vec<(usize, usize)> = members.iter().map(|&index| (index, size_at(low, index))).collect();
        for (index, size) in sizes {
            if size < plan.sizes.planned(index) {
                plan.sizes.set_planned(index, size);
                if let Some(why) = plan.cut.get_mut(index) {
                    *why = Some(cut.clone());
                }
            }
        }
        Ok(())
    }

    /// Step 4: quota minimums, then priority order (ties newest first), then one partial unit.
    fn fill(&self, plan: &mut Plan, decided: &mut [bool]) -> Result<()> {
        let mut limits: BTreeMap<&str, (usize, Option<usize>)> = BTreeMap::new();
        for (kind, quota) in &self.policy.quotas {
            let min = quota.min.resolve(self.usable);
            let max = quota.max.map(|max| max.resolve(self.usable));
            if let Some(max) = max.filter(|&max| max < min) {
                return Err(SchedError::InvalidPolicy(format!(
                    "the {kind} quota's minimum resolves to {min} tokens, above its maximum of {max} \
                     (usable budget {})",
                    self.usable
                )));
            }
            limits.insert(kind.as_str(), (min, max));
        }
        let mut used: BTreeMap<&str, usize> = BTreeMap::new();
        let mut spent = 0usize;
        for (index, outcome) in plan.outcome.iter().enumerate() {
            if outcome.is_ok() {
                let Some(segment) = self.segments.get(index) else { continue };
                let size = plan.sizes.planned(index);
                *used.entry(&*segment.kind).or_default() += size;
                spent = spent.saturating_add(size).saturating_add(self.separator);
            }
        }
        let capacity = self.usable.saturating_add(self.separator);
        let mut order: Vec<usize> =
            (0..plan.units.len()).filter(|&unit| !decided.get(unit).copied().unwrap_or(true)).collect();
        order.sort_by_key(|&unit| {
            plan.units.get(unit).map(|unit| (std::cmp::Reverse(unit.priority), std::cmp::Reverse(unit.newest)))
        });

        let mut state = FillState { used, spent, capacity, limits };
        self.fill_minimums(plan, decided, &order, &mut state);
        if self.fill_by_priority(plan, decided, &order, &mut state) {
            self.fill_partial(plan, &order, &mut state);
        }
        Ok(())
    }

    /// Quota minimums, kind by kind, each from its own units in priority order.
    fn fill_minimums<'s>(&'s self, plan: &mut Plan, decided: &mut [bool], order: &[usize], state: &mut FillState<'s>) {
        let minimums: Vec<(&str, usize)> =
            state.limits.iter().map(|(&kind, &(min, _))| (kind, min)).filter(|&(_, min)| min > 0).collect();
        for (kind, min) in minimums {
            for &unit in order {
                if state.used.get(kind).copied().unwrap_or(0) >= min {
                    break;
                }
                let Some(unit_ref) = plan.units.get(unit) else { continue };
                let has_kind = unit_ref
                    .members
                    .iter()
                    .any(|&index| self.segments.get(index).is_some_and(|segment| *segment.kind == *kind));
                if decided.get(unit).copied().unwrap_or(true) || !has_kind {
                    continue;
                }
                if self.check(plan, state, unit).is_ok() {
                    self.admit(plan, state, unit, &Admission::QuotaMinimum { kind: kind.to_owned(), min });
                    if let Some(flag) = decided.get_mut(unit) {
                        *flag = true;
                    }
                }
            }
        }
    }

    /// Priority order: a unit that does not fit is skipped, not a wall. Returns whether it went through
    /// every unit (it stops early past `enough_evictions`; then the partial fill, which can save one
    /// segment, is not run, and one more eviction is asked for to make up for it).
    fn fill_by_priority<'s>(
        &'s self,
        plan: &mut Plan,
        decided: &[bool],
        order: &[usize],
        state: &mut FillState<'s>,
    ) -> bool {
        let mut evicted = 0usize;
        for &unit in order {
            if self.enough_evictions.is_some_and(|enough| evicted > enough.saturating_add(1)) {
                return false;
            }
            if decided.get(unit).copied().unwrap_or(true) {
                continue;
            }
            let priority = plan.units.get(unit).map_or(0, |unit| unit.priority);
            match self.check(plan, state, unit) {
                Ok(()) => self.admit(plan, state, unit, &Admission::Priority(priority)),
                Err(eviction) => {
                    let members = plan.units.get(unit).map(|unit| unit.members.clone()).unwrap_or_default();
                    evicted = evicted.saturating_add(members.len());
                    for index in members {
                        if let Some(slot) = plan.outcome.get_mut(index) {
                            *slot = Err(eviction.clone());
                        }
                    }
                }
            }
        }
        true
    }

    /// The last unit may be admitted partially: the most important evicted single segment that may be
    /// cut, in the room that is left (and its kind's quota room).
    fn fill_partial<'s>(&'s self, plan: &mut Plan, order: &[usize], state: &mut FillState<'s>) {
        for &unit in order {
            let Some(unit_ref) = plan.units.get(unit) else { continue };
            let [index] = unit_ref.members[..] else { continue };
            if plan.outcome.get(index).is_none_or(std::result::Result::is_ok) || self.cut_of(index).is_none() {
                continue;
            }
            let Some(segment) = self.segments.get(index) else {
                continue;
            };
            let mut room = state.capacity.saturating_sub(state.spent.saturating_add(self.separator));
            if let Some((_, Some(max))) = state.limits.get(&*segment.kind) {
                room = room.min(max.saturating_sub(state.used.get(&*segment.kind).copied().unwrap_or(0)));
            }
            let size = plan.sizes.planned(index);
            if room >= self.min_tokens(index) && room < size {
                let priority = unit_ref.priority;
                plan.sizes.set_planned(index, room);
                if let Some(why) = plan.cut.get_mut(index) {
                    *why = Some(Cut::PartialFit);
                }
                self.admit(plan, state, unit, &Admission::Partial(priority));
                return;
            }
        }
    }

    /// Whether `unit` fits the room and its kinds' quota maximums. Each member is counted only as far as
    /// the room left for it, so a long segment that cannot fit is never counted in full.
    fn check(&self, plan: &mut Plan, state: &FillState<'_>, unit: usize) -> std::result::Result<(), Eviction> {
        let Some(unit_ref) = plan.units.get(unit) else { return Ok(()) };
        let (members, priority) = (unit_ref.members.clone(), unit_ref.priority);
        let room = state.capacity.saturating_sub(state.spent);
        let mut added: BTreeMap<&str, usize> = BTreeMap::new();
        let mut cost = 0usize;
        let last = members.last().copied();
        for index in members {
            let Some(segment) = self.segments.get(index) else { continue };
            let kind = &*segment.kind;
            let Some(room_left) = room.checked_sub(cost.saturating_add(self.separator)) else {
                // Not even its separator fits (this matters for empty segments, which cost only that).
                let needed = cost.saturating_add(self.separator).saturating_add(plan.sizes.planned(index));
                return Err(Eviction::DoesNotFit { needed, room, priority, at_least: !plan.sizes.counted(index) });
            };
            let quota = state.limits.get(kind).and_then(|&(_, max)| max).map(|max| {
                let used =
                    state.used.get(kind).copied().unwrap_or(0).saturating_add(added.get(kind).copied().unwrap_or(0));
                (max, used, max.saturating_sub(used))
            });
            let limit = quota.map_or(room_left, |(_, _, quota_left)| quota_left.min(room_left));
            let Some(size) = self.size_within(plan, index, limit) else {
                if let Some((max, used, _)) = quota.filter(|&(_, _, quota_left)| quota_left < room_left) {
                    return Err(Eviction::QuotaMaximum { kind: kind.to_owned(), max, used });
                }
                let needed = cost.saturating_add(plan.sizes.planned(index)).saturating_add(self.separator);
                // A lower bound unless this segment is counted in full and no member comes after it.
                let at_least = !plan.sizes.counted(index) || last != Some(index);
                return Err(Eviction::DoesNotFit { needed, room, priority, at_least });
            };
            cost = cost.saturating_add(size).saturating_add(self.separator);
            *added.entry(kind).or_default() += size;
        }
        Ok(())
    }

    fn admit<'s>(&'s self, plan: &mut Plan, state: &mut FillState<'s>, unit: usize, admission: &Admission) {
        let members = plan.units.get(unit).map(|unit| unit.members.clone()).unwrap_or_default();
        for index in members {
            let Some(segment) = self.segments.get(index) else { continue };
            let size = plan.sizes.planned(index);
            *state.used.entry(&*segment.kind).or_default() += size;
            state.spent = state.spent.saturating_add(size).saturating_add(self.separator);
            if let Some(slot) = plan.outcome.get_mut(index) {
                *slot = Ok(admission.clone());
            }
        }
        plan.admitted.push(unit);
    }
}

struct FillState<'a> {
    used: BTreeMap<&'a str, usize>,
    spent: usize,
    capacity: usize,
    limits: BTreeMap<&'a str, (usize, Option<usize>)>,
}
