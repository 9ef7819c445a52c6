//! Step 6: where each kept segment sits.

use crate::policy::Policy;
use crate::segment::{Pin, Segment};

/// Head pins in input order, then the body in natural order (runs of reordered kinds arranged by
/// relevance, most relevant at the edges of the run, where models attend best), then tail pins.
pub(super) fn place(segments: &[Segment], kept: &[usize], policy: &Policy) -> Vec<usize> {
    let pinned =
        |pin: Pin| kept.iter().copied().filter(move |&index| segments.get(index).is_some_and(|s| s.pin == pin));
    let mut order: Vec<usize> = pinned(Pin::Head).collect();
    let body: Vec<usize> = pinned(Pin::None).collect();
    let mut start = 0;
    while start < body.len() {
        let kind = body.get(start).and_then(|&index| segments.get(index)).map(|segment| &*segment.kind);
        let mut end = start + 1;
        while end < body.len()
            && body.get(end).and_then(|&index| segments.get(index)).map(|segment| &*segment.kind) == kind
        {
            end += 1;
        }
        let run = body.get(start..end).unwrap_or_default();
        if kind.is_some_and(|kind| policy.reorder.contains(kind)) && run.len() > 2 {
            order.extend(edges_first(segments, run));
        } else {
            order.extend_from_slice(run);
        }
        start = end;
    }
    order.extend(pinned(Pin::Tail));
    order
}

/// Most relevant first and last, the second most relevant second and second to last, and so on.
fn edges_first(segments: &[Segment], run: &[usize]) -> Vec<usize> {
    let mut ranked = run.to_vec();
    let relevance = |index: usize| segments.get(index).map_or(0.0, |segment| segment.relevance);
    // Stable sort: equal relevance keeps natural order.
    ranked.sort_by(|&a, &b| relevance(b).total_cmp(&relevance(a)));
    let mut front = Vec::with_capacity(ranked.len());
    let mut back = Vec::with_capacity(ranked.len() / 2);
    for (rank, index) in ranked.into_iter().enumerate() {
        if rank % 2 == 0 {
            front.push(index);
        } else {
            back.push(index);
        }
    }
    front.extend(back.into_iter().rev());
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(index: usize, kind: &str, pin: Pin, relevance: f64) -> Segment {
        let mut segment = Segment::new(format!("s{index}"), kind, "text");
        segment.pin = pin;
        segment.relevance = relevance;
        segment
    }

    #[test]
    fn pins_go_to_the_edges_and_the_body_keeps_natural_order() {
        let segments = vec![
            segment(0, "history", Pin::None, 0.0),
            segment(1, "task", Pin::Tail, 0.0),
            segment(2, "system", Pin::Head, 0.0),
            segment(3, "history", Pin::None, 0.0),
        ];
        assert_eq!(place(&segments, &[0, 1, 2, 3], &Policy::default()), vec![2, 0, 3, 1]);
    }

    #[test]
    fn reordered_runs_put_the_most_relevant_at_both_edges() {
        let relevances = [0.1, 0.9, 0.5, 0.7, 0.3];
        let segments: Vec<Segment> =
            relevances.iter().enumerate().map(|(index, &r)| segment(index, "retrieval", Pin::None, r)).collect();
        let mut policy = Policy::default();
        policy.reorder.insert("retrieval".to_owned());
        // Ranked: 1 (0.9), 3 (0.7), 2 (0.5), 4 (0.3), 0 (0.1) -> front 1, 2, 0; back 4, 3.
        assert_eq!(place(&segments, &[0, 1, 2, 3, 4], &policy), vec![1, 2, 0, 4, 3]);
    }
}
