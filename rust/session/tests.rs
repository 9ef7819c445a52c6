use std::collections::BTreeMap;

use super::*;
use crate::chat::{Answer, Role, RunOutcome, ToolCall, SUMMARY_HEADER};
use crate::policy::{Amount, Policy};
use crate::tokenizer::Encoding;
use crate::truncation::Strategy;

const ACCOUNTING: Accounting = Accounting {
    per_message: 3,
    per_name: 1,
    per_tool_call: 3,
    reply_priming: 3,
    image_tokens: 765,
    audio_tokens: 500,
    file_tokens: 1500,
    unknown_part_tokens: 100,
};

const MARKS: Marks = Marks { high: 1.0, low: 0.8, recent: 0.1 };

/// The chat policy `pack_messages` uses: priorities by kind, tool results cut `auto` at a quarter.
fn packer() -> Packer {
    let priorities: BTreeMap<String, i64> =
        [("system", 100), ("instruction", 90), ("history", 30), ("tool_call", 30), ("tool_result", 20)]
            .into_iter()
            .map(|(kind, priority)| (kind.to_owned(), priority))
            .collect();
    let policy = Policy {
        reserve_output: ACCOUNTING.reply_priming,
        priorities,
        truncation: [("tool_result".to_owned(), Truncation::Cut(Strategy::Auto))].into_iter().collect(),
        segment_caps: [("tool_result".to_owned(), Amount::Fraction(0.25))].into_iter().collect(),
        separator: String::new(),
        joined: false,
        ..Policy::default()
    };
    Packer::new(Some(Tokenizer::new(Encoding::O200kBase)), policy)
}

fn settings(packer: &Packer, budget: usize) -> Settings<'_> {
    Settings {
        packer,
        tokenizer: Tokenizer::new(Encoding::O200kBase),
        accounting: ACCOUNTING,
        budget,
        marks: MARKS,
        summaries: None,
    }
}

/// An assistant turn that calls `bash` with id `id`, and its result of `lines` numbered lines.
fn turn(id: &str, number: usize, lines: usize) -> Vec<Message> {
    let mut call = Message::new(Role::Assistant, format!("Step {number}: let me look."));
    call.calls = vec![ToolCall { id: Some(id.to_owned()), name: "bash".to_owned(), arguments: "{}".into() }];
    let output: Vec<String> = (0..lines).map(|line| format!("step {number} line {line}: some output")).collect();
    let output = output.join("\n");
    let mut result = Message::new(Role::Tool, output);
    result.answers = Some(Answer::Call(id.to_owned()));
    vec![call, result]
}

/// Messages numbered from `first`, as the reader numbers them (errors name that number).
fn numbered(first: usize, mut messages: Vec<Message>) -> Vec<Message> {
    for (number, message) in (first..).zip(&mut messages) {
        message.number = number;
    }
    messages
}

fn start() -> Vec<Message> {
    vec![Message::new(Role::System, "You are a careful agent."), Message::new(Role::User, "Fix the failing build.")]
}

/// A pack, planned and applied.
struct Pack {
    numbers: Vec<usize>,
    chat: ChatSegments,
    packed: Packed,
    report: CacheReport,
}

fn pack(session: &mut Session, settings: Settings<'_>) -> Result<Pack> {
    pack_summarising(session, settings, &|_| RunOutcome::Text("unused".into())).map(|(pack, _)| pack)
}

/// A pack whose runs (if any) are summarised by `hook`; also the runs it was asked for.
fn pack_summarising(
    session: &mut Session,
    settings: Settings<'_>,
    hook: &dyn Fn(&SessionRun) -> RunOutcome,
) -> Result<(Pack, Vec<SessionRun>)> {
    let (planned, runs) = match session.plan(settings, None)? {
        Plan::Ready(planned) => (planned, Vec::new()),
        Plan::Summarise(runs) => {
            let outcomes: Outcomes = runs.iter().map(|run| (run.fingerprint, hook(run))).collect();
            match session.plan(settings, Some(&outcomes))? {
                Plan::Ready(planned) => (planned, runs),
                Plan::Summarise(_) => panic!("asked for summaries twice"),
            }
        }
    };
    let (_, numbers, planned, report, applied) = planned.into_parts();
    session.apply(applied);
    Ok((Pack { numbers, chat: planned.chat, packed: planned.packed, report }, runs))
}

