use serde_json::Value;

use super::*;
use crate::tokenizer::Encoding;

const MARKER: &str = "\n[… {n} tokens elided …]\n";

fn tokenizer() -> Tokenizer {
    Tokenizer::new(Encoding::O200kBase)
}

fn log(lines: usize) -> String {
    let lines: Vec<String> =
        (0..lines).map(|i| format!("2026-11-27T12:00:{:02} INFO worker {i}: step {i} finished", i % 60)).collect();
    lines.join("\n") + "\n"
}

/// Every value of `reduced` is a value of `original` (strings may be shortened around a marker), or a note.
fn derived(reduced: &Value, original: &Value) -> bool {
    match (reduced, original) {
        // A cut string, or a note (in full, or short: `[… 12 items …]`).
        (Value::String(text), _) if text.contains("tokens elided") || is_note(text) => true,
        (Value::String(text), Value::String(whole)) => text == whole,
        (Value::Array(items), Value::Array(whole)) => items.iter().all(|item| {
            item.as_str().is_some_and(|note| note.contains("elided") || is_note(note))
                || whole.iter().any(|candidate| derived(item, candidate))
        }),
        (Value::Object(members), Value::Object(whole)) => members.iter().all(|(key, value)| {
            whole.get(key).is_some_and(|candidate| derived(value, candidate)) || key.starts_with('…')
        }),
        (reduced, original) => reduced == original,
    }
}

/// Whether `text` is a short JSON note, which says only how many items or members went.
fn is_note(text: &str) -> bool {
    text.strip_prefix("[… ").and_then(|inner| inner.strip_suffix(" …]")).is_some_and(|what| {
        what.split_once(' ').is_some_and(|(count, noun)| {
            count.chars().all(|c| c.is_ascii_digit() || c == ',')
                && ["item", "items", "member", "members"].contains(&noun)
        })
    })
}

#[test]
fn lines_keeps_whole_first_and_last_lines_and_is_maximal() {
    let tokenizer = tokenizer();
    let text = log(400);
    for max_tokens in [40, 200, 1000] {
        let cut = tokenizer.cut(&text, max_tokens, Strategy::Lines, MARKER);
        assert_eq!(cut.strategy, Strategy::Lines, "{:?}", cut.fallback);
        assert!(tokenizer.count(&cut.text) <= max_tokens);
        let (start, rest) = cut.text.split_once("\n[… ").unwrap();
        let (_, end) = rest.split_once(" tokens elided …]\n").unwrap();
        assert!(text.starts_with(start) && text.ends_with(end));
        assert!(
            (start.is_empty() || start.ends_with('\n'))
                && (end.is_empty() || text[..text.len() - end.len()].ends_with('\n'))
        );
        // One more line on either side would not fit.
        let next_line = &text[start.len()..].split_inclusive('\n').next().unwrap();
        let longer = format!("{start}{next_line}");
        let elided = &text[longer.len()..text.len() - end.len()];
        let marker = MARKER.replace("{n}", &tokenizer.count(elided).to_string());
        assert!(tokenizer.count(&format!("{longer}{marker}{end}")) > max_tokens);
    }
}

#[test]
fn lines_falls_back_to_middle_when_no_line_fits() {
    let tokenizer = tokenizer();
    let text = format!("{}\n{}", "word ".repeat(500), "other ".repeat(500));
    let cut = tokenizer.cut(&text, 50, Strategy::Lines, MARKER);
    assert_eq!(cut.strategy, Strategy::Middle);
    assert!(cut.fallback.unwrap().contains("no whole line fits"));
    assert!(tokenizer.count(&cut.text) <= 50);
}

#[test]
fn json_stays_valid_and_is_made_of_the_original_values() {
    let tokenizer = tokenizer();
    let records: Vec<Value> = (0..2000)
        .map(|i| serde_json::json!({"id": i, "name": format!("item {i}"), "tags": ["a", "b", i % 7], "body": "lorem ipsum ".repeat(i % 50)}))
        .collect();
    let document = serde_json::json!({"total": 2000, "results": records, "next": null});
    let text = serde_json::to_string_pretty(&document).unwrap();
    for max_tokens in [30, 300, 2000, 8000] {
        let cut = tokenizer.cut(&text, max_tokens, Strategy::Json, MARKER);
        assert_eq!(cut.strategy, Strategy::Json, "{max_tokens}: {:?}", cut.fallback);
        let tokens = tokenizer.count(&cut.text);
        assert!(tokens <= max_tokens);
        let reduced: Value = serde_json::from_str(&cut.text).unwrap();
        assert!(derived(&reduced, &document), "{max_tokens}: {}", cut.text);
        if max_tokens >= 300 {
            assert!(tokens * 10 >= max_tokens * 7, "only {tokens} of {max_tokens} used");
            assert_eq!(reduced["total"], 2000);
        }
    }
}

