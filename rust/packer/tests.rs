use super::*;
use crate::policy::{Amount, Quota};
use crate::segment::{Pin, Truncation};
use crate::tokenizer::Encoding;
use crate::truncation::Strategy;

fn words(count: usize) -> String {
    // "w w w ..." is exactly `count` tokens in o200k_base: one per " w".
    "w".to_owned() + &" w".repeat(count.saturating_sub(1))
}

fn segment(id: &str, kind: &str, tokens: usize) -> Segment {
    Segment::new(id, kind, words(tokens))
}

fn packer(policy: Policy) -> Packer {
    Packer::new(Some(Tokenizer::new(Encoding::O200kBase)), Policy { separator: String::new(), ..policy })
}

fn ids(packed: &Packed, segments: &[Segment]) -> Vec<String> {
    packed.order.iter().map(|&index| segments[index].id.to_string()).collect()
}

#[test]
fn words_helper_counts_as_intended() {
    let tokenizer = Tokenizer::new(Encoding::O200kBase);
    for count in [1, 2, 10, 100] {
        assert_eq!(tokenizer.count(&words(count)), count);
    }
}

#[test]
fn pins_are_kept_at_the_edges_and_low_priority_goes_first() {
    let mut system = segment("system", "system", 10);
    system.pin = Pin::Head;
    let mut task = segment("task", "instruction", 10);
    task.pin = Pin::Tail;
    let mut old = segment("old", "history", 30);
    old.priority = Some(1);
    let mut new = segment("new", "history", 30);
    new.priority = Some(2);
    let segments = vec![old, task, system, new];
    let packed = packer(Policy::default()).pack(&segments, 55, None).unwrap();
    assert_eq!(ids(&packed, &segments), ["system", "new", "task"]);
    assert!(packed.tokens <= 55);
    assert_eq!(packed.decisions[0].rule(), "does_not_fit");
}

#[test]
fn a_unit_that_does_not_fit_is_skipped_not_a_wall() {
    let mut big = segment("big", "history", 50);
    big.priority = Some(9);
    let small = segment("small", "history", 5);
    let segments = vec![small, big];
    let packed = packer(Policy::default()).pack(&segments, 20, None).unwrap();
    assert_eq!(ids(&packed, &segments), ["small"]);
}

#[test]
fn groups_are_all_or_nothing() {
    let mut call = segment("call", "tool_call", 5);
    call.group = Some("g".into());
    let mut result = segment("result", "tool_result", 30);
    result.group = Some("g".into());
    let other = segment("other", "history", 10);
    let segments = vec![other, call, result];
    let packed = packer(Policy::default()).pack(&segments, 20, None).unwrap();
    assert_eq!(ids(&packed, &segments), ["other"]);
    let packed = packer(Policy::default()).pack(&segments, 35, None).unwrap();
    assert_eq!(ids(&packed, &segments), ["call", "result"]);
}

#[test]
fn caps_preempt_and_quota_maximums_hold() {
    let mut policy = Policy::default();
    policy.segment_caps.insert("tool_result".into(), Amount::Tokens(20));
    policy.truncation.insert("tool_result".into(), Truncation::Cut(Strategy::Head));
    policy.quotas.insert("tool_result".into(), Quota { min: Amount::Tokens(0), max: Some(Amount::Fraction(0.5)) });
    let segments =
        vec![segment("r1", "tool_result", 100), segment("r2", "tool_result", 100), segment("r3", "tool_result", 100)];
    let packed = packer(policy).pack(&segments, 100, None).unwrap();
    assert!(packed.usage["tool_result"].tokens <= 50);
    assert_eq!(packed.decisions[2].action(), "truncated");
    assert_eq!(packed.decisions[2].tokens_after, 20);
    // Newest first: r3 and r2 fill 40 of the 50; r1 is cut into the quota room that is left.
    assert_eq!(packed.usage["tool_result"].tokens, 50);
    assert_eq!(packed.decisions[0].rule(), "partial");
    assert_eq!(packed.decisions[0].tokens_after, 10);
}