/// The placed segments' (id, text as placed), in order.
fn prompt(pack: &Pack) -> Vec<(String, String)> {
    pack.packed
        .order
        .iter()
        .filter_map(|&index| {
            let text = pack.packed.text_of(&pack.chat.segments, index)?;
            Some((pack.chat.segments.get(index)?.id.to_string(), text.to_owned()))
        })
        .collect()
}

#[test]
fn within_an_epoch_the_prompt_only_grows_and_an_epoch_cuts_late() {
    let packer = packer();
    let budget = 1500;
    let mut session = Session::new(true);
    let Ok(()) = session.extend(start()) else { panic!("valid") };
    let mut previous: Vec<(String, String)> = Vec::new();
    let mut epochs = Vec::new();
    for number in 0..30 {
        let Ok(()) = session.extend(turn("call_1", number, 8)) else { panic!("valid") };
        let Ok(pack) = pack(&mut session, settings(&packer, budget)) else { panic!("fits") };
        assert!(pack.packed.tokens <= budget - ACCOUNTING.reply_priming, "{}", pack.packed.tokens);
        let now = prompt(&pack);
        if pack.report.epoch == session.epoch() && epochs.last() == Some(&pack.report.epoch) {
            assert_eq!(now.get(..previous.len()), Some(previous.as_slice()), "turn {number}: not append-only");
            assert_eq!(pack.report.first_change, None);
        } else if !epochs.is_empty() {
            // A new epoch: the system prompt and the task are as they were sent, and more than them.
            let Some(first) = pack.report.first_change else { panic!("an epoch changes the prompt") };
            assert!(first > 2, "the epoch changed the prompt from message {first}");
            assert_eq!(now.get(..2), previous.get(..2));
            let usable = budget - ACCOUNTING.reply_priming;
            assert!(pack.packed.tokens <= fraction_of(MARKS.low, usable), "{} above the low mark", pack.packed.tokens);
        }
        epochs.push(pack.report.epoch);
        previous = now;
    }
    assert!(epochs.last() > Some(&2), "30 turns of ~150 tokens at 1,500 start new epochs: {epochs:?}");
}

#[test]
fn a_malformed_append_and_a_failed_pack_leave_the_session_as_it_was() {
    let packer = packer();
    let mut session = Session::new(true);
    let Ok(()) = session.extend(start()) else { panic!("valid") };
    let Ok(_) = pack(&mut session, settings(&packer, 1000)) else { panic!("fits") };
    let mut orphan = Message::new(Role::Tool, "no call");
    orphan.answers = Some(Answer::Call("nobody".to_owned()));
    let mut batch = turn("a", 0, 2);
    batch.push(orphan);
    let Err(SchedError::MessageFormat { index: Some(4), .. }) = session.extend(numbered(2, batch)) else {
        panic!("the orphan is named")
    };
    assert_eq!(session.messages().len(), 2);
    assert_eq!(session.pending(), 0);
    // A call still waiting for its result: the pack fails and nothing changes.
    let mut waiting = turn("b", 1, 2);
    waiting.truncate(1);
    let Ok(()) = session.extend(numbered(2, waiting)) else { panic!("a growing conversation may wait for results") };
    let epoch = session.epoch();
    let Err(SchedError::MessageFormat { index: Some(2), .. }) = pack(&mut session, settings(&packer, 1000)) else {
        panic!("the unanswered call is named")
    };
    assert_eq!((session.epoch(), session.pending()), (epoch, 1));
    let mut result = Message::new(Role::Tool, "done");
    result.answers = Some(Answer::Call("b".to_owned()));
    let Ok(()) = session.extend(vec![result]) else { panic!("valid") };
    let Ok(pack) = pack(&mut session, settings(&packer, 1000)) else { panic!("fits") };
    assert_eq!(pack.report.first_change, None);
    assert_eq!(pack.packed.order.len(), 5);
}