#[test]
fn json_shortens_a_huge_string_and_survives_deep_nesting() {
    let tokenizer = tokenizer();
    let text = serde_json::json!({"path": "a.txt", "content": "line of text\n".repeat(100_000)}).to_string();
    let cut = tokenizer.cut(&text, 500, Strategy::Json, MARKER);
    assert_eq!(cut.strategy, Strategy::Json);
    let reduced: Value = serde_json::from_str(&cut.text).unwrap();
    assert_eq!(reduced["path"], "a.txt");
    assert!(reduced["content"].as_str().unwrap().starts_with("line of text\n"));
    let deep = "[".repeat(100_000) + "1" + &"]".repeat(100_000);
    let cut = tokenizer.cut(&deep, 200, Strategy::Json, MARKER);
    assert_eq!(cut.strategy, Strategy::Json);
    assert!(tokenizer.count(&cut.text) <= 200);
    serde_json::from_str::<Value>(&cut.text).unwrap();
}

#[test]
fn invalid_json_falls_back_and_says_why() {
    let tokenizer = tokenizer();
    let text = format!("{{\"a\": [{}", "1, ".repeat(5000));
    let cut = tokenizer.cut(&text, 100, Strategy::Json, MARKER);
    assert_eq!(cut.strategy, Strategy::Middle);
    assert!(cut.fallback.unwrap().starts_with("json: not valid JSON"));
    let cut = tokenizer.cut(&text, 100, Strategy::Auto, MARKER);
    assert_eq!(cut.strategy, Strategy::Middle);
    assert!(cut.fallback.is_some());
}

#[test]
fn auto_picks_json_then_lines_then_middle() {
    let tokenizer = tokenizer();
    let json = serde_json::to_string(&(0..3000).collect::<Vec<_>>()).unwrap();
    assert_eq!(tokenizer.cut(&json, 100, Strategy::Auto, MARKER).strategy, Strategy::Json);
    assert_eq!(tokenizer.cut(&log(300), 100, Strategy::Auto, MARKER).strategy, Strategy::Lines);
    let prose = "The quick brown fox jumps over the lazy dog. ".repeat(300);
    assert_eq!(tokenizer.cut(&prose, 100, Strategy::Auto, MARKER).strategy, Strategy::Middle);
    // Fitting text is returned whole, borrowed.
    assert!(matches!(tokenizer.cut("short", 10, Strategy::Auto, MARKER).text, Cow::Borrowed("short")));
}

#[test]
fn middle_keeps_start_and_end_and_estimates_huge_elisions() {
    let tokenizer = tokenizer();
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(100_000);
    let cut = tokenizer.cut(&text, 100, Strategy::Middle, MARKER);
    assert!(tokenizer.count(&cut.text) <= 100);
    let (start, rest) = cut.text.split_once("\n[… ~").unwrap();
    let (number, end) = rest.split_once(" tokens elided …]\n").unwrap();
    assert!(text.starts_with(start) && text.ends_with(end));
    let estimate: usize = number.replace(',', "").parse().unwrap();
    let exact = tokenizer.count(&text[start.len()..text.len() - end.len()]);
    assert!(estimate.abs_diff(exact) * 50 < exact, "{estimate} vs {exact}");
}

#[test]
fn a_marker_that_cannot_fit_gives_the_head_and_says_so() {
    let tokenizer = tokenizer();
    let text = "word ".repeat(100);
    let cut = tokenizer.cut(&text, 3, Strategy::Middle, MARKER);
    assert_eq!(cut.strategy, Strategy::Head);
    assert_eq!(cut.text, tokenizer.truncate(&text, 3, Keep::Head));
    assert!(cut.fallback.unwrap().contains("marker"));
}

#[test]
fn strategies_parse_by_name() {
    for strategy in Strategy::ALL {
        assert_eq!(strategy.name().parse::<Strategy>().unwrap(), strategy);
    }
    assert!("gzip".parse::<Strategy>().unwrap_err().to_string().contains("lines"));
}
