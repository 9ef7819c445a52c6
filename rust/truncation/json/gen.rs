//! Generated nested JSON documents for the `json` strategy's property tests and measurements.
//!
//! A small deterministic generator (splitmix64), so that the tests need no extra crate and every run sees
//! the same documents. Shapes are the ones API and tool responses have: arrays of records, objects with
//! many keys, long strings, numbers, arrays of arrays, and responses that wrap one big payload in a few
//! small fields, nested up to a given depth and grown to about a given size.

use serde_json::{json, Map, Value};

/// splitmix64: tiny, fast and good enough to pick shapes.
pub(super) struct Random(pub(super) u64);

impl Random {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub(super) fn range(&mut self, low: usize, high: usize) -> usize {
        let span = (high.saturating_sub(low) as u64).saturating_add(1);
        low + usize::try_from(self.next() % span).unwrap_or(0)
    }

    /// Log-uniform in `low..=high` (`low >= 1`).
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub(super) fn log_range(&mut self, low: usize, high: usize) -> usize {
        let (low_log, high_log) = ((low.max(1) as f64).ln(), (high.max(1) as f64).ln());
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((low_log + unit * (high_log - low_log)).exp() as usize).clamp(low, high)
    }

    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.range(0, items.len().saturating_sub(1))).copied().unwrap_or("")
    }
}

const WORDS: &[&str] = &[
    "the",
    "status",
    "request",
    "ok",
    "failed",
    "user",
    "order",
    "item",
    "price",
    "total",
    "widget",
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "café",
    "naïve",
    "日本語",
    "données",
    "🌍",
    "line\nbreak",
    "tab\there",
    "\"quoted\"",
    "back\\slash",
    "path/to/file.rs",
    "https://example.com/a?b=c",
    "0x1F",
    "2026-11-27T12:00:00Z",
];
const KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "status",
    "created_at",
    "updated_at",
    "owner",
    "tags",
    "attributes",
    "value",
    "count",
    "description",
    "url",
    "score",
    "children",
    "metadata",
    "items",
    "error",
    "message",
    "é",
    "key with space",
];

/// A text of about `bytes` bytes of words.
pub(super) fn words(random: &mut Random, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        if !text.is_empty() {
            text.push(if random.chance(8) { '\n' } else { ' ' });
        }
        text.push_str(random.pick(WORDS));
    }
    text
}

fn number(random: &mut Random) -> Value {
    match random.range(0, 3) {
        0 => json!(random.range(0, 1000)),
        1 => json!(random.next() >> 20),
        2 => json!(-i64::try_from(random.range(0, 100_000)).unwrap_or(0)),
        _ => json!(f64::from(u32::try_from(random.range(0, 1_000_000)).unwrap_or(0)) / 1000.0),
    }
}

fn scalar(random: &mut Random, bytes: usize) -> Value {
    match random.range(0, 9) {
        0..=3 => Value::String(words(random, bytes.clamp(1, 400))),
        4..=6 => number(random),
        7 => Value::Bool(random.chance(50)),
        _ => Value::Null,
    }
}

fn key(random: &mut Random, index: usize) -> String {
    if random.chance(70) {
        format!("{}_{index}", random.pick(KEYS))
    } else {
        random.pick(KEYS).to_owned() + &index.to_string()
    }
}

fn record(random: &mut Random, depth: usize, bytes: usize) -> Value {
    let mut members = Map::new();
    members.insert("id".to_owned(), json!(random.range(0, 1_000_000)));
    let name = random.range(4, 30);
    members.insert("name".to_owned(), Value::String(words(random, name)));
    let fields = random.range(1, 8);
    for index in 0..fields {
        let value = if depth > 1 && random.chance(30) {
            value(random, depth - 1, bytes / fields)
        } else {
            scalar(random, bytes / fields)
        };
        members.insert(key(random, index), value);
    }
    Value::Object(members)
}

/// A document nested at most `depth` levels below this one, of about `bytes` bytes (compact).
pub(super) fn value(random: &mut Random, depth: usize, bytes: usize) -> Value {
    if depth == 0 || bytes < 24 {
        return scalar(random, bytes);
    }
    match random.range(0, 6) {
        // An array of records.
        0 => {
            let size = random.range(60, 400).min(bytes);
            let count = (bytes / size).max(1);
            Value::Array((0..count).map(|_| record(random, depth - 1, size)).collect())
        }
        // An object with many keys.
        1 => {
            let count = random.range(2, 400).min(bytes / 12).max(1);
            let members = (0..count).map(|index| (key(random, index), value(random, depth - 1, bytes / count)));
            Value::Object(members.collect())
        }
        // A long string.
        2 => Value::String(words(random, bytes)),
        // Numbers.
        3 => Value::Array((0..(bytes / 7).max(1)).map(|_| number(random)).collect()),
        // Arrays of arrays.
        4 => {
            let count = random.range(2, 60).min(bytes / 8).max(1);
            Value::Array((0..count).map(|_| value(random, depth - 1, bytes / count)).collect())
        }
        // A response: a few small fields around one big payload, and maybe a second one.
        _ => {
            let mut members = Map::new();
            members.insert("total".to_owned(), number(random));
            members.insert("status".to_owned(), json!("ok"));
            let payloads = random.range(1, 2);
            for index in 0..payloads {
                members.insert(format!("data_{index}"), value(random, depth - 1, bytes / payloads));
            }
            members.insert("next_page".to_owned(), Value::String(words(random, 12)));
            Value::Object(members)
        }
    }
}

/// The `index`-th generated document (depth 1 to 8, about `min_bytes` to `max_bytes`), as JSON text,
/// compact or pretty-printed.
pub(super) fn document(seed: u64, min_bytes: usize, max_bytes: usize) -> String {
    let mut random = Random(seed);
    let depth = random.range(1, 8);
    let bytes = random.log_range(min_bytes, max_bytes);
    let document = value(&mut random, depth, bytes);
    let text =
        if random.chance(30) { serde_json::to_string_pretty(&document) } else { serde_json::to_string(&document) };
    text.unwrap_or_default()
}
