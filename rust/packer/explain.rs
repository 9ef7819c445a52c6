//! `explain()`: the decision log as text a person can read at a glance.

use std::fmt::Write as _;

use super::Packed;
use crate::segment::Segment;

impl Packed {
    /// A summary line, one line per input segment (in input order), and usage per kind.
    pub fn explain(&self, segments: &[Segment], ids: &[String]) -> String {
        let mut out = String::new();
        let reserve = self.budget.saturating_sub(self.usable);
        let _ = writeln!(
            out,
            "packed {} of {} segments into {} of {} usable tokens (budget {}, {} reserved for output)",
            self.order.len(),
            segments.len(),
            self.tokens,
            self.usable,
            self.budget,
            reserve
        );
        let id_width = ids.iter().map(String::len).max().unwrap_or(2).clamp(2, 32);
        let kind_width = segments.iter().map(|segment| segment.kind.len()).max().unwrap_or(4).clamp(4, 16);
        for decision in &self.decisions {
            let (Some(segment), Some(id)) = (segments.get(decision.index), ids.get(decision.index)) else {
                continue;
            };
            let tokens = if matches!(decision.action(), "truncated" | "stubbed") {
                format!("{} -> {}", decision.tokens_before, decision.tokens_after)
            } else {
                decision.tokens_before.to_string()
            };
            let _ = writeln!(
                out,
                "  {:<9} {:<id_width$} {:<kind_width$} {:>14}  {}",
                decision.action(),
                id,
                segment.kind,
                tokens,
                decision.detail()
            );
            for flag in &decision.flags {
                let _ = writeln!(out, "  {:<9} {:<id_width$} {:<kind_width$} {:>14}  {flag}", "", "", "", "");
            }
        }
        let _ = writeln!(out, "{}", self.placement_line());
        let _ = writeln!(out, "usage by kind:");
        for (kind, usage) in &self.usage {
            let mut line = format!(
                "  {kind:<kind_width$} {:>8} tokens, {} kept, {} evicted",
                usage.tokens, usage.kept, usage.evicted
            );
            if usage.min > 0 {
                let _ = write!(line, ", min {}", usage.min);
            }
            if let Some(max) = usage.max {
                let _ = write!(line, ", max {max}");
            }
            let _ = writeln!(out, "{line}");
        }
        out
    }
}