#[test]
fn what_an_epoch_evicted_stays_out_and_keeps_its_decision() {
    let packer = packer();
    let mut session = Session::new(true);
    let Ok(()) = session.extend(start()) else { panic!("valid") };
    for number in 0..40 {
        let Ok(()) = session.extend(turn(&format!("c{number}"), number, 10)) else { panic!("valid") };
    }
    let Ok(first) = pack(&mut session, settings(&packer, 1200)) else { panic!("fits") };
    let evicted: Vec<(usize, Decision)> = first
        .packed
        .decisions
        .iter()
        .filter(|decision| decision.outcome.is_err())
        .filter_map(|decision| Some((*first.numbers.get(*first.chat.owners.get(decision.index)?)?, decision.clone())))
        .collect();
    assert!(!evicted.is_empty(), "40 turns of ~200 tokens do not fit in 1,200, even stubbed");
    let Ok(()) = session.extend(vec![Message::new(Role::User, "Go on.")]) else { panic!("valid") };
    let Ok(next) = pack(&mut session, settings(&packer, 1200)) else { panic!("fits") };
    // The next pack reads only the prompt's messages and the new one; what went before stays out, with
    // the decision that sent it out.
    assert!(next.numbers.len() < first.numbers.len());
    for (message, decision) in &evicted {
        assert!(!next.numbers.contains(message), "message {message} came back");
        let Some(earlier) = session.earlier(*message) else { panic!("message {message} has no decision") };
        assert_eq!(earlier.decision.outcome, decision.outcome);
    }
    // One decision per segment read, in order, and every placed one is placed once.
    assert_eq!(next.packed.decisions.len(), next.chat.segments.len());
    assert!(next.packed.decisions.iter().enumerate().all(|(index, decision)| decision.index == index));
    let placed: std::collections::BTreeSet<usize> = next.packed.order.iter().copied().collect();
    let kept = next.packed.decisions.iter().filter(|decision| decision.outcome.is_ok()).count();
    assert_eq!(placed.len(), kept);
    assert_eq!(next.packed.order.len(), kept);
}

#[test]
fn invalid_marks_are_refused() {
    assert!(Marks { high: 0.5, low: 0.8, recent: 0.1 }.check().is_err());
    assert!(Marks { high: 1.0, low: 0.0, recent: 0.0 }.check().is_err());
    assert!(Marks { high: 1.0, low: 0.5, recent: 0.6 }.check().is_err());
    assert!(MARKS.check().is_ok());
}

#[test]
fn a_new_system_message_is_a_change_at_the_head_not_an_append() {
    let packer = packer();
    let mut session = Session::new(true);
    let Ok(()) = session.extend(numbered(0, start())) else { panic!("valid") };
    let Ok(()) = session.extend(numbered(2, turn("a", 0, 3))) else { panic!("valid") };
    let Ok(_) = pack(&mut session, settings(&packer, 2000)) else { panic!("fits") };
    let Ok(()) = session.extend(numbered(4, vec![Message::new(Role::System, "New rule.")])) else { panic!("valid") };
    let Ok(next) = pack(&mut session, settings(&packer, 2000)) else { panic!("fits") };
    let ids: Vec<String> = prompt(&next).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.first().map(String::as_str), Some("0:system"));
    assert_eq!(ids.get(1).map(String::as_str), Some("4:system"), "pinned to the head: {ids:?}");
    assert_eq!(next.report.first_change, Some(1));
    assert!(next.report.reason.as_deref().is_some_and(|reason| reason.contains("pin")), "{:?}", next.report.reason);
}

#[test]
fn in_chat_nothing_but_results_may_follow_calls() {
    let mut session = Session::new(true);
    let Ok(()) = session.extend(numbered(0, start())) else { panic!("valid") };
    let mut waiting = turn("a", 0, 3);
    waiting.truncate(1);
    let Ok(()) = session.extend(numbered(2, waiting)) else { panic!("valid") };
    let Err(SchedError::MessageFormat { index: Some(3), .. }) =
        session.extend(numbered(3, vec![Message::new(Role::User, "Hello?")]))
    else {
        panic!("a user message before the results is refused, naming it")
    };
    // Responses items may interleave: the check is for chat only.
    let mut items = Session::new(false);
    let mut calls = turn("a", 0, 3);
    calls.truncate(1);
    let Ok(()) = items.extend(numbered(0, [start(), calls, vec![Message::new(Role::User, "Hello?")]].concat())) else {
        panic!("valid for Responses")
    };
}

fn summary_settings(input_tokens: usize) -> SummarySettings {
    SummarySettings {
        kinds: ["history", "tool_result"].into_iter().map(str::to_owned).collect(),
        reserve: 200,
        merge: true,
        input_tokens,
        hook: "test".to_owned(),
        truncate: true,
    }
}

/// What the hook was given, as the summary's text: the conversation numbers of its sources and its depth.
fn summarise(run: &SessionRun) -> RunOutcome {
    RunOutcome::Text(format!("covers {:?} at depth {}", run.sources, run.depth).into())
}