#[test]
fn packing_without_caps_keeps_what_fits_whole_and_shares_the_memo() {
    let mut policy = Policy::default();
    policy.segment_caps.insert("tool_result".into(), Amount::Tokens(20));
    policy.truncation.insert("tool_result".into(), Truncation::Cut(Strategy::Head));
    let packer = packer(policy);
    let segments = vec![segment("task", "instruction", 10), segment("log", "tool_result", 60)];
    assert_eq!(packer.total_up_to(&segments, 100), Some(70));
    let remembered = packer.memo_len();
    let whole = packer.pack_without_caps(&segments, 100, None).unwrap();
    assert_eq!(whole.decisions[1].action(), "kept");
    assert_eq!(whole.decisions[1].tokens_after, 60);
    // The fit check counted both texts, and packing found them in the same memo.
    assert_eq!(packer.memo_len(), remembered);
    let capped = packer.pack(&segments, 100, None).unwrap();
    assert_eq!(capped.decisions[1].action(), "truncated");
    assert!(capped.decisions[1].tokens_after <= 20);
}

#[test]
fn quota_minimums_are_reserved_before_priorities() {
    let mut policy = Policy::default();
    policy.quotas.insert("retrieval".into(), Quota { min: Amount::Tokens(30), max: None });
    let mut history = segment("history", "history", 60);
    history.priority = Some(10);
    let segments = vec![segment("doc", "retrieval", 30), history];
    let packed = packer(policy).pack(&segments, 70, None).unwrap();
    assert_eq!(ids(&packed, &segments), ["doc"]);
    assert_eq!(packed.decisions[0].rule(), "quota_min");
}

#[test]
fn the_last_unit_may_be_admitted_partially() {
    let mut log = segment("log", "tool_result", 100);
    log.truncation = Some(Truncation::Cut(Strategy::Tail));
    let segments = vec![segment("a", "history", 10), log];
    let packed = packer(Policy::default()).pack(&segments, 40, None).unwrap();
    assert_eq!(packed.decisions[1].rule(), "partial");
    assert_eq!(packed.tokens, 40);
    assert!(segments[1].text.ends_with(packed.texts[1].as_deref().unwrap()));
}

#[test]
fn an_infeasible_mandatory_set_is_a_budget_error_listing_it() {
    let mut system = segment("system", "system", 50);
    system.pin = Pin::Head;
    let segments = vec![system];
    let error = packer(Policy::default()).pack(&segments, 10, None).unwrap_err();
    assert!(matches!(error, SchedError::Budget { needed: 50, usable: 10, .. }), "{error}");
    assert!(error.to_string().contains("system (system, 50 tokens)"));
}

#[test]
fn a_mandatory_set_that_may_be_cut_is_cut_largest_first() {
    let mut a = segment("a", "system", 80);
    a.required = true;
    a.truncation = Some(Truncation::Cut(Strategy::Head));
    let mut b = segment("b", "instruction", 10);
    b.required = true;
    b.truncation = Some(Truncation::Cut(Strategy::Head));
    let segments = vec![a, b];
    let packed = packer(Policy::default()).pack(&segments, 50, None).unwrap();
    assert_eq!(packed.decisions[0].tokens_after, 40);
    assert_eq!(packed.decisions[1].tokens_after, 10);
}

#[test]
fn duplicate_ids_and_a_reserve_above_the_budget_are_errors() {
    let segments = vec![segment("x", "history", 1), segment("x", "history", 1)];
    assert!(matches!(packer(Policy::default()).pack(&segments, 10, None), Err(SchedError::DuplicateId { .. })));
    let policy = Policy { reserve_output: 20, ..Policy::default() };
    assert!(matches!(packer(policy).pack(&[], 10, None), Err(SchedError::Budget { .. })));
}

