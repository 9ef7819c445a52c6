//! The `json` strategy uses its room: properties over generated nested documents, the reported cases, and
//! a checker that every kept value is the original's at the same path, modulo what the notes say went.

use serde_json::{json, Value};

use super::gen::{document, words, Random};
use crate::tokenizer::{Encoding, Tokenizer};
use crate::truncation::Strategy;

pub(super) const MARKER: &str = "\n[… {n} tokens elided …]\n";

fn tokenizer() -> Tokenizer {
    Tokenizer::new(Encoding::O200kBase)
}

/// A note's count of what went and its noun (`items`, `member`, ...), if `text` is a note: in full
/// (`[… 12 items, ~345 tokens elided …]`) or short (`[… 12 items …]`).
fn note(text: &str) -> Option<(usize, &str)> {
    let inner = text.strip_prefix("[… ")?;
    let what = match inner.strip_suffix(" tokens elided …]") {
        Some(inner) => {
            let (what, tokens) = inner.split_once(", ")?;
            tokens.trim_start_matches('~').replace(',', "").parse::<usize>().ok()?;
            what
        }
        None => inner.strip_suffix(" …]")?,
    };
    let (count, noun) = what.split_once(' ')?;
    Some((count.replace(',', "").parse().ok()?, noun))
}

/// Whether `reduced` is `original` cut in the middle around the string marker.
fn cut_string(reduced: &str, original: &str) -> bool {
    let (head, tail) = (reduced.split_once("\n[… "), reduced.rsplit_once(" tokens elided …]\n"));
    let (Some((head, _)), Some((_, tail))) = (head, tail) else { return false };
    head.len() + tail.len() < original.len() && original.starts_with(head) && original.ends_with(tail)
}