#[test]
fn summaries_change_only_at_epochs_grow_and_never_pass_depth_two() {
    let packer = packer();
    let budget = 1500;
    for input_tokens in [100_000, 300] {
        let summaries = summary_settings(input_tokens);
        let mut settings = settings(&packer, budget);
        settings.summaries = Some(&summaries);
        let mut session = Session::new(true);
        let Ok(()) = session.extend(start()) else { panic!("valid") };
        let (mut previous, mut calls, mut depths) = (Vec::new(), 0, Vec::new());
        for number in 0..40 {
            let first = session.messages().len();
            let Ok(()) = session.extend(numbered(first, turn("call_1", number, 8))) else { panic!("valid") };
            let Ok((pack, runs)) = pack_summarising(&mut session, settings, &summarise) else { panic!("fits") };
            assert!(pack.packed.tokens <= budget - ACCOUNTING.reply_priming, "{}", pack.packed.tokens);
            calls += runs.len();
            assert!(runs.is_empty() || pack.report.first_change.is_some(), "a summary made within an epoch");
            for run in &runs {
                assert!(run.depth <= 2, "depth {}", run.depth);
                depths.push(run.depth);
                assert!(run.sources.windows(2).all(|pair| pair.first() < pair.get(1)), "{:?}", run.sources);
            }
            let now = prompt(&pack);
            if runs.is_empty() && pack.report.first_change.is_none() {
                assert_eq!(now.get(..previous.len()), Some(previous.as_slice()), "turn {number}");
            }
            // Every summary placed stands for messages no longer sent, and says which.
            let summaries: Vec<&(String, String)> = now.iter().filter(|(id, _)| id.ends_with(":summary")).collect();
            for (id, text) in &summaries {
                assert!(text.starts_with(SUMMARY_HEADER), "{text}");
                let number: usize = id.split(':').next().and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
                let Some(held) = session.held(number) else { panic!("{id} is not held") };
                assert_eq!(held.lineage.messages.first(), Some(&number));
                for source in &held.lineage.messages {
                    assert!(
                        !pack.numbers.contains(source)
                            || *source == number
                            || !now.iter().any(|(sent, _)| sent.starts_with(&format!("{source}:")))
                    );
                    let decision = session.earlier(*source).map(|earlier| earlier.decision.rule());
                    assert_eq!(
                        decision,
                        Some("summarised"),
                        "message {source} of {id}: {:?}",
                        session.earlier(*source)
                    );
                }
            }
            previous = now;
        }
        assert!(calls >= 2, "40 turns at 1,500 tokens summarise at several epochs: {calls} runs");
        if input_tokens < 1000 {
            assert!(depths.contains(&2), "a small input budget makes a depth-2 summary: {depths:?}");
        } else {
            assert!(depths.iter().all(|&depth| depth == 1), "{depths:?}");
        }
    }
}

#[test]
fn a_failed_hook_falls_back_to_a_cut_or_leaves_the_run_evicted() {
    let packer = packer();
    for truncate in [true, false] {
        let mut summaries = summary_settings(100_000);
        summaries.truncate = truncate;
        let mut settings = settings(&packer, 1500);
        settings.summaries = Some(&summaries);
        let mut session = Session::new(true);
        let Ok(()) = session.extend(start()) else { panic!("valid") };
        let failed = |_: &SessionRun| RunOutcome::Failed { problem: "raised".to_owned(), truncate };
        let mut seen_runs = 0;
        for number in 0..20 {
            let first = session.messages().len();
            let Ok(()) = session.extend(numbered(first, turn("c", number, 8))) else { panic!("valid") };
            let Ok((pack, runs)) = pack_summarising(&mut session, settings, &failed) else { panic!("fits") };
            assert!(pack.packed.tokens <= 1500 - ACCOUNTING.reply_priming);
            seen_runs += runs.len();
            let placed = prompt(&pack).iter().filter(|(id, _)| id.ends_with(":summary")).count();
            if !runs.is_empty() {
                assert_eq!(placed > 0, truncate, "a cut stands in only with truncate");
                let fallback = pack.packed.decisions.iter().filter_map(|decision| decision.fallback.as_deref());
                assert!(fallback.clone().any(|text| text.contains("raised")), "the failure is recorded");
            }
        }
        assert!(seen_runs > 0);
    }
}
