//! Measurements of the `json` strategy (ignored by default; run them in release):
//! `CARGO_TARGET_DIR=target cargo test --release json_room_bench -- --ignored --nocapture`.

#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::time::Instant;

use serde_json::Value;

use super::gen::document;
use super::tests::{api_records, nested_response, MARKER};
use crate::tokenizer::{Encoding, Tokenizer};
use crate::truncation::Strategy;

/// The limits measured: `LIMITS=50,100` or 50, 100, 600 and 2,000 tokens.
fn limits() -> Vec<usize> {
    std::env::var("LIMITS").map_or_else(
        |_| vec![50, 100, 600, 2000],
        |limits| limits.split(',').filter_map(|limit| limit.parse().ok()).collect(),
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
#[ignore = "a measurement; run in release with --ignored --nocapture"]
fn json_room_bench_utilisation() {
    let tokenizer = Tokenizer::new(Encoding::O200kBase);
    let documents: Vec<(String, usize, Option<Value>)> = (0..200)
        .map(|seed| {
            let text = document(seed, 1000, 4_000_000);
            let (tokens, value) = (tokenizer.count(&text), serde_json::from_str(&text).ok());
            (text, tokens, value)
        })
        .collect();
    for limit in limits() {
        let (mut used, mut reduced, mut whole, mut fallbacks, mut elapsed) = (Vec::new(), Vec::new(), 0, 0, 0.0);
        for (text, tokens, value) in &documents {
            if *tokens <= limit {
                continue;
            }
            let started = Instant::now();
            let cut = tokenizer.cut(text, limit, Strategy::Json, MARKER);
            elapsed += started.elapsed().as_secs_f64();
            fallbacks += usize::from(cut.strategy != Strategy::Json);
            let share = tokenizer.count(&cut.text) as f64 / limit as f64;
            used.push(share);
            // Kept whole (written compactly, it fits): no more to show.
            if serde_json::from_str::<Value>(&cut.text).ok() == *value {
                whole += 1;
            } else {
                reduced.push(share);
            }
        }
        let cases = used.len();
        let least = |shares: &[f64]| shares.iter().copied().fold(f64::INFINITY, f64::min);
        let under = reduced.iter().filter(|&&share| share < 0.8).count();
        let short = reduced.iter().map(|share| ((1.0 - share) * limit as f64).round()).fold(0.0, f64::max);
        println!(
            "limit {limit}: {cases} over it: median {:.3}, min {:.3}; {whole} kept whole; the {} reduced: min {:.3}, \
             under 0.8: {under}, most unused {short}; not json: {fallbacks}; {elapsed:.2} s",
            median(&mut used),
            least(&used),
            reduced.len(),
            least(&reduced),
        );
    }
}

#[test]
#[ignore = "a measurement; run in release with --ignored --nocapture"]
fn json_room_bench_large() {
    let tokenizer = Tokenizer::new(Encoding::O200kBase);
    let record = r#"{"id": 1, "name": "item", "tags": ["a", "b"], "body": "lorem ipsum dolor sit amet"}"#;
    let array = format!("[{}]", vec![record; 50_000_000 / record.len()].join(","));
    let started = Instant::now();
    let cut = tokenizer.cut(&array, 2000, Strategy::Json, MARKER);
    let elapsed = started.elapsed();
    println!("50 MB array to 2,000: {} tokens in {elapsed:.2?} ({:?})", tokenizer.count(&cut.text), cut.strategy);
    for (name, text) in [("records", api_records(171)), ("nested", nested_response(228))] {
        let tokens = tokenizer.count(&text);
        let started = Instant::now();
        let cut = tokenizer.cut(&text, 600, Strategy::Json, MARKER);
        let elapsed = started.elapsed();
        println!(
            "{name}: {} bytes, {tokens} tokens to 600: {} tokens in {elapsed:.2?}",
            text.len(),
            tokenizer.count(&cut.text)
        );
    }
}

#[test]
#[ignore = "diagnostic"]
fn json_room_worst() {
    let tokenizer = Tokenizer::new(Encoding::O200kBase);
    let mut worst: Vec<(f64, u64, usize, usize)> = Vec::new();
    for seed in 0..200 {
        let text = document(seed, 1000, 4_000_000);
        let tokens = tokenizer.count(&text);
        let limits: Vec<usize> = limits();
        for limit in limits {
            if tokens > limit {
                let cut = tokenizer.cut(&text, limit, Strategy::Json, MARKER);
                worst.push((tokenizer.count(&cut.text) as f64 / limit as f64, seed, limit, text.len()));
            }
        }
    }
    worst.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (share, seed, limit, bytes) in worst.iter().take(12) {
        let text = document(*seed, 1000, 4_000_000);
        let cut = tokenizer.cut(&text, *limit, Strategy::Json, MARKER);
        let head: String = text.chars().take(300).collect();
        let whole = serde_json::from_str::<serde_json::Value>(&cut.text).ok() == serde_json::from_str(&text).ok();
        println!(
            "{share:.3} seed {seed} limit {limit} bytes {bytes} whole {whole}\n  in: {head}\n  out: {}",
            cut.text.chars().take(600).collect::<String>()
        );
    }
}

/// A binary tree of arrays `depth` levels deep, numbers at its leaves.
fn tree(depth: usize, leaf: &mut usize) -> String {
    if depth == 0 {
        *leaf += 1;
        return leaf.to_string();
    }
    format!("[{},{}]", tree(depth - 1, leaf), tree(depth - 1, leaf))
}

#[test]
#[ignore = "a measurement; run in release with --ignored --nocapture"]
fn json_room_bench_hostile() {
    let tokenizer = Tokenizer::new(Encoding::O200kBase);
    let numbers = serde_json::to_string(&(0..1_000_000).collect::<Vec<_>>()).unwrap_or_default();
    let object = (0..1_000_000).map(|i| format!("\"key{i}\":{i}")).collect::<Vec<_>>().join(",");
    let strings = (0..10).map(|i| format!("\"{}\"", format!("word{i} ").repeat(800_000))).collect::<Vec<_>>();
    let big_items = (0..100).map(|_| api_records(1)).collect::<Vec<_>>().join(",");
    let cases = [
        ("20 MB of nesting", "[".repeat(10_000_000) + &"]".repeat(10_000_000)),
        ("64 levels around 1M numbers", "[".repeat(64) + &numbers + &"]".repeat(64)),
        ("an object of 1M keys", format!("{{{object}}}")),
        ("10 strings of 5 MB", format!("[{}]", strings.join(","))),
        ("a tree of 2^20 leaves", tree(20, &mut 0)),
        ("100 nested records", format!("[{big_items}]")),
    ];
    for (name, text) in cases {
        for limit in [100, 2000] {
            let started = Instant::now();
            let cut = tokenizer.cut(&text, limit, Strategy::Json, MARKER);
            let elapsed = started.elapsed();
            let used = tokenizer.count(&cut.text);
            println!("{name} ({} MB) to {limit}: {used} tokens by {} in {elapsed:.2?}", text.len() >> 20, cut.strategy);
        }
    }
}