/// `Ok` when every value of `reduced` is the one at the same path of `original` (strings may be cut around
/// the marker), an array keeps a run from its start and one from its end around at most one note, an
/// object keeps some of its members and at most one note under a key of `…`s, and each note counts
/// exactly what went.
pub(super) fn derived(reduced: &Value, original: &Value, path: &str) -> Result<(), String> {
    match (reduced, original) {
        (Value::String(text), Value::String(whole)) if text == whole || cut_string(text, whole) => Ok(()),
        (Value::Array(items), Value::Array(whole)) => {
            let notes: Vec<usize> =
                (0..items.len()).filter(|&at| items[at].as_str().and_then(note).is_some()).collect();
            let (front, back, went) = match notes.as_slice() {
                [] => (items.as_slice(), &[][..], 0),
                [at] => {
                    let (count, noun) = items[*at].as_str().and_then(note).unwrap();
                    if noun != if count == 1 { "item" } else { "items" } {
                        return Err(format!("{path}: an array's note says {noun}"));
                    }
                    (&items[..*at], &items[at + 1..], count)
                }
                _ => return Err(format!("{path}: {} notes in one array", notes.len())),
            };
            if front.len() + back.len() + went != whole.len() {
                return Err(format!(
                    "{path}: {} + {} kept and {went} noted of {}",
                    front.len(),
                    back.len(),
                    whole.len()
                ));
            }
            for (index, item) in front.iter().enumerate() {
                derived(item, &whole[index], &format!("{path}[{index}]"))?;
            }
            for (offset, item) in back.iter().enumerate() {
                let index = whole.len() - back.len() + offset;
                derived(item, &whole[index], &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        (Value::Object(members), Value::Object(whole)) => {
            let mut went = 0;
            for (key, value) in members {
                if let Some(original) = whole.get(key) {
                    derived(value, original, &format!("{path}.{key}"))?;
                    continue;
                }
                let Some((count, noun)) = value.as_str().and_then(note).filter(|_| key.chars().all(|c| c == '…'))
                else {
                    return Err(format!("{path}: key {key:?} is not the original's"));
                };
                if noun != if count == 1 { "member" } else { "members" } || went > 0 {
                    return Err(format!("{path}: an object's note says {noun}, or there are two"));
                }
                went = count;
            }
            let kept = members.len() - usize::from(went > 0);
            if kept + went == whole.len() {
                Ok(())
            } else {
                Err(format!("{path}: {kept} kept and {went} noted of {}", whole.len()))
            }
        }
        (reduced, original) if reduced == original => Ok(()),
        (reduced, original) => Err(format!("{path}: {} is not {}", short(reduced), short(original))),
    }
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(120).collect()
}

/// Cuts `text` to `limit` by `json` and checks everything the strategy promises; the tokens used.
fn check(tokenizer: &Tokenizer, text: &str, limit: usize) -> usize {
    let original: Value = serde_json::from_str(text).unwrap();
    let cut = tokenizer.cut(text, limit, Strategy::Json, MARKER);
    if limit < 50 && cut.strategy != Strategy::Json {
        // Only when not even a note fits.
        assert!(cut.fallback.as_deref().is_some_and(|why| why.starts_with("json: no reduced form")));
        assert!(tokenizer.count(&cut.text) <= limit);
        return 0;
    }
    assert_eq!(cut.strategy, Strategy::Json, "{limit}: {:?}", cut.fallback);
    let reduced: Value = serde_json::from_str(&cut.text).unwrap_or_else(|error| panic!("{error}: {}", cut.text));
    let used = tokenizer.count(&cut.text);
    assert!(used <= limit, "{used} tokens for a limit of {limit}");
    if let Err(error) = derived(&reduced, &original, "$") {
        panic!("not derived: {error}\n{}", cut.text);
    }
    // Over the limit and not kept whole (as compact JSON): the room is used.
    if limit >= 50 && tokenizer.count(text) > limit && reduced != original {
        assert!(used * 5 >= limit * 4, "only {used} of {limit} tokens used:\n{}", cut.text);
    }
    used
}

#[test]
fn json_uses_its_room_on_generated_nested_documents() {
    let tokenizer = tokenizer();
    for seed in 0..48u64 {
        let text = document(seed, 1000, 3_000_000);
        let mut random = Random(seed ^ 0xA5A5);
        for _ in 0..2 {
            check(&tokenizer, &text, random.log_range(50, 5000));
        }
    }
}

#[test]
fn json_uses_its_room_on_small_documents_and_small_limits() {
    let tokenizer = tokenizer();
    for seed in 100..400u64 {
        let text = document(seed, 300, 20_000);
        let mut random = Random(seed);
        check(&tokenizer, &text, random.range(50, 400));
        check(&tokenizer, &text, random.range(0, 49));
    }
}

const LABELS: [&str; 4] = ["bug", "docs", "ui", "perf"];

/// Issues as a code host's API returns them (about 30 fields, a user of 18, labels, a long body), pretty
/// printed: about 920 tokens each.
pub(super) fn api_records(count: usize) -> String {
    let mut random = Random(7);
    let base = "https://api.example.com/repos/acme/widgets";
    let records: Vec<Value> = (0..count).map(|i| issue(&mut random, base, i)).collect();
    serde_json::to_string_pretty(&records).unwrap()
}

fn issue(random: &mut Random, base: &str, i: usize) -> Value {
    let login = format!("user{}", i % 97);
    let people = "https://api.example.com/users";
    let user = json!({
        "login": login, "id": i % 97, "node_id": format!("MDQ6VXNlcj{i:04}"),
        "avatar_url": format!("https://avatars.example.com/u/{}?v=4", i % 97), "gravatar_id": "",
        "url": format!("{people}/{login}"), "html_url": format!("https://example.com/{login}"),
        "followers_url": format!("{people}/{login}/followers"),
        "following_url": format!("{people}/{login}/following{{/other_user}}"),
        "gists_url": format!("{people}/{login}/gists{{/gist_id}}"),
        "starred_url": format!("{people}/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{people}/{login}/subscriptions"),
        "organizations_url": format!("{people}/{login}/orgs"), "repos_url": format!("{people}/{login}/repos"),
        "events_url": format!("{people}/{login}/events{{/privacy}}"),
        "received_events_url": format!("{people}/{login}/received_events"), "type": "User", "site_admin": false,
    });
    let labels: Vec<Value> = (0..i % 4)
        .map(|l| {
            let description = words(random, 30);
            json!({"id": 200 + l, "name": LABELS[l], "color": "f29513", "default": l == 0, "description": description})
        })
        .collect();
    json!({
        "url": format!("{base}/issues/{i}"), "repository_url": base,
        "labels_url": format!("{base}/issues/{i}/labels{{/name}}"),
        "comments_url": format!("{base}/issues/{i}/comments"), "events_url": format!("{base}/issues/{i}/events"),
        "html_url": format!("https://example.com/acme/widgets/issues/{i}"),
        "id": 1_000_000 + i, "node_id": format!("I_kwDOAbc{i:06}"), "number": i, "title": words(random, 50),
        "user": user, "labels": labels, "state": if i % 3 == 0 { "closed" } else { "open" }, "locked": false,
        "assignee": null, "assignees": [], "milestone": null, "comments": i % 13,
        "created_at": format!("2026-{:02}-{:02}T12:00:00Z", 1 + i % 12, 1 + i % 28),
        "updated_at": format!("2026-{:02}-{:02}T18:30:00Z", 1 + i % 12, 1 + i % 28), "closed_at": null,
        "author_association": "CONTRIBUTOR", "body": words(random, 700),
        "reactions": {
            "url": format!("{base}/issues/{i}/reactions"), "total_count": i % 5, "+1": i % 3, "-1": 0, "heart": i % 2,
        },
        "timeline_url": format!("{base}/issues/{i}/timeline"), "state_reason": null,
    })
}

/// A big nested response: organisations with teams of members and repositories of issues, inside a few
/// small fields.
pub(super) fn nested_response(organisations: usize) -> String {
    let mut random = Random(11);
    let organisations: Vec<Value> = (0..organisations)
        .map(|o| {
            let teams: Vec<Value> = (0..=o % 4)
                .map(|t| {
                    let members: Vec<Value> = (0..8)
                        .map(|m| {
                            let login = format!("m{o}-{t}-{m}");
                            let active = m % 5 != 0;
                            json!({"login": login, "id": o * 100 + m, "roles": ["read", "triage"], "active": active})
                        })
                        .collect();
                    let settings = json!({"visibility": "private", "notify": true});
                    json!({"id": t, "name": words(&mut random, 16), "members": members, "settings": settings})
                })
                .collect();
            let repositories: Vec<Value> = (0..3)
                .map(|r| {
                    let base = format!("https://api.example.com/repos/org{o}/repo{r}");
                    let issues: Vec<Value> = (0..5).map(|i| issue(&mut random, &base, o * 100 + r * 10 + i)).collect();
                    let (name, full_name) = (format!("repo{r}"), format!("org{o}/repo{r}"));
                    json!({"name": name, "full_name": full_name, "private": r == 2, "open_issues": issues})
                })
                .collect();
            let plan = json!({"name": "team", "seats": 40, "used": o % 40});
            json!({"id": o, "login": format!("org{o}"), "plan": plan, "teams": teams, "repositories": repositories})
        })
        .collect();
    let document = json!({
        "meta": {"request_id": "a1b2c3", "took_ms": 42, "api_version": "2026-11-01"},
        "data": {"organizations": organisations, "count": organisations.len()},
        "pagination": {"page": 1, "per_page": 100, "next": "https://api.example.com/orgs?page=2"},
    });
    serde_json::to_string(&document).unwrap()
}

#[test]
fn the_reported_cases_keep_most_of_their_room() {
    let tokenizer = tokenizer();
    let records = api_records(171);
    let tokens = tokenizer.count(&records);
    assert!((150_000..170_000).contains(&tokens), "{tokens}");
    assert!(check(&tokenizer, &records, 600) >= 480);
    let nested = nested_response(228);
    assert!(nested.len() > 5_000_000, "{}", nested.len());
    assert!(check(&tokenizer, &nested, 600) >= 480);
}

#[test]
fn notes_say_how_many_items_and_members_went() {
    let tokenizer = tokenizer();
    let numbers = serde_json::to_string(&(0..1000).collect::<Vec<_>>()).unwrap();
    let cut = tokenizer.cut(&numbers, 100, Strategy::Json, MARKER);
    let items: Vec<Value> = serde_json::from_str(&cut.text).unwrap();
    let (went, noun) = items.iter().find_map(|item| item.as_str().and_then(note)).unwrap();
    assert_eq!((went, noun), (1000 - (items.len() - 1), "items"));
    assert!(items.first() == Some(&json!(0)) && items.last() == Some(&json!(999)), "{}", cut.text);
    let object: serde_json::Map<String, Value> = (0..500).map(|i| (format!("key{i}"), json!(i))).collect();
    let text = Value::Object(object).to_string();
    let cut = tokenizer.cut(&text, 100, Strategy::Json, MARKER);
    let members: serde_json::Map<String, Value> = serde_json::from_str(&cut.text).unwrap();
    let (went, noun) = members.get("…").and_then(Value::as_str).and_then(note).unwrap();
    assert_eq!((went, noun), (500 - (members.len() - 1), "members"));
    // Under a marker of its own, written with the marker's words.
    let cut = tokenizer.cut(&numbers, 100, Strategy::Json, "<<{n} tokens cut>>");
    assert!(cut.text.contains(" items, ") && cut.text.contains(" tokens cut>>\""), "{}", cut.text);
}

#[test]
fn hostile_documents_stay_valid_and_still_use_the_room() {
    let tokenizer = tokenizer();
    // 64 single-member levels around a million numbers: the numbers are reached, from both ends.
    let numbers = serde_json::to_string(&(0..1_000_000).collect::<Vec<_>>()).unwrap();
    let nested = "[".repeat(64) + &numbers + &"]".repeat(64);
    assert!(check(&tokenizer, &nested, 500) >= 400);
    let cut = tokenizer.cut(&nested, 500, Strategy::Json, MARKER);
    assert!(cut.text.contains("[0,1,2,") && cut.text.contains(",999999]"), "{}", cut.text);
    // Nested deeper than anything is shown (and than serde_json parses into a tree).
    for deep in
        ["[".repeat(100_000) + "1" + &"]".repeat(100_000), "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000)]
    {
        let cut = tokenizer.cut(&deep, 200, Strategy::Json, MARKER);
        assert_eq!(cut.strategy, Strategy::Json);
        assert!(tokenizer.count(&cut.text) <= 200);
        let reduced: Value = serde_json::from_str(&cut.text).unwrap();
        assert!(reduced.is_array() || reduced.is_object());
        assert!(cut.text.contains("1 item, ") || cut.text.contains("1 member, "), "{}", cut.text);
    }
    // Unbalanced: not JSON, and said so.
    let unbalanced = "{".repeat(50_000) + &"\"a\": [".repeat(1000);
    let cut = tokenizer.cut(&unbalanced, 100, Strategy::Json, MARKER);
    assert!(cut.fallback.unwrap().contains("not valid JSON"));
    // A key that decodes to the note's key is not repeated.
    let document =
        format!("{{\"\\u2026\": 1, {}}}", (0..3000).map(|i| format!("\"k{i}\": {i}")).collect::<Vec<_>>().join(", "));
    let cut = tokenizer.cut(&document, 100, Strategy::Json, MARKER);
    assert!(cut.text.starts_with("{\"\\u2026\":1,") && cut.text.contains("\"……\":\"[… "), "{}", cut.text);
}

#[test]
fn strings_are_cut_in_the_middle_and_escapes_do_not_overflow() {
    let tokenizer = tokenizer();
    let text = json!({"path": "a.txt", "content": "line of text\n".repeat(100_000), "escaped": "\"\\\n".repeat(5000)})
        .to_string();
    for limit in [60, 500, 3000] {
        let used = check(&tokenizer, &text, limit);
        assert!(used * 10 >= limit * 9, "{used} of {limit}");
    }
}

/// The same property over many more documents (run in release: `cargo test --release json_room_wide --
/// --ignored`).
#[test]
#[ignore = "minutes in a debug build; run in release"]
fn json_room_wide() {
    let tokenizer = tokenizer();
    for seed in 1000..1400u64 {
        let text = document(seed, 1000, 4_000_000);
        let mut random = Random(seed);
        for _ in 0..3 {
            check(&tokenizer, &text, random.log_range(50, 5000));
        }
    }
}

#[test]
fn edge_cases_and_mangled_documents_never_panic_or_overflow() {
    let tokenizer = tokenizer();
    let long = "x".repeat(5000);
    let edges = [
        "[]".to_owned(),
        "{}".to_owned(),
        "[[],{},[[]]]".to_owned(),
        format!("\"\\ud800 {long}\""),
        format!("[\"\\ud800 {long}\", 1]"),
        "1".repeat(3000),
        format!("{{\"…\": \"{long}\", \"……\": [{long:?}], \"a\": 1}}"),
        format!("  \n[{}]\n  ", (0..3000).map(|i| i.to_string()).collect::<Vec<_>>().join(" ,\n ")),
    ];
    for text in &edges {
        for limit in [0, 1, 5, 20, 50, 300] {
            let cut = tokenizer.cut(text, limit, Strategy::Json, MARKER);
            assert!(tokenizer.count(&cut.text) <= limit, "{limit}: {}", cut.text);
            if cut.strategy == Strategy::Json && cut.text != text.as_str() {
                serde_json::from_str::<Value>(&cut.text).unwrap();
            }
        }
    }
    // Generated documents, cut short or with a byte changed: valid JSON comes out valid, the rest falls back.
    let mut random = Random(99);
    for seed in 0..40u64 {
        let mut text = document(seed, 300, 30_000).into_bytes();
        let at = random.range(0, text.len().saturating_sub(1));
        if random.chance(50) {
            text.truncate(at);
        } else if let Some(byte) = text.get_mut(at) {
            *byte = b"[]{}\",:\\ 1"[random.range(0, 9)];
        }
        let text = String::from_utf8_lossy(&text);
        let limit = random.range(0, 400);
        let cut = tokenizer.cut(&text, limit, Strategy::Json, MARKER);
        assert!(tokenizer.count(&cut.text) <= limit);
        if cut.strategy == Strategy::Json && cut.text != text {
            serde_json::from_str::<Value>(&cut.text).unwrap();
        }
    }
}

#[test]
fn strings_are_written_with_only_the_escapes_json_requires() {
    use super::scan::unescaped;
    assert_eq!(unescaped(r#""caf\u00e9 \ud83c\udf0d a\/b""#).as_deref(), Some("\"café 🌍 a/b\""));
    // Only required escapes, or none: written as they are.
    assert_eq!(unescaped(r#""a\n\"b\"\\ \u001f""#), None);
    assert_eq!(unescaped("\"plain\""), None);
    // A lone surrogate does not decode: it stays as written.
    assert_eq!(unescaped(r#""\ud800 x""#), None);
    // An escaped backslash before `u` is not an escape of its own: the value is unchanged.
    let tricky = r#""\\u00e9""#;
    let rewritten = unescaped(tricky).unwrap_or_else(|| tricky.to_owned());
    assert_eq!(serde_json::from_str::<String>(&rewritten).unwrap(), "\\u00e9");
}

#[test]
fn a_document_over_the_limit_only_by_its_escapes_is_kept_whole_unescaped() {
    let tokenizer = tokenizer();
    let document =
        json!({"total": 244, "status": "ok", "next_page": "🌍\nthe 0x1F https://example.com/a?b=c 日本語 données"});
    // As `json.dumps(..., ensure_ascii=True)` writes it.
    let escaped = document
        .to_string()
        .replace('🌍', r"\ud83c\udf0d")
        .replace("日本語", r"\u65e5\u672c\u8a9e")
        .replace('é', r"\u00e9");
    let (whole, written) = (tokenizer.count(&document.to_string()), tokenizer.count(&escaped));
    assert!(whole < written, "{whole} {written}");
    let cut = tokenizer.cut(&escaped, whole, Strategy::Json, MARKER);
    assert_eq!(serde_json::from_str::<Value>(&cut.text).unwrap(), document, "{}", cut.text);
    assert!(tokenizer.count(&cut.text) <= whole);
}

#[test]
fn an_array_with_no_room_for_any_member_shows_both_ends_as_stubs() {
    let tokenizer = tokenizer();
    // Records of 66 members, each a container of 42: no member of one fits in a small share.
    let record = |r: usize| -> Value {
        let members = (0..66).map(|m| {
            let inner: serde_json::Map<String, Value> =
                (0..42).map(|i| (format!("k{i}"), json!(r * 1000 + m * 42 + i))).collect();
            (format!("field_{m}"), Value::Object(inner))
        });
        Value::Object(members.collect())
    };
    let text =
        json!({"total": -57591, "status": "ok", "data": [record(0), record(1), record(2)], "next": "path/to/file.rs"})
            .to_string();
    for limit in 50..60 {
        check(&tokenizer, &text, limit);
    }
    let cut = tokenizer.cut(&text, 53, Strategy::Json, MARKER);
    let data = &serde_json::from_str::<Value>(&cut.text).unwrap()["data"];
    assert_eq!(data.as_array().map(Vec::len), Some(3), "{}", cut.text);
}

#[test]
fn a_small_document_a_little_over_the_limit_leaves_out_members_of_one_container() {
    let tokenizer = tokenizer();
    // Found by the Python property: 39 of 53 and 35 of 50 tokens, where leaving out two members fits.
    let documents = [
        json!({"total": 992, "status": "ok", "data_0": {"total": 140, "status": "ok", "data_0": null, "data_1": null,
            "next_page": "https://example.com/a?b=c"}, "next_page": "price \"quoted\""}),
        json!({"total": 9_892_041_806_991_u64, "status": "ok", "data_0": {"total": 10_540_791_393_539_u64, "status": "ok",
            "data_0": false, "next_page": "amet \"quoted\""}, "next_page": "dolor total"}),
    ];
    for document in documents {
        let text = document.to_string();
        let whole = tokenizer.count(&text);
        for limit in 50.max(whole - 6)..whole {
            check(&tokenizer, &text, limit);
        }
    }
}