#[test]
fn counts_are_memoised_by_content() {
    let packer = packer(Policy::default());
    let segments = vec![segment("a", "history", 5), segment("b", "history", 5), segment("c", "history", 7)];
    packer.pack(&segments, 100, None).unwrap();
    assert_eq!(packer.memo_len(), 2);
}

#[test]
fn external_counts_are_used_without_a_tokenizer() {
    let external = Packer::new(None, Policy::default());
    let segments = vec![segment("a", "history", 5), segment("b", "history", 5)];
    let result = external.pack(&segments, 12, Some((&[6, 6], 1))).unwrap();
    assert_eq!(result.order.len(), 1);
    assert!(external.pack(&segments, 12, Some((&[6], 1))).is_err());
    assert!(external.pack(&segments, 12, None).is_err());
}

#[test]
fn explain_has_a_line_per_segment_with_its_rule() {
    let mut system = segment("system", "system", 5);
    system.pin = Pin::Head;
    let segments = vec![system, segment("a", "history", 50), segment("b", "history", 5)];
    let packed = packer(Policy::default()).pack(&segments, 20, None).unwrap();
    let ids: Vec<String> = segments.iter().map(|segment| segment.id.to_string()).collect();
    let text = packed.explain(&segments, &ids);
    assert!(text.starts_with("packed 2 of 3 segments"), "{text}");
    assert!(text.contains("pinned to the head"));
    assert!(text.contains("does not fit: needs at least"));
    // The header, a line per segment, the placement line, then usage: its header and a line per kind.
    assert!(
        text.contains("placement: head 5, body 5, tail 0; 100% of high-priority tokens in the head or tail"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1 + 3 + 1 + 1 + 2);
}

#[test]
fn overhead_counts_in_every_size_and_is_never_cut() {
    let messages = packer(Policy { joined: false, ..Policy::default() });
    let mut framed = segment("framed", "tool_result", 50);
    framed.overhead = 7;
    framed.truncation = Some(Truncation::Cut(Strategy::Head));
    let mut other = segment("other", "history", 20);
    other.overhead = 7;
    let segments = [framed, other];
    assert_eq!(messages.total_up_to(&segments, 1000), Some(84));
    assert_eq!(messages.total_up_to(&segments, 83), None);
    // 60 tokens: the history message whole (27), the tool result cut to 60 - 27 - 7 = 26 tokens of text.
    let packed = messages.pack(&segments, 60, None).unwrap();
    assert_eq!(packed.tokens, 60);
    let cut = packed.texts[0].as_deref().unwrap();
    assert_eq!(Tokenizer::new(Encoding::O200kBase).count(cut), 26);
    assert_eq!(packed.decisions[0].tokens_before, 57);
    assert_eq!(packed.decisions[0].tokens_after, 33);
    // Room for less than the framing: evicted, never an empty message.
    let packed = messages.pack(&segments, 30, None).unwrap();
    assert_eq!(packed.order, vec![1]);
}

fn stubbed(id: &str, tokens: usize) -> Segment {
    let mut segment = segment(id, "tool_result", tokens);
    segment.stub = Some("[{n} removed]".into());
    segment
}

#[test]
fn the_oldest_stubs_replace_segments_before_units_are_evicted() {
    let tokenizer = Tokenizer::new(Encoding::O200kBase);
    let mut task = segment("task", "instruction", 10);
    task.required = true;
    // Four results of 40 tokens with their stubs, 100 tokens of room: whole, only two fit.
    let segments = vec![task, stubbed("r1", 40), stubbed("r2", 40), stubbed("r3", 40), stubbed("r4", 40)];
    let packed = packer(Policy::default()).pack(&segments, 100, None).unwrap();
    assert_eq!(packed.order.len(), 5, "every result is kept, whole or as a stub");
    let actions: Vec<&str> = packed.decisions.iter().map(Decision::action).collect();
    // As few as make the difference, oldest first: r1 and r2 stubbed, r3 and r4 whole.
    assert_eq!(actions, ["kept", "stubbed", "stubbed", "kept", "kept"]);
    let stub = packed.text_of(&segments, 1).unwrap();
    assert_eq!(stub, "[40 removed]");
    assert_eq!(packed.decisions[1].tokens_before, 40);
    assert_eq!(packed.decisions[1].tokens_after, tokenizer.count(stub));
    assert!(packed.decisions[1].detail().contains("stubbed 40 ->"));
    assert_eq!(packed.tokens, tokenizer.count(&packed.render(&segments, "")));
    assert!(packed.tokens <= 100);
}

#[test]
fn stubs_are_not_used_when_nothing_is_evicted_or_they_save_nothing() {
    let segments = vec![stubbed("a", 20), stubbed("b", 20)];
    let packed = packer(Policy::default()).pack(&segments, 100, None).unwrap();
    assert!(packed.decisions.iter().all(|decision| decision.action() == "kept"));
    // A result shorter than its stub is never replaced by it.
    let mut task = segment("task", "instruction", 10);
    task.required = true;
    let segments = vec![task, stubbed("tiny", 1), segment("big", "history", 200)];
    let packed = packer(Policy::default()).pack(&segments, 50, None).unwrap();
    assert_eq!(packed.decisions[1].action(), "kept");
    assert_eq!(packed.decisions[2].action(), "evicted");
}

#[test]
fn a_long_stubbed_text_states_an_estimate() {
    let mut task = segment("task", "instruction", 10);
    task.required = true;
    let long = stubbed("long", 5_000);
    let packed = packer(Policy::default()).pack(&[task, long.clone()], 50, None).unwrap();
    assert_eq!(packed.decisions[1].action(), "stubbed");
    let stub = packed.text_of(&[long.clone(), long], 1).unwrap().to_owned();
    let number: usize = stub.trim_start_matches("[~").trim_end_matches(" removed]").replace(',', "").parse().unwrap();
    assert!(number.abs_diff(5_000) < 500, "{stub}");
}

#[test]
fn a_capped_segment_is_read_only_as_far_as_its_cap_unless_kept() {
    let policy = Policy {
        segment_caps: [("tool_result".to_owned(), Amount::Tokens(30))].into(),
        truncation: [("tool_result".to_owned(), Truncation::Cut(Strategy::Head))].into(),
        ..Policy::default()
    };
    let mut task = segment("task", "instruction", 10);
    task.required = true;
    let mut old = segment("old", "tool_result", 5_000);
    old.truncation = Some(Truncation::None);
    let segments = vec![old, task, segment("new", "tool_result", 3_000)];
    let packed = packer(policy).pack(&segments, 45, None).unwrap();
    // The newest is cut to its cap and counted in full for the log; the oldest, evicted (it may not be cut),
    // read only past its cap.
    assert_eq!(packed.decisions[2].action(), "truncated");
    assert_eq!((packed.decisions[2].tokens_before, packed.decisions[2].counted), (3_000, true));
    assert_eq!(packed.decisions[0].action(), "evicted");
    assert!(!packed.decisions[0].counted && packed.decisions[0].tokens_before < 5_000);
}

#[test]
fn stubs_respect_quotas_when_choosing_how_many() {
    // The room left would take every result back whole, but the tool_result quota would not: the search
    // falls back to the fewest oldest stubs that evict nothing.
    let policy = Policy {
        quotas: [("tool_result".to_owned(), Quota { min: Amount::Tokens(0), max: Some(Amount::Tokens(60)) })].into(),
        ..Policy::default()
    };
    let mut task = segment("task", "instruction", 10);
    task.required = true;
    let segments = vec![task, stubbed("r1", 40), stubbed("r2", 40), stubbed("r3", 40), stubbed("r4", 40)];
    let packed = packer(policy).pack(&segments, 200, None).unwrap();
    let actions: Vec<&str> = packed.decisions.iter().map(Decision::action).collect();
    assert_eq!(actions, ["kept", "stubbed", "stubbed", "stubbed", "kept"]);
    assert!(packed.usage["tool_result"].tokens <= 60);
}

#[test]
fn stubs_that_would_not_save_an_eviction_are_not_used() {
    // Stubbing A makes room for B, which then crowds out C and D: more evictions, so no stubs.
    let mut a = stubbed("a", 60);
    a.priority = Some(4);
    let mut b = segment("b", "history", 80);
    b.priority = Some(3);
    let mut c = segment("c", "history", 20);
    c.priority = Some(2);
    let mut d = segment("d", "history", 20);
    d.priority = Some(1);
    let segments = vec![a, b, c, d];
    let packed = packer(Policy::default()).pack(&segments, 100, None).unwrap();
    let actions: Vec<&str> = packed.decisions.iter().map(Decision::action).collect();
    assert_eq!(actions, ["kept", "evicted", "kept", "kept"]);
}

#[test]
fn a_partial_admission_does_not_make_every_candidate_a_stub() {
    let policy =
        Policy { truncation: [("retrieval".to_owned(), Truncation::Cut(Strategy::Head))].into(), ..Policy::default() };
    let mut task = segment("task", "instruction", 10);
    task.required = true;
    let mut chunk = segment("chunk", "retrieval", 500);
    chunk.priority = Some(-1);
    let segments = vec![task, stubbed("r1", 40), stubbed("r2", 40), stubbed("r3", 40), stubbed("r4", 40), chunk];
    let packed = packer(policy).pack(&segments, 100, None).unwrap();
    let actions: Vec<&str> = packed.decisions.iter().map(Decision::action).collect();
    assert_eq!(actions, ["kept", "stubbed", "stubbed", "stubbed", "kept", "truncated"]);
}

/// `count` lines of `tokens` words each.
fn lines(count: usize, tokens: usize) -> String {
    (0..count).map(|_| words(tokens) + "\n").collect()
}

/// A required log of ten 61-token lines, cut by whole lines.
fn required_log() -> Segment {
    let mut log = Segment::new("log", "tool_result", lines(10, 60));
    log.required = true;
    log.truncation = Some(Truncation::Cut(Strategy::Lines));
    log
}

#[test]
fn the_room_a_mandatory_cut_leaves_goes_to_the_best_units_that_fit() {
    // The log is planned at the whole budget of 171; whole lines make its cut two lines and the marker
    // (130 tokens), so 41 are free: the 26-token note fits in them, the 45-token one does not.
    let mut big = segment("big", "history", 45);
    big.priority = Some(5);
    let segments = vec![big, segment("note", "history", 26), required_log()];
    let packed = packer(Policy::default()).pack(&segments, 171, None).unwrap();
    assert_eq!(packed.decisions[2].tokens_after, 130);
    assert_eq!(ids(&packed, &segments), ["note", "log"]);
    assert_eq!((packed.decisions[1].rule(), packed.decisions[1].tokens_after), ("priority", 26));
    // The render, counted as sent (with no separator, the note's last word merges with the log's first).
    assert_eq!(packed.tokens, Tokenizer::new(Encoding::O200kBase).count(&packed.render(&segments, "")));
    assert!(packed.tokens <= 130 + 26);
    assert_eq!(packed.decisions[0].detail(), "does not fit: needs 45, 41 left after higher priorities (priority 5)");
}

#[test]
fn the_room_a_mandatory_cut_leaves_is_filled_by_the_same_rules() {
    // 41 tokens free after the log's cut: the history quota (20) keeps the note out, and the group of two
    // 18-token memories gets in whole.
    let policy = Policy {
        quotas: [("history".to_owned(), Quota { min: Amount::Tokens(0), max: Some(Amount::Tokens(20)) })].into(),
        ..Policy::default()
    };
    let mut notes = segment("note", "history", 26);
    notes.priority = Some(5);
    let mut first = segment("m1", "memory", 18);
    first.group = Some("g".into());
    let mut second = segment("m2", "memory", 18);
    second.group = Some("g".into());
    let segments = vec![notes, first, second, required_log()];
    let packed = packer(policy).pack(&segments, 171, None).unwrap();
    assert_eq!(ids(&packed, &segments), ["m1", "m2", "log"]);
    assert_eq!(packed.decisions[0].rule(), "quota_max");
    assert!(packed.tokens <= 171);
}

#[test]
fn stubs_are_chosen_with_the_room_a_mandatory_cut_really_leaves() {
    // 41 tokens free: one 30-token result fits whole, and the other's stub beside it.
    let segments = vec![stubbed("r1", 30), stubbed("r2", 30), required_log()];
    let packed = packer(Policy::default()).pack(&segments, 171, None).unwrap();
    let actions: Vec<&str> = packed.decisions.iter().map(Decision::action).collect();
    assert_eq!(actions, ["stubbed", "kept", "truncated"]);
    assert!(packed.tokens <= 171);
}

/// A truncation hook that keeps the first line, counting its calls.
struct FirstLine(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Truncators for FirstLine {
    fn has(&self, name: &str) -> bool {
        name == "first_line"
    }
    fn names(&self) -> Vec<String> {
        vec!["first_line".to_owned()]
    }
    fn truncate(&self, _: &str, text: &str, _: usize) -> std::result::Result<String, TruncatorFailure> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(text.split_inclusive('\n').next().unwrap_or_default().to_owned())
    }
}

#[test]
fn a_mandatory_hook_cut_is_made_once_and_the_room_it_leaves_is_used() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hooked = packer(Policy::default()).with_truncators(Box::new(FirstLine(calls.clone())));
    let mut log = required_log();
    log.truncation = Some(Truncation::Hook("first_line".into()));
    // The hook keeps one 61-token line of the 171 planned: 110 free, for two 50-token results whole and
    // the oldest one's stub. Stubbing plans several times; the hook is called once.
    let segments = vec![stubbed("r1", 50), stubbed("r2", 50), stubbed("r3", 50), log];
    let packed = hooked.pack(&segments, 171, None).unwrap();
    let actions: Vec<&str> = packed.decisions.iter().map(Decision::action).collect();
    assert_eq!(actions, ["stubbed", "kept", "kept", "truncated"]);
    assert_eq!(packed.decisions[3].tokens_after, 61);
    assert_eq!(packed.decisions[3].strategy.as_deref(), Some("first_line"));
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(packed.tokens <= 171);
}

#[test]
fn a_cut_mandatory_set_cuts_the_task_before_the_latest_tool_result_goes_below_it() {
    // The chat front-end's mandatory set, with the latest tool-call group in it: every member that may be
    // cut is lowered to one common level, so the tool result keeps as much as the cut task.
    let cut = |id: &str, kind: &str, tokens: usize, strategy: Strategy| {
        let mut segment = segment(id, kind, tokens);
        segment.required = true;
        segment.truncation = Some(Truncation::Cut(strategy));
        segment
    };
    let mut call = segment("call", "tool_call", 20);
    call.required = true;
    let segments = vec![
        cut("system", "system", 30, Strategy::Middle),
        cut("task", "instruction", 300, Strategy::Middle),
        call,
        cut("result", "tool_result", 400, Strategy::Auto),
        cut("last", "instruction", 10, Strategy::Middle),
    ];
    let packed = packer(Policy::default()).pack(&segments, 300, None).unwrap();
    let after: Vec<usize> = packed.decisions.iter().map(|decision| decision.tokens_after).collect();
    // 30 + 20 + 10 whole; the task and the result share the other 240 equally (largest first, not in
    // proportion to their sizes).
    assert_eq!(after, [30, 120, 20, 120, 10]);
}
