//! Step 0: what is no longer true is not packed. A segment past its `expires_at` at the pack's time is
//! evicted as expired; of segments sharing a memory `key`, all but the current version are evicted as
//! superseded, pinned or not (a pin keeps a fact in the window while it holds, not after). One observed
//! longer ago than the policy's `max_age` is stale: it stays, at a lower priority.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::decision::Eviction;
use super::Packed;
use crate::segment::{content_hash, Segment};

/// Where a segment stands at the time of a pack.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Standing {
    Current,
    /// Older than the policy's `max_age`: its priority is lowered by the policy's `stale_penalty`.
    Stale,
    /// Expired or superseded: evicted before anything else is decided.
    Retired(Eviction),
}

/// Each segment's standing at `now` (seconds since the epoch; `None`: nothing expires or ages), or an
/// empty list when no segment carries freshness (every one is current).
pub(super) fn standings(segments: &[Segment], now: Option<f64>, max_age: Option<f64>) -> Vec<Standing> {
    if segments.iter().all(|segment| segment.freshness == crate::segment::Freshness::default()) {
        return Vec::new();
    }
    let current = current_versions(segments);
    segments
        .iter()
        .enumerate()
        .map(|(index, segment)| {
            let freshness = &segment.freshness;
            if let (Some(now), Some(expires_at)) = (now, freshness.expires_at) {
                if now >= expires_at {
                    return Standing::Retired(Eviction::Expired { expires_at, now });
                }
            }
            if let Some(key) = &freshness.key {
                if let Some(&winner) = current.get(&**key).filter(|&&winner| winner != index) {
                    let by = segments.get(winner).map(|segment| segment.id.to_string()).unwrap_or_default();
                    return Standing::Retired(Eviction::Superseded { key: key.to_string(), by });
                }
            }
            match (now, max_age, freshness.observed_at) {
                (Some(now), Some(max_age), Some(observed_at)) if now - observed_at > max_age => Standing::Stale,
                _ => Standing::Current,
            }
        })
        .collect()
}

/// `segments` with each stale one's text after "(as of DATE) ", its observation's date (UTC); `None` when none is
/// stale or has a date.
pub(super) fn dated(segments: &[Segment], standing: &[Standing]) -> Option<Vec<Segment>> {
    let stale = |index: usize| standing.get(index) == Some(&Standing::Stale);
    if !(0..segments.len()).any(stale) {
        return None;
    }
    let mut dated = segments.to_vec();
    for (_, segment) in dated.iter_mut().enumerate().filter(|(index, _)| stale(*index)) {
        let Some(date) = segment.freshness.observed_at.and_then(day) else { continue };
        let text = format!("{}{}", as_of(&date), segment.text);
        segment.content_hash = content_hash(&text);
        segment.text = Arc::from(text);
    }
    Some(dated)
}

/// What a dated text starts with.
fn as_of(date: &str) -> String {
    format!("(as of {date}) ")
}

/// The UTC date of a time in seconds since the epoch.
fn day(seconds: f64) -> Option<String> {
    #[allow(clippy::cast_possible_truncation)]
    let whole = seconds.floor() as i64;
    chrono::DateTime::from_timestamp(whole, 0).map(|time| time.format("%Y-%m-%d").to_string())
}

/// The dated segments that were kept are sent with their date (a cut one already is), and their decisions say so.
pub(super) fn mark_dated(packed: &mut Packed, dated: &[Segment], standing: &[Standing]) {
    for (index, segment) in dated.iter().enumerate() {
        if standing.get(index) != Some(&Standing::Stale) || segment.freshness.observed_at.is_none() {
            continue;
        }
        let (Some(decision), Some(text)) = (packed.decisions.get_mut(index), packed.texts.get_mut(index)) else {
            continue;
        };
        if decision.outcome.is_err() {
            continue;
        }
        let date = segment.freshness.observed_at.and_then(day).unwrap_or_default();
        decision.flags.push(format!("dated: sent {}(stale)", as_of(&date)));
        text.get_or_insert_with(|| segment.text.to_string());
    }
}

/// For each key, the index of its current version: the highest version, then the latest observed (a
/// segment without `observed_at` counts as the oldest), then the latest in the input.
fn current_versions(segments: &[Segment]) -> FxHashMap<&str, usize> {
    let rank = |segment: &Segment| (segment.freshness.version, segment.freshness.observed_at.unwrap_or(f64::MIN));
    let mut current: FxHashMap<&str, usize> = FxHashMap::default();
    for (index, segment) in segments.iter().enumerate() {
        let Some(key) = segment.freshness.key.as_deref() else { continue };
        let newer = current.get(key).and_then(|&best| segments.get(best)).is_none_or(|best| {
            let (version, observed) = rank(segment);
            let (best_version, best_observed) = rank(best);
            version > best_version || (version == best_version && observed >= best_observed)
        });
        if newer {
            current.insert(key, index);
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: &str, key: Option<&str>, version: i64, observed_at: Option<f64>, expires_at: Option<f64>) -> Segment {
        let mut segment = Segment::new(id, "memory", "text");
        segment.freshness.key = key.map(Into::into);
        segment.freshness.version = version;
        segment.freshness.observed_at = observed_at;
        segment.freshness.expires_at = expires_at;
        segment
    }

    #[test]
    fn the_highest_version_of_a_key_is_current_and_ties_go_to_the_latest_observed() {
        let segments = vec![
            memory("a", Some("db"), 2, Some(10.0), None),
            memory("b", Some("db"), 1, Some(50.0), None),
            memory("c", Some("db"), 2, Some(20.0), None),
            memory("d", Some("editor"), 0, None, None),
        ];
        let standings = standings(&segments, None, None);
        let superseded_by = |index: usize| match standings.get(index) {
            Some(Standing::Retired(Eviction::Superseded { by, .. })) => Some(by.clone()),
            _ => None,
        };
        assert_eq!(superseded_by(0).as_deref(), Some("c"));
        assert_eq!(superseded_by(1).as_deref(), Some("c"));
        assert_eq!(standings.get(2), Some(&Standing::Current));
        assert_eq!(standings.get(3), Some(&Standing::Current));
    }

    #[test]
    fn expiry_and_age_follow_the_clock() {
        let segments = vec![memory("old", None, 0, Some(0.0), Some(100.0)), memory("aging", None, 0, Some(0.0), None)];
        assert_eq!(standings(&segments, Some(99.0), Some(50.0)).first(), Some(&Standing::Stale));
        assert!(matches!(standings(&segments, Some(100.0), None).first(), Some(Standing::Retired(_))));
        assert_eq!(standings(&segments, Some(40.0), Some(50.0)).get(1), Some(&Standing::Current));
        assert_eq!(standings(&segments, None, Some(50.0)).first(), Some(&Standing::Current));
    }
}
